"""`volo-export predict`: top-k classes for images with any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import NOTICES, user_errors
from volo_export.cli.options import AsJson, Plugins, RuntimeOption
from volo_export.cli.render import print_json, show_tables


def command(
    images: Annotated[list[Path], typer.Argument(help="Image files, folders of images (recursive) or glob "
                                                 "patterns (jpg, png, webp, bmp, tif).")],
    model: Annotated[Optional[Path], typer.Option(
        "--model", "-m", help="An artifact: .onnx (ONNX Runtime, or --runtime) or .engine (TensorRT, with its "
        ".engine.json sidecar).", show_default=False)] = None,
    url: Annotated[Optional[str], typer.Option(
        help="Instead of --model: a running Triton, http://HOST:PORT or grpc://HOST:PORT (KServe v2); "
        "preprocessing and labels come from the served model.", show_default=False)] = None,
    model_name: Annotated[Optional[str], typer.Option(
        "--model-name", help="With --model: for an ONNX without volo-export metadata, the registered variant "
        "whose preprocessing and labels to use. With --url: the served model (default: the one volo-export "
        "model there).")] = None,
    timeout: Annotated[float, typer.Option(
        help="With --url: seconds to wait for the server to connect and to answer each request.")] = 60.0,
    top_k: Annotated[int, typer.Option(help="How many classes per image.")] = 5,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per run (default: up to 32, within the "
                                                      "artifact's batch range).")] = None,
    as_json: AsJson = False,
    plugins: Plugins = None,
    runtime: RuntimeOption = None,
) -> None:
    """Top-k classes for images, with an .onnx or .engine (preprocessing from the artifact's metadata) or a
    model on a running Triton (--url)."""
    with user_errors():
        from volo_export.predict import PredictRequest, predict

        request = PredictRequest(tuple(images), model=model, url=url, model_name=model_name, top_k=top_k,
                                 batch_size=batch_size, timeout_s=timeout, plugins=tuple(plugins or ()),
                                 runtime=runtime)
        result = predict(request, NOTICES)
        if as_json:
            print_json(result.to_dict())
        else:
            show_tables(result)
