"""volo-export's INT8 / FP8 TensorRT graphs vs NVIDIA ModelOpt's, from the same FP32 ONNX and the same
calibration tensors: closeness to eager PyTorch and the real TensorRT-RTX builder's layer mix (issue 17, item 4).

    python benchmarks/vs_modelopt.py --model volo_tiny_digits --precisions int8 --out runs/vs_modelopt_tiny
    python benchmarks/vs_modelopt.py --model volo_d1_224 --out runs/vs_modelopt_d1 \\
        --json benchmarks/results/vs_modelopt_volo_d1_224.json

ModelOpt pulls a CUDA torch and cupy, so it lives in its own environment and runs as a child process:
    python3 -m venv .venv-modelopt && .venv-modelopt/bin/pip install "nvidia-modelopt[onnx]"
(--modelopt-python, else $VOLO_EXPORT_MODELOPT_PYTHON, else .venv-modelopt/bin/python in or beside the checkout).

1. One FP32 ONNX (`volo-export onnx`, gated). A full-size model without --checkpoint gets seeded random
   weights that make every block matter (volo_export.models.random_weights.randomize, as the d1_onnx_with_checkpoint fixture),
   saved as a checkpoint so that eager PyTorch can be rebuilt for every gate.
2. Calibration: --calib-size images of --calib-data (default `calibration.samples.write_samples`: the digits
   calib split for volo_tiny_digits, crops of scikit-image photos otherwise), read with the model's
   preprocessing (`load_calibration_data`) into `calib.npy`, the tensor file both quantisers take
   (ModelOpt's --calibration_data_path, ours' --calib-data).
3. Per precision P: ours (`volo-export quantize FP32 --precision P`, tensorrt target, its own gate and
   fallback) and ModelOpt's (`python -m modelopt.onnx.quantization --quantize_mode P --calibration_eps cpu`,
   its defaults otherwise: entropy calibration, FP16 for what it does not quantise); plus ours FP16, the
   activation-traffic baseline.
4. Every graph against eager PyTorch on the held-out images (default: the split of step 2 that calibration
   never sees; `volo_export.gate`: inputs, reference, compare), in ONNX Runtime CPU with graph optimisations
   off (Q/DQ run as written: TensorRT's arithmetic; at level 'basic' ONNX Runtime 1.32 computes float16 FP8
   DequantizeLinear -> Conv wrong, and ModelOpt's FP8 graph has such convolutions): min cosine, top-1
   agreement, accuracy where labelled.
5. Every graph built by TensorRT-RTX ahead of time (`volo-export engine X --runtime rtx --compute-capability
   sm89`; ModelOpt's graph carries no volo-export metadata, so with --model-name); the layer mix is the
   sidecar's `layers` (`trt.layers.LayerReport`).
6. One table, the issue's goals with verdicts, and JSON with the CPU and the versions.

"Float32 layers" in the goals are the layers with a float32 input (the layer table's "Float", LayerReport
.float32_input), as in the issue's table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from volo_export.tolerances import MAX_FLOAT32_INPUT_FRACTION, MAX_TRAFFIC_OVER_FP16  # the layer-mix bar

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

ENV_VAR = "VOLO_EXPORT_MODELOPT_PYTHON"
VENV_PYTHON = Path(".venv-modelopt") / "bin" / "python"
INSTALL = (f'python3 -m venv .venv-modelopt && .venv-modelopt/bin/pip install "nvidia-modelopt[onnx]" '
           f"(or pass --modelopt-python PATH / set {ENV_VAR})")

LOW = ("int8", "fp8", "int4", "fp4")  # the precisions counted in the "INT8/FP8" column
OURS, MODELOPT = "volo-export", "ModelOpt"


# --------------------------------------------------------------------------------------- ModelOpt


class ModelOptMissing(RuntimeError):
    """No Python with NVIDIA ModelOpt was found; the message is one line that says how to install it."""


def modelopt_candidates(explicit: Path | None, environ: Mapping[str, str], repo: Path) -> list[Path]:
    """Where ModelOpt's Python may be, in order: the option, the environment variable, the venv in the
    checkout, the venv beside it."""
    if explicit is not None:
        return [Path(explicit)]
    found = [Path(environ[ENV_VAR])] if environ.get(ENV_VAR) else []
    return found + [repo / VENV_PYTHON, repo.parent / VENV_PYTHON]


def modelopt_version(python: Path) -> str | None:
    """nvidia-modelopt's version in that Python, None when it is not installed there (or is no Python)."""
    try:
        code = "import importlib.metadata as m; print(m.version('nvidia-modelopt'))"
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    except OSError:
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def find_modelopt(explicit: Path | None, environ: Mapping[str, str] = os.environ, repo: Path = REPO,
                  version=modelopt_version) -> tuple[Path, str]:
    """(ModelOpt's Python, ModelOpt's version); ModelOptMissing (one line: where it looked, how to install)."""
    tried = modelopt_candidates(explicit, environ, repo)
    for python in tried:
        found = version(python) if python.exists() else None
        if found:
            return python, found
    raise ModelOptMissing(f"NVIDIA ModelOpt not found (looked for {', '.join(map(str, tried))}); install it in "
                          f"its own environment: {INSTALL}")


