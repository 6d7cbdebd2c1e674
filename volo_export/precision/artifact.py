"""FP16/INT8 artifacts for tools that need one without a user's data: `volo-export bench`
and the benchmark scripts. Calibrated and gated on the real sample images that ship with
the project's dependencies (`calibration.samples`), written like `volo-export quantize`."""

from __future__ import annotations

import tempfile
from pathlib import Path


def bench_artifact(fp32: Path, precision: str, output: Path, loaded, target: str = "cpu"):
    """Convert the FP32 ONNX `fp32` of `loaded` (a LoadedModel) to `precision` for `target`, gated
    against the eager model, and write it to `output`. Returns the gate's Report.
    Raises ValidationFailed (nothing written) when the gate fails."""
    import onnx

    from volo_export.calibration.samples import write_samples
    from volo_export.export.metadata import read_info
    from volo_export.export.to_onnx import save_onnx
    from volo_export.io import atomic_output
    from volo_export.pipeline import lower_precision
    from volo_export.precision.convert import PrecisionRequest
    from volo_export.precision.gate import Reference
    from volo_export.validate import eager_predictor

    info = read_info(Path(fp32))
    with tempfile.TemporaryDirectory(prefix="volo-samples-") as tmp:
        calib, val = write_samples(info.model, Path(tmp))
        int8 = precision == "int8"
        request = PrecisionRequest(precision=precision, target=target if int8 else "tensorrt",
                                   calib_data=str(calib) if int8 else None,
                                   calib_cache=Path(tmp) / "calib.json" if int8 else None)
        lowered = lower_precision(onnx.load(str(fp32)), info, Reference(eager_predictor(loaded.model), "eager PyTorch"),
                                  request, Path(output), val)
    with atomic_output(Path(output)) as out:
        save_onnx(lowered.model, out)
    return lowered.report
