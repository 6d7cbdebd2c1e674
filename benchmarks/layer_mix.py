"""What the TensorRT INT8 and FP8 forms leave unquantised, and why: each choice measured with the real builder.

For one FP32 export and one set of calibration images, lower the graph in every variant below, gate it against
eager PyTorch on held-out images (ONNX Runtime CPU, as `volo-export quantize` does, no fallback) and build it
with TensorRT-RTX ahead of time (`volo-export engine --runtime rtx`, no GPU needed). One row per variant: the
builder's layer mix (volo_export.trt.layers) and the gate's min cosine / top-1 agreement / accuracy.

    fp16                 the FP16 engine: the traffic baseline
    <p> fp32-rest        --high-precision fp32: Q/DQ in a float32 graph (the INT8 form before issue 17)
    <p>                  the form as shipped: float16 elsewhere, Conv and attention products in float16
    <p> +conv            ... with the convolutions quantised too
    <p> +one-row         ... with the GEMMs on one row per image (class token, head) quantised too
    <p> +attention       ... with the attention products (q·kᵀ, attn·v) quantised too

    python benchmarks/layer_mix.py --model volo_tiny_digits
    python benchmarks/layer_mix.py --model volo_d1_224 --json benchmarks/results/layer_mix_volo_d1_224.json

Without --checkpoint, volo_d1_224 gets random weights that make every block matter
(`models.random_weights.randomize`, seed 0, the tests' D1 fixture's; say so when quoting numbers) and the
scikit-image photo crops (calibration / held-out), volo_tiny_digits its bundled weights and digit splits.
Numbers from this script are in docs/PRECISION.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    precision: str
    high_precision: str | None = None
    changes: tuple[tuple[str, object], ...] = ()  # class attributes of the form changed for this variant


def variants(precisions: list[str]) -> list[Variant]:
    from volo_export.precision.qdq_form import QdqForm

    rows = [Variant("fp16", "fp16")]
    for p in precisions:
        rows += [Variant(f"{p} fp32-rest", p, "fp32"), Variant(p, p),
                 Variant(f"{p} +conv", p, changes=(("float16_op_types", {}),)),
                 Variant(f"{p} +one-row", p, changes=(("left_in_float16", QdqForm.left_in_float16),)),
                 Variant(f"{p} +attention", p, changes=(("activation_matmuls", True),))]
    return rows


@contextmanager
def changed(form_class, changes):
    """The registered form class with some class attributes changed, restored afterwards."""
    saved = {name: form_class.__dict__.get(name) for name, _ in changes}
    for name, value in changes:
        setattr(form_class, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                delattr(form_class, name)
            else:
                setattr(form_class, name, value)


def data_folders(model: str, work: Path) -> tuple[Path, Path, int]:
    """(calibration folder, held-out folder, gate images) for `model`."""
    if model == "volo_tiny_digits":
        from volo_export.datasets import write_image_folder

        write_image_folder("calib", work / "calib"), write_image_folder("test", work / "test")
        return work / "calib", work / "test", 450
    from volo_export.calibration.samples import write_samples

    calib, val = write_samples(model, work / "samples")
    return calib, val, 64


def checkpoint_for(model: str, given: Path | None, work: Path) -> Path | None:
    if given or model == "volo_tiny_digits":
        return given
    from volo_export.models.random_weights import save_random_checkpoint

    return save_random_checkpoint(model, work / f"{model}_random.pth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="volo_tiny_digits")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--precisions", default="int8,fp8")
    parser.add_argument("--calib-size", type=int, default=64)
    parser.add_argument("--compute-capability", default="sm89")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="layer-mix-") as work:  # exports, caches, engines: gone after the run
        run(args, Path(work))


def run(args: argparse.Namespace, work: Path) -> None:
    from volo_export.errors import ValidationFailed
    from volo_export.io import write_json
    from volo_export.pipeline import OnnxRequest, QuantizeRequest, export_onnx, quantize_onnx
    from volo_export.precision.convert import PrecisionRequest
    from volo_export.precision.forms import form_for
    from volo_export.trt.build import EngineRequest, build_engine
    from volo_export.trt.config import BuildSettings
    from volo_export.trt.products import find_library

    console = Console()
    calib, heldout, count = data_folders(args.model, work)
    checkpoint = checkpoint_for(args.model, args.checkpoint, work)
    fp32 = work / f"{args.model}.onnx"
    console.print(f"exporting {args.model} to {fp32}")
    export_onnx(OnnxRequest(model=args.model, output=fp32, checkpoint=checkpoint, validate=False))
    settings = BuildSettings(runtime="rtx", compute_capabilities=(args.compute_capability,))
    rows = []
    for v in variants(args.precisions.split(",")):
        console.print(f"[bold]{v.name}[/]: lowering, gating, building")
        calibrated = v.precision != "fp16"
        request = PrecisionRequest(precision=v.precision, high_precision=v.high_precision, fallback=False,
                                   calib_data=str(calib) if calibrated else None, calib_size=args.calib_size,
                                   calib_cache=work / f"{v.name.replace(' ', '_')}.calib.json" if calibrated else None,
                                   validate_count=count)
        out = work / f"{v.name.replace(' ', '_').replace('+', '')}.onnx"
        with changed(type(form_for(v.precision)), v.changes):
            try:
                report = quantize_onnx(QuantizeRequest(fp32, out, request, checkpoint=checkpoint,
                                                       validate_images=heldout)).report
            except ValidationFailed as failed:  # nothing written: the row shows the gate, no engine
                report = failed.report
        pooled = report.comparisons[-1]
        gate = {"min_cosine": min(c.min_cosine for c in report.comparisons), "top1_agreement": pooled.top1_agreement,
                "accuracy": pooled.accuracy, "reference_accuracy": pooled.reference_accuracy,
                "passed": report.passed}
        if not report.passed:
            rows.append({"variant": v.name, **gate, "failure": report.failures[0]})
            continue
        mix = build_engine(EngineRequest(out, out.with_suffix(".engine"), settings)).layers
        rows.append({"variant": v.name, "layers": mix.layers, "by_precision": mix.by_precision,
                     "float32_input": mix.float32_input, "float32_input_fraction": mix.float32_input_fraction,
                     "attention_kernels": mix.fused_attention,
                     "attention_gemms": dict(sorted({p: list(mix.attention.values()).count(p)
                                                     for p in set(mix.attention.values())}.items())),
                     "traffic_mb": mix.traffic_bytes / 1e6, **gate})
    table = Table(title=f"{args.model}: TensorRT-RTX layer mix ({args.compute_capability}) and gate vs eager")
    for column in ("variant", "layers", "int8/fp8", "fp16", "fp32", "fp32 input", "attention kernels",
                   "attention GEMMs", "traffic MB/image", "min cosine", "top-1", "accuracy"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in rows:
        accuracy = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f} % ({100 * r['reference_accuracy']:.2f})"
        if not r["passed"]:
            table.add_row(r["variant"], *["-"] * 8, f"{r['min_cosine']:.5f}", f"{r['top1_agreement']:.3f}",
                          accuracy + " (gate failed)")
            continue
        low = sum(c for p, c in r["by_precision"].items() if p in ("int8", "fp8"))
        table.add_row(r["variant"], str(r["layers"]), str(low), str(r["by_precision"].get("fp16", 0)),
                      str(r["by_precision"].get("fp32", 0)),
                      f"{r['float32_input']} ({100 * r['float32_input_fraction']:.1f} %)", str(r["attention_kernels"]),
                      ", ".join(f"{p} {c}" for p, c in r["attention_gemms"].items()), f"{r['traffic_mb']:.1f}",
                      f"{r['min_cosine']:.5f}", f"{r['top1_agreement']:.3f}", accuracy)
    console.print(table)
    library = find_library("rtx")
    if args.json:
        write_json(args.json, {"model": args.model, "checkpoint": str(args.checkpoint) if args.checkpoint else
                               "random weights" if checkpoint else "bundled",  # the work folder is gone
                               "random_weights": checkpoint is not None and args.checkpoint is None,
                               "builder": f"{library.label} {library.version}",
                               "compute_capability": args.compute_capability, "rows": rows})
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