def modelopt_command(python: Path, fp32: Path, precision: str, calib: Path, output: Path) -> list[str]:
    """ModelOpt's ONNX quantiser on the CPU with its defaults (as the issue ran it)."""
    return [str(python), "-m", "modelopt.onnx.quantization", "--onnx_path", str(fp32), "--quantize_mode", precision,
            "--calibration_data_path", str(calib), "--calibration_eps", "cpu", "--output_path", str(output)]


# --------------------------------------------------------------------------------------- results


@dataclass
class Row:
    """One artifact: who quantised it, to what, how close to eager it is, and its engine's layer mix.
    `error`: why it has no numbers (a quantiser or builder that failed), one line."""

    label: str
    tool: str
    precision: str
    onnx: str | None = None
    engine: str | None = None
    layers: dict | None = None  # trt.layers.LayerReport.to_dict()
    min_cosine: float | None = None
    top1: float | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    error: str | None = None  # no graph: the quantiser failed
    notes: list[str] = field(default_factory=list)  # a step after it failed (judging, the engine build)
    seconds: dict[str, float] = field(default_factory=dict)

    def report(self):
        from volo_export.trt.layers import LayerReport

        return None if self.layers is None else LayerReport.from_dict(self.layers)


@dataclass
class Goal:
    """One of issue 17's goals for one precision: what ours has, what it is held to, whether it holds
    (None: a number is missing)."""

    precision: str
    goal: str
    ours: str
    bound: str
    passed: bool | None


def _low(report) -> str:
    """The INT8/FP8 cell: '93' or '87 fp8 + 4 int8' when several low precisions are mixed."""
    counts = [(p, report.by_precision.get(p, 0)) for p in LOW if report.by_precision.get(p, 0)]
    if len(counts) <= 1:
        return str(sum(c for _, c in counts))
    return " + ".join(f"{c} {p}" for p, c in sorted(counts, key=lambda pc: -pc[1]))


def _mb(nbytes: float) -> str:
    """Bytes as MB with three significant digits (D1: '72.1', the tiny model: '0.602')."""
    return f"{nbytes / 1e6:.3g}"


def _check(ok: bool | None):
    from volo_export.results import Mark, verdict

    return Mark("n/a", "warning") if ok is None else verdict(ok, ("yes", "no"))


