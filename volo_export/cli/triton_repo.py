"""`volo-export triton-repo`: a Triton model repository for the artifacts, validated before it lands."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import note, result_line, user_errors
from volo_export.cli.options import AsJson, BatchingOptions, bundles, integers
from volo_export.cli.progress import progress
from volo_export.cli.render import print_json


class Device(str, Enum):
    cpu = "cpu"
    gpu = "gpu"


@bundles(batching=BatchingOptions)
def command(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts: .onnx files, .engine files (with their "
                                                    ".engine.json sidecars).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="The repository folder to write (new or empty, or an "
                                      "existing repository with --force).", show_default=False)],
    device: Annotated[Optional[Device], typer.Option(
        help="Where ONNX models run: cpu or gpu instances (default cpu; engines always gpu).",
        show_default=False)] = None,
    gpus: Annotated[Optional[str], typer.Option(help="Comma-separated GPU indices for the instances.")] = None,
    tensorrt_ep: Annotated[bool, typer.Option(
        "--tensorrt-ep", help="ONNX on --device gpu through ONNX Runtime's TensorRT execution provider "
        "(precision_mode FP32: the precision is in the graph).")] = False,
    trt_cache: Annotated[Optional[str], typer.Option(
        help="With --tensorrt-ep: engine and timing cache folder on the server (default: the user cache of "
        "whoever writes the repository, ~/.cache/volo-export/tensorrt-ep, never a shared /tmp path).",
        show_default=False)] = None,
    version: Annotated[int, typer.Option(help="The model version folder to write (version_policy: latest 1).")] = 1,
    warmup_batch: Annotated[int, typer.Option(help="Warm-up request batch run when a model loads (0: none).")] = 1,
    image_ensemble: Annotated[bool, typer.Option(
        "--image-ensemble", help="Also NAME_image, an ensemble taking encoded images: volo-export's preprocessing "
        "in Triton's Python backend (the server needs Pillow) in front of the network.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Write into an existing repository: replace the model "
                                        "folders being written (once the new ones are complete), keep the "
                                        "others.")] = False,
    as_json: AsJson = False,
    batching: BatchingOptions = None,
) -> None:
    """A Triton Inference Server model repository for ONNX and TensorRT artifacts (config.pbtxt validated)."""
    with user_errors():
        from volo_export.serve.repository import write_repository

        settings = batching.settings(device=device.value if device else None, gpus=integers(gpus, "--gpus"),
                                     tensorrt_ep=tensorrt_ep, trt_cache_dir=trt_cache, version=version,
                                     warmup_batch=warmup_batch, image_model=image_ensemble)
        with progress() as shown:
            result = write_repository(artifacts, out, settings, replace=force, progress=shown)
        if as_json:
            print_json(result.to_dict())
            return
        for model in result.models:
            result_line(f"{model['name']:<24} {model['role']:<10} {model['config']}")
        result_line(f"wrote {result.root} ({len(result.models)} models; every config.pbtxt is a Triton ModelConfig "
                    "message, checked before writing)")
        for line in result.notes:
            note(line)
