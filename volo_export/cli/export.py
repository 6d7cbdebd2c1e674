"""`volo-export onnx`: export a VOLO to a validated ONNX file, optionally FP16 or INT8."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from volo_export.cli.console import user_errors
from volo_export.cli.options import (Checkpoint, GateOptions, ModelName, Output, Precision, PrecisionOptions,
                                     ReportFile, ValidateImages, bundles)
from volo_export.cli.progress import progress
from volo_export.cli.render import show_onnx_result, show_report


@bundles(precision=PrecisionOptions, gate=GateOptions)
def command(
    model: ModelName,
    output: Output,
    checkpoint: Checkpoint = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (18-24). 20 has single-op LayerNormalization and Gelu.")] = 20,
    batch: Annotated[Optional[int], typer.Option(help="Static batch size (default: dynamic batch).")] = None,
    validate: Annotated[bool, typer.Option(help="Gate the ONNX against eager PyTorch before writing it.")] = True,
    validate_images: ValidateImages = None,
    report: ReportFile = None,
    precision: PrecisionOptions = None,
    gate: GateOptions = None,
) -> None:
    """Export a VOLO to a validated ONNX file (dynamic batch, no Col2Im), optionally FP16 or INT8."""
    with user_errors(lambda failed: show_report(failed, report)):
        from volo_export.export.to_onnx import ExportOptions
        from volo_export.pipeline import OnnxRequest, export_onnx

        request = OnnxRequest(model=model, output=output, checkpoint=checkpoint,
                              export=ExportOptions(opset=opset, batch=batch), validate=validate,
                              validate_images=validate_images, precision=precision.request(gate, Precision.FP32),
                              report=report)
        with progress() as shown:
            result = export_onnx(request, shown)
        show_onnx_result(result)
