"""`volo-export validate`: compare an .onnx or .engine with eager PyTorch (the export gate's report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import user_errors
from volo_export.cli.options import AsJson, GateOptions, Plugins, ReportFile, RuntimeOption, bundles
from volo_export.cli.progress import progress
from volo_export.cli.render import show_report


@bundles(gate=GateOptions)
def command(
    engine: Annotated[Optional[Path], typer.Option(help="TensorRT engine (.engine + .engine.json sidecar).")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="ONNX file (any precision; in ONNX Runtime "
                                                  "or, with --runtime, OpenVINO).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="The weights the artifact was exported from (sha256 is compared with its "
        "metadata).")] = None,
    validate_images: Annotated[Optional[Path], typer.Option(
        help="Folder of images (default: photos shipped with scikit-image).")] = None,
    report: ReportFile = None,
    as_json: AsJson = False,
    plugins: Plugins = None,
    runtime: RuntimeOption = None,
    gate: GateOptions = None,
) -> None:
    """Compare an .onnx or .engine with eager PyTorch (same report as the export gate)."""
    def show(result) -> None:
        show_report(result, report, as_json)

    with user_errors(show):
        from volo_export.errors import UsageError
        from volo_export.io import distinct_outputs
        from volo_export.validate import ValidateRequest, validate_artifact

        if (engine is None) == (model is None):
            raise UsageError("give exactly one of --engine X.engine or --model X.onnx")
        distinct_outputs({"--engine": engine, "--model": model, "--checkpoint": checkpoint, "--plugins": plugins},
                         {"--report": report})
        request = ValidateRequest(engine or model, checkpoint, validate_images, plugins=tuple(plugins or ()),
                                  gate=gate.overrides(), runtime=runtime.value if runtime else None)
        with progress() as shown:
            result = validate_artifact(request, shown)
        show(result)