def row_cells(row: Row, fp16_bytes: float | None, labelled: bool) -> list:
    """The table's cells of one row (`columns`); `fp16_bytes`: the FP16 engine's traffic, the bound's base."""
    from volo_export.results import Mark

    if row.error:  # the reason is printed under the table (`VsModelOpt.problems`)
        return [row.label, Mark("failed", "bad")] + [""] * (len(columns(labelled)) - 2)
    r = row.report()
    cells = [row.label]
    if r is None:
        cells += ["-"] * 8
    else:
        float_attention = len(r.float32_attention())
        cells += [str(r.layers), _low(r), str(r.by_precision.get("fp16", 0)), str(r.by_precision.get("fp32", 0)),
                  f"{r.float32_input} ({100 * r.float32_input_fraction:.1f} %)", str(r.fused_attention),
                  f"{float_attention} of {len(r.attention)}", _mb(r.traffic_bytes)]
    cells += [f"{row.min_cosine:.5f}" if row.min_cosine is not None else "-",
              f"{row.top1:.1%}" if row.top1 is not None else "-"]
    if labelled:
        cells.append(f"{row.accuracy:.2%} ({row.reference_accuracy:.2%})" if row.accuracy is not None else "-")
    if row.precision == "fp16" or r is None:
        return cells + ["", ""]
    within = None if fp16_bytes is None else r.traffic_bytes <= (1 + MAX_TRAFFIC_OVER_FP16) * fp16_bytes
    return cells + [_check(r.float32_input_fraction <= MAX_FLOAT32_INPUT_FRACTION), _check(within)]


def columns(labelled: bool) -> list[str]:
    return (["artifact", "layers", "INT8/FP8", "Half", "Float", "float32 input", "fused attention",
             "attention GEMMs fp32", "traffic MB/img", "min cos", "top-1"] + ["accuracy (FP32)"] * labelled
            + [f"<= {MAX_FLOAT32_INPUT_FRACTION:.0%} f32 input", f"traffic <= FP16+{MAX_TRAFFIC_OVER_FP16:.0%}"])


def goals(rows: Sequence[Row]) -> list[Goal]:
    """Issue 17's goals for every precision that has an ours row: ours >= ModelOpt in min cosine, <= in
    float32-input layers and in activation traffic; <= 10 % float32-input layers, no attention GEMM in
    float32, traffic <= FP16's + 10 %."""
    by = {(r.tool, r.precision): r for r in rows}
    fp16 = by.get((OURS, "fp16"))
    fp16_bytes = fp16.report().traffic_bytes if fp16 and fp16.layers else None
    out = []
    for row in rows:
        if row.tool != OURS or row.precision == "fp16":
            continue
        p = row.precision
        mine = None if row.error else row.report()
        other = by.get((MODELOPT, p))
        theirs = None if other is None or other.error else other.report()

        def vs(goal: str, a, b, shown, higher_better: bool = False) -> None:
            ok = None if a is None or b is None else (a >= b if higher_better else a <= b)
            out.append(Goal(p, goal, "-" if a is None else shown(a), "-" if b is None else shown(b), ok))

        cosine, count, share = "{:.5f}".format, str, "{:.1f} %".format
        cos_b = None if other is None or other.error else other.min_cosine
        vs("min cosine vs eager >= ModelOpt's", None if row.error else row.min_cosine, cos_b, cosine, True)
        vs("float32-input layers <= ModelOpt's", mine and mine.float32_input, theirs and theirs.float32_input, count)
        vs("activation traffic MB/image <= ModelOpt's", mine and mine.traffic_bytes,
           theirs and theirs.traffic_bytes, _mb)
        vs(f"float32-input layers <= {MAX_FLOAT32_INPUT_FRACTION:.0%} of layers",
           mine and 100 * mine.float32_input_fraction, 100 * MAX_FLOAT32_INPUT_FRACTION, share)
        vs("attention GEMMs in float32 = 0", mine and len(mine.float32_attention()), 0, count)
        vs(f"activation traffic MB/image <= FP16's + {MAX_TRAFFIC_OVER_FP16:.0%}", mine and mine.traffic_bytes,
           None if fp16_bytes is None else (1 + MAX_TRAFFIC_OVER_FP16) * fp16_bytes, _mb)
    return out


