"""Which calibration method should be the default? Gate metrics of INT8 per method and size.

For each --calib-method and --calib-size, quantise the FP32 ONNX of a model and gate it
against the eager model on held-out images with the INT8 gate, as `volo-export onnx
--precision int8` does (no fallback). Statistics are collected once per size. Prints one row per (target, method, size): pooled min cosine, top-1
agreement and accuracy vs FP32 where the images are labelled.

    python benchmarks/calibration_methods.py --model volo_tiny_digits      # digits calib/test splits
    python benchmarks/calibration_methods.py --model volo_d1_224           # scikit-image photo splits

Numbers from this script are in docs/PRECISION.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="volo_tiny_digits")
    parser.add_argument("--sizes", default="32,128,256", help="comma-separated calibration sizes")
    parser.add_argument("--targets", default="tensorrt,cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="calib-methods-") as work:  # exports, caches, engines: gone after the run
        run(args, Path(work))


def run(args: argparse.Namespace, work: Path) -> None:
    from volo_export.activations import collect_stats
    from volo_export.calibration.data import load_calibration_data
    from volo_export.calibration.methods import METHODS, compute_ranges
    from volo_export.export.to_onnx import export_model
    from volo_export.gate import eager_reference, gate_artifact, gate_inputs, plan_for
    from volo_export.models.checkpoint import load_model
    from volo_export.precision.int8 import find_targets
    from volo_export.precision.form import Prepared
    from volo_export.precision.forms import form_for
    from volo_export.precision.qdq_form import QdqState
    from volo_export.tolerances import tolerance_for

    calib_dir, test_dir = work / "calib", work / "test"
    if args.model == "volo_tiny_digits":
        from volo_export.datasets import write_image_folder

        write_image_folder("calib", calib_dir), write_image_folder("test", test_dir)
        count = 450
    else:
        from volo_export.calibration.samples import write_photo_split

        write_photo_split("calib", calib_dir, crops_per_photo=20), write_photo_split("val", test_dir)
        count = 64
    loaded = load_model(args.model)
    prep = loaded.config.preprocessing
    fp32 = export_model(loaded)[0]
    reference = eager_reference(loaded.model)
    inputs, _ = gate_inputs(prep, plan_for("int8", test_dir, count))
    tol = tolerance_for("int8")
    forms = {name: form_for("int8", name) for name in args.targets.split(",")}
    everything = {name: find_targets(fp32, form.selection()) for name, form in forms.items()}
    tensors = list(dict.fromkeys(n for form in forms.values() for n in form.calibration_tensors(fp32)))

    table = Table(title=f"INT8 gate metrics by calibration method: {args.model} ({len(inputs)} gate batches)")
    for col in ("target", "method", "size", "min cosine", "mean abs", "top-1 agr.", "accuracy (FP32)", "gate"):
        table.add_column(col, justify="right")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        calib = load_calibration_data(calib_dir, prep, size)
        stats = collect_stats(fp32, tensors, calib.array)  # once per size; every method reads the histograms
        for method in METHODS:
            ranges = compute_ranges(stats, method)
            for target, targets in everything.items():
                form = forms[target]
                built = form.build(fp32, Prepared(QdqState(targets, ranges, [], calib.array)))
                report = gate_artifact(form.runner(built.model), reference, inputs, tol, artifact="m",
                                       model=args.model, precision="int8")
                pooled = report.comparisons[-1]
                acc = "" if pooled.accuracy is None else f"{pooled.accuracy:.2%} ({pooled.reference_accuracy:.2%})"
                rows.append((target, method, size, min(c.min_cosine for c in report.comparisons), pooled.mean_abs,
                             pooled.top1_agreement, acc, report.passed))
    for target, method, size, cos, mean_abs, top1, acc, passed in sorted(rows):
        table.add_row(target, method, str(size), f"{cos:.5f}", f"{mean_abs:.2e}", f"{top1:.2%}", acc,
                      "pass" if passed else "fail")
    Console().print(table)


if __name__ == "__main__":
    main()
