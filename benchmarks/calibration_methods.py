"""Which calibration method should be the default? Gate metrics of INT8 per method and size.

For each --calib-method and --calib-size, quantise the FP32 ONNX of a model and gate it
against the eager model on held-out images, exactly as `volo-export onnx --precision int8`
does (no fallback). Prints one row per (target, method, size): pooled min cosine, top-1
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

    from volo_export.calibration.methods import METHODS
    from volo_export.export.metadata import ArtifactInfo
    from volo_export.export.to_onnx import ExportOptions, finalize, torch_to_onnx
    from volo_export.models.checkpoint import load_model
    from volo_export.precision.convert import PrecisionRequest, convert_precision
    from volo_export.precision.gate import Reference
    from volo_export.validate import eager_predictor

    work = Path(tempfile.mkdtemp(prefix="calib-methods-"))
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
    info = ArtifactInfo.for_model(loaded.config, loaded.checkpoint_sha256, 20)
    fp32 = finalize(torch_to_onnx(loaded.model, ExportOptions()), info)
    reference = Reference(eager_predictor(loaded.model), "eager PyTorch")

    table = Table(title=f"INT8 gate metrics by calibration method: {args.model}")
    for col in ("target", "method", "size", "min cosine", "mean abs", "top-1 agr.", "accuracy (FP32)", "gate"):
        table.add_column(col, justify="right")
    for target in args.targets.split(","):
        for method in METHODS:
            for size in (int(s) for s in args.sizes.split(",")):
                request = PrecisionRequest(precision="int8", target=target, calib_data=str(calib_dir),
                                           calib_size=size, calib_method=method, fallback=False,
                                           calib_cache=work / f"{method}-{size}.calib.json", validate_count=count)
                result = convert_precision(fp32, info.preprocessing, reference, request, output=work / "m.onnx",
                                           model_name=args.model, validate_images=test_dir)
                pooled = result.report.comparisons[-1]
                acc = "" if pooled.accuracy is None else f"{pooled.accuracy:.2%} ({pooled.reference_accuracy:.2%})"
                table.add_row(target, method, str(size), f"{min(c.min_cosine for c in result.report.comparisons):.5f}",
                              f"{pooled.mean_abs:.2e}", f"{pooled.top1_agreement:.2%}", acc,
                              "pass" if result.report.passed else "fail")
    Console().print(table)


if __name__ == "__main__":
    main()