@dataclass
class VsModelOpt:
    """The benchmark's result: rows (artifacts), goals, and what the numbers depend on."""

    model: str
    rows: list[Row]
    judged_on: str  # the held-out images (and the weights), for the title
    environment: dict
    setup: dict = field(default_factory=dict)  # checkpoint, calibration, commands

    @property
    def labelled(self) -> bool:
        return any(r.accuracy is not None for r in self.rows)

    def goals(self) -> list[Goal]:
        return goals(self.rows)

    def problems(self) -> list[str]:
        """Why a row has no numbers (or lacks some), one line each."""
        return [f"{r.label}: {line}" for r in self.rows for line in ([f"failed: {r.error}"] if r.error else r.notes)]

    def tables(self):
        from volo_export.results import Column, Table

        fp16 = next((r for r in self.rows if r.tool == OURS and r.precision == "fp16" and r.layers), None)
        fp16_bytes = fp16.report().traffic_bytes if fp16 else None
        header = columns(self.labelled)
        mix = Table(f"{self.model}: volo-export vs NVIDIA ModelOpt, TensorRT-RTX layer mix and closeness to eager "
                    f"PyTorch ({self.judged_on})",
                    [Column(c, "left" if c == "artifact" else "right") for c in header],
                    [row_cells(r, fp16_bytes, self.labelled) for r in self.rows])
        mix.caption = ("Float = layers whose narrowest input is float32; float32 input = layers with any float32 "
                       "input; traffic = input + output bytes of every layer for one image")
        goal_table = Table("issue 17 goals (ours)", [Column("precision", "left"), Column("goal", "left"),
                                                     Column("ours"), Column("ModelOpt / bound"), Column("met")],
                           [[g.precision, g.goal, g.ours, g.bound, _check(g.passed)] for g in self.goals()])
        return [mix, goal_table]

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"model": self.model, "judged_on": self.judged_on, "environment": self.environment, **self.setup,
                "rows": [asdict(r) for r in self.rows], "goals": [asdict(g) for g in self.goals()],
                "bounds": {"max_float32_input": MAX_FLOAT32_INPUT_FRACTION,
                           "max_traffic_over_fp16": MAX_TRAFFIC_OVER_FP16}}


# --------------------------------------------------------------------------------------- the run


def _one_line(e: BaseException) -> str:
    from volo_export.errors import first_line

    return f"{type(e).__name__}: {first_line(e)}"


def random_checkpoint(model: str, path: Path) -> Path:
    """Seeded random weights that make every block matter (the d1_onnx_with_checkpoint fixture's)."""
    from volo_export.models.random_weights import save_random_checkpoint

    return save_random_checkpoint(model, path)


@dataclass
class Setup:
    """What every artifact of one run shares: the FP32 ONNX, its weights, the calibration tensors, the
    held-out inputs and their eager reference, ModelOpt's Python, the output folder, the target."""

    model: str
    out: Path
    fp32: Path
    checkpoint: Path | None
    calib_npy: Path
    calib_size: int
    val_dir: Path
    validate_count: int
    reference: object  # gate.Reference
    inputs: list  # gate.InputSet
    modelopt: Path
    compute_capability: str
    commands: dict[str, str] = field(default_factory=dict)  # what each step is on the command line

    def cli(self, *words) -> str:
        return " ".join(str(w) for w in words)


