"""`volo-export predict`: top-k classes for images with any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import notice, stdout, user_errors, warning
from volo_export.cli.options import AsJson, Plugins, RuntimeOption
from volo_export.cli.render import print_json


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
        from rich.markup import escape
        from rich.table import Table

        from volo_export.errors import UsageError
        from volo_export.predict import model_info, predict_files
        from volo_export.runtime.base import DEFAULT_BATCH
        from volo_export.preprocess import expand_images

        if (model is None) == (url is None):
            raise UsageError("give exactly one of --model (an artifact) or --url (a running Triton)")
        if url is not None and runtime is not None:
            raise UsageError("--runtime applies to --model: a served model runs where Triton runs it")
        files = expand_images(images)
        if url is not None:
            from volo_export.serve.client import open_served_runner

            runner = open_served_runner(url, model_name, timeout)
            info, source = runner.info, runner.model.name
        else:
            from volo_export.runtime import open_runner

            runner = open_runner(model, plugins=tuple(plugins or ()), runtime=runtime.value if runtime else None,
                                 batch=batch_size or min(len(files), DEFAULT_BATCH))
            for line in runner.notices:
                notice(line)
            info, source = model_info(runner, model_name), model.name
        if info.random_weights:
            warning(f"{source} was exported with RANDOM weights: these predictions are meaningless")
        predictions = predict_files(runner, files, top_k, batch_size, info)
        if as_json:
            print_json({"model": str(model or runner.name), "runtime": runner.describe(),
                        "predictions": [p.to_dict() for p in predictions]})
            return
        table = Table(title=escape(f"{source} ({info.model}, {info.precision}, {runner.describe()})"))
        for col in ("image", "rank", "class", "label", "probability"):
            table.add_column(col, justify="right" if col in ("rank", "class", "probability") else "left")
        for p in predictions:
            for rank, c in enumerate(p.top, 1):
                table.add_row(escape(Path(p.file).name) if rank == 1 else "", str(rank), str(c.index), escape(c.label),
                              f"{c.probability:.1%}", end_section=rank == len(p.top))
        stdout.print(table)
