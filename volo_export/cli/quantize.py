"""`volo-export quantize`: an existing FP32 export -> FP16 or INT8, gated like `onnx --precision`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import user_errors
from volo_export.cli.options import (GateOptions, Output, Precision, PrecisionOptions, ReportFile, ValidateImages,
                                     bundles)
from volo_export.cli.progress import progress
from volo_export.cli.render import show_onnx_result, show_report


@bundles(precision=PrecisionOptions, gate=GateOptions)
def command(
    source: Annotated[Path, typer.Argument(help="An FP32 ONNX written by `volo-export onnx`.")],
    output: Output,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="The checkpoint SOURCE was exported from, to gate against eager PyTorch "
        "(without it: bundled weights, else the FP32 ONNX is the reference).")] = None,
    validate_images: ValidateImages = None,
    report: ReportFile = None,
    precision: PrecisionOptions = None,
    gate: GateOptions = None,
) -> None:
    """Convert an existing FP32 export to FP16 or INT8, gated like `onnx --precision`."""
    with user_errors(lambda failed: show_report(failed, report)):
        from volo_export.pipeline import QuantizeRequest, quantize_onnx

        request = QuantizeRequest(source=source, output=output, precision=precision.request(gate, Precision.INT8),
                                  checkpoint=checkpoint, validate_images=validate_images, report=report)
        with progress() as shown:
            result = quantize_onnx(request, shown)
        show_onnx_result(result)