def quantize(row: Row, name: str, s: Setup, shown) -> Path:
    """Ours (the `volo-export quantize` use case, gated) or ModelOpt's graph of `row.precision`."""
    import volo_export as ve

    onnx = s.out / f"{name}.onnx"
    if row.tool == MODELOPT:
        command = modelopt_command(s.modelopt, s.fp32, row.precision, s.calib_npy, onnx)
        s.commands[name] = s.cli(*command)
        shown.stage(f"{row.label}: {s.commands[name]} (log {name}.log)")
        run_modelopt(command, s.out / f"{name}.log")
        return onnx
    calib = [] if row.precision == "fp16" else ["--calib-data", s.calib_npy, "--calib-size", s.calib_size]
    ckpt = [] if s.checkpoint is None else ["--checkpoint", s.checkpoint]
    s.commands[name] = s.cli("volo-export quantize", s.fp32, "--precision", row.precision, *ckpt, *calib,
                             "--validate-images", s.val_dir, "-o", onnx)
    shown.stage(f"{row.label}: {s.commands[name]}")
    ve.quantize(s.fp32, onnx, precision=row.precision, checkpoint=s.checkpoint,
                calib_data=None if row.precision == "fp16" else s.calib_npy, calib_size=s.calib_size,
                validate_images=s.val_dir, validate_count=s.validate_count, report=s.out / f"{name}.gate.json",
                progress=shown)
    return onnx


def judge(row: Row, onnx: Path, s: Setup, shown) -> None:
    """Min cosine, pooled top-1 agreement and accuracy of an ONNX file vs eager PyTorch, with the gate
    machinery, into `row`. Run from its bytes, so a graph without volo-export metadata runs too."""
    from volo_export.errors import UsageError
    from volo_export.gate import gate_artifact
    from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings
    from volo_export.tolerances import tolerance_for

    shown.stage(f"{row.label}: against eager PyTorch on {sum(len(i.array) for i in s.inputs)} held-out images")
    runner = OnnxRuntimeRunner(onnx.read_bytes(), SessionSettings(providers=CPU_ONLY, optimization="disable"))
    try:
        tolerance = tolerance_for(row.precision)
    except UsageError:  # a precision without its own gate yet (fp8 before its form): INT8's bounds and tie band
        tolerance = tolerance_for("int8")
    report = gate_artifact(runner, s.reference, s.inputs, tolerance, artifact=onnx.name, model=s.model,
                           precision=row.precision, progress=shown)
    pooled = report.comparisons[-1]  # every image pooled (the INT8/FP16 gates' last row)
    row.min_cosine = min(c.min_cosine for c in report.comparisons)
    row.top1, row.accuracy, row.reference_accuracy = (pooled.top1_agreement, pooled.accuracy,
                                                      pooled.reference_accuracy)


def build(row: Row, onnx: Path, s: Setup, shown) -> str:
    """The TensorRT-RTX engine of `onnx`; its sidecar's layer report into `row`. Returns TensorRT-RTX's version."""
    import volo_export as ve
    from volo_export.trt.provenance import SIDECAR_SUFFIX

    engine = onnx.with_suffix(".engine")
    model_name = s.model if row.tool == MODELOPT else None  # ModelOpt drops the volo-export metadata
    key = onnx.stem + "_engine"
    s.commands[key] = s.cli("volo-export engine", onnx, "--runtime rtx --compute-capability", s.compute_capability,
                            *(["--model-name", model_name] if model_name else []), "-o", engine)
    shown.stage(f"{row.label}: {s.commands[key]}")
    ve.build_engine(onnx, engine, runtime="rtx", compute_capabilities=(s.compute_capability,), model_name=model_name,
                    progress=shown)
    sidecar = json.loads(engine.with_name(engine.name + SIDECAR_SUFFIX).read_text())
    if not sidecar.get("layers"):
        raise RuntimeError(f"{engine.name}: the builder gave no layer table")
    row.engine, row.layers = str(engine), sidecar["layers"]
    return sidecar["runtime"]["version"]


def run_modelopt(command: list[str], log: Path) -> None:
    """ModelOpt as a child process, its output in `log`; a failure names the log's last line."""
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"ModelOpt exited {done.returncode}: {(lines or [''])[-1][:200]} (log {log})")


def artifact_row(precision: str, tool: str, s: Setup, versions: dict, shown) -> Row:
    """Quantise, judge and build one artifact; a step that fails is the row's `error` (no graph) or note."""
    from volo_export.errors import VoloExportError

    row = Row(f"{'ours' if tool == OURS else 'ModelOpt'} {precision.upper()}", tool, precision)
    name = f"{'ours' if tool == OURS else 'modelopt'}_{precision}"
    failures = (VoloExportError, RuntimeError, OSError)  # one artifact's failure is its row, not the run's end
    started = time.monotonic()
    try:
        onnx = quantize(row, name, s, shown)
    except failures as e:
        row.error = _one_line(e)
        shown.warning(f"{row.label}: {row.error}")
        return row
    row.onnx, row.seconds["quantize"] = str(onnx), round(time.monotonic() - started, 1)
    for step, work in (("judge", lambda: judge(row, onnx, s, shown)),
                       ("engine", lambda: versions.setdefault("tensorrt-rtx", build(row, onnx, s, shown)))):
        started = time.monotonic()
        try:
            work()
        except failures as e:
            row.notes.append(f"{step}: {_one_line(e)}")
            shown.warning(f"{row.label}: {row.notes[-1]}")
        row.seconds[step] = round(time.monotonic() - started, 1)
    return row


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="volo_d1_224", help="registered variant (volo-export models)")
    parser.add_argument("--checkpoint", type=Path, help="weights (default: bundled, else seeded random weights)")
    parser.add_argument("--calib-data", type=Path, help="calibration image folder (default: the model's samples)")
    parser.add_argument("--calib-size", type=int, default=64, help="calibration images (default 64)")
    parser.add_argument("--validate-images", type=Path,
                        help="held-out images to judge on, DIR/<class>/... gives accuracy (default: the samples' "
                             "held-out split)")
    parser.add_argument("--validate-count", type=int, default=64, help="held-out images at most (default 64)")
    parser.add_argument("--precisions", nargs="+", default=["int8", "fp8"], choices=["int8", "fp8"])
    parser.add_argument("--compute-capability", default="sm89", help="TensorRT-RTX target (FP8 needs >= sm89)")
    parser.add_argument("--modelopt-python", type=Path,
                        help=f"Python with nvidia-modelopt (default: ${ENV_VAR}, else .venv-modelopt/bin/python in or "
                             "beside the checkout)")
    parser.add_argument("--out", type=Path, help="folder for every artifact (default: ./vs_modelopt_MODEL)")
    parser.add_argument("--json", type=Path, help="write the results here (default: OUT/vs_modelopt.json)")
    parser.add_argument("--markdown", action="store_true", help="also print the tables as markdown")
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, modelopt: Path, shown) -> tuple[Setup, dict]:
    """Weights, samples, the FP32 ONNX, the calibration tensors, the held-out inputs and their reference."""
    import numpy as np

    import volo_export as ve
    from volo_export.calibration.data import load_calibration_data
    from volo_export.calibration.samples import write_samples
    from volo_export.gate import eager_reference, gate_inputs, plan_for
    from volo_export.models.checkpoint import bundled_checkpoint, load_model
    from volo_export.models.variants import get_config

    out = (args.out or Path(f"vs_modelopt_{args.model}")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint
    if checkpoint is None and bundled_checkpoint(get_config(args.model)) is None:
        checkpoint = random_checkpoint(args.model, out / f"{args.model}_random.pth")
        shown.warning(f"no --checkpoint: {args.model} gets seeded random weights (models.random_weights.randomize), saved "
                      f"as {checkpoint}")
    calib_dir, val_dir = args.calib_data, args.validate_images
    if calib_dir is None or val_dir is None:
        shown.stage(f"writing {args.model}'s calibration and held-out samples")
        samples = write_samples(args.model, out / "samples")
        calib_dir, val_dir = calib_dir or samples[0], val_dir or samples[1]
    fp32 = out / "fp32.onnx"
    fp32_command = " ".join(["volo-export onnx --model", args.model,
                             *([] if checkpoint is None else ["--checkpoint", str(checkpoint)]), "-o", str(fp32)])
    shown.stage(f"the FP32 ONNX: {fp32_command}")
    prep = ve.export(args.model, fp32, checkpoint=checkpoint, progress=shown).info.preprocessing
    calib = load_calibration_data(str(calib_dir), prep, args.calib_size)
    calib_npy = out / "calib.npy"
    np.save(calib_npy, calib.array)
    shown.stage(f"calibration tensors for both quantisers: {calib.description} -> {calib_npy} {calib.array.shape}")
    reference = eager_reference(load_model(args.model, checkpoint).model)
    inputs, notes = gate_inputs(prep, plan_for("int8", val_dir, args.validate_count))
    setup = Setup(args.model, out, fp32, checkpoint, calib_npy, len(calib.array), val_dir, args.validate_count,
                  reference, inputs, modelopt, args.compute_capability, {"fp32": fp32_command})
    record = {"checkpoint": str(checkpoint) if checkpoint else "bundled", "random_weights": checkpoint is not None
              and args.checkpoint is None, "modelopt_python": str(modelopt),
              "calibration": {"description": calib.description, "images": len(calib.array), "npy": str(calib_npy),
                              "data_sha256": calib.digest},
              "held_out": {"folder": str(val_dir), "images": sum(len(i.array) for i in inputs), "notes": notes}}
    return setup, record


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        modelopt, modelopt_ver = find_modelopt(args.modelopt_python)
    except ModelOptMissing as e:
        raise SystemExit(f"error: {e}") from None

    from rich.console import Console

    from volo_export.bench.machine import environment
    from volo_export.cli.progress import progress
    from volo_export.io import write_json
    from volo_export.render import markdown_table, rich_table

    versions = {"nvidia-modelopt": modelopt_ver, "modelopt's onnxruntime": _modelopt_onnxruntime(modelopt)}
    with progress() as shown:
        setup, record = prepare(args, modelopt, shown)
        jobs = [(p, tool) for p in args.precisions for tool in (OURS, MODELOPT)] + [("fp16", OURS)]
        rows = [artifact_row(precision, tool, setup, versions, shown) for precision, tool in jobs]

    env = environment(0)
    env["versions"].update(versions)
    held_out = (f"{record['held_out']['images']} held-out images of {setup.val_dir.name}"
                + ("; seeded random weights" if record["random_weights"] else ""))
    result = VsModelOpt(args.model, rows, held_out, env, {**record, "commands": setup.commands})
    console = Console(width=220)
    for table in result.tables():
        console.print(rich_table(table))
        if args.markdown:
            console.print("\n".join(markdown_table(table)), markup=False, highlight=False, soft_wrap=True)
    for line in result.problems():
        console.print(line, markup=False, highlight=False)
    console.print(f"CPU: {env['cpu']} ({env['isa']}; {' '.join(env['cpu_flags'])}), {env['usable_cpus']} usable "
                  f"cores; ModelOpt {modelopt_ver}, TensorRT-RTX {versions.get('tensorrt-rtx')}, ONNX Runtime "
                  f"{env['versions'].get('onnxruntime')}", highlight=False, soft_wrap=True)
    report = args.json or setup.out / "vs_modelopt.json"
    write_json(report, result)
    console.print(f"wrote {report}", highlight=False)


def _modelopt_onnxruntime(python: Path) -> str | None:
    """The ONNX Runtime version in ModelOpt's environment (ModelOpt calibrates with it)."""
    done = subprocess.run([str(python), "-c", "import onnxruntime; print(onnxruntime.__version__)"],
                          capture_output=True, text=True, timeout=120)
    return done.stdout.strip() or None


if __name__ == "__main__":
    main()
