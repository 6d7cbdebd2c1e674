"""`volo-export predict`: top-k classes for images with any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import stdout, user_errors, warning
from volo_export.cli.options import Artifact, AsJson, Plugins
from volo_export.cli.render import print_json


def command(
    images: Annotated[list[Path], typer.Argument(help="Image files, folders of images (recursive) or glob "
                                                 "patterns (jpg, png, webp, bmp, tif).")],
    model: Artifact,
    model_name: Annotated[Optional[str], typer.Option(
        "--model-name", help="For an ONNX without volo-export metadata: the registered variant whose "
        "preprocessing and labels to use.")] = None,
    top_k: Annotated[int, typer.Option(help="How many classes per image.")] = 5,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per run (default: up to 32, within the "
                                                      "artifact's batch range).")] = None,
    as_json: AsJson = False,
    plugins: Plugins = None,
) -> None:
    """Top-k classes for images, with an .onnx or .engine (preprocessing from the artifact's metadata)."""
    with user_errors():
        from rich.markup import escape
        from rich.table import Table

        from volo_export.predict import model_info, predict_files
        from volo_export.preprocess import expand_images
        from volo_export.runtime import open_runner

        files = expand_images(images)
        runner = open_runner(model, plugins=tuple(plugins or ()))
        info = model_info(runner, model_name)
        if info.random_weights:
            warning(f"{model.name} was exported with RANDOM weights: these predictions are meaningless")
        predictions = predict_files(runner, files, top_k, batch_size, info)
        if as_json:
            print_json({"model": str(model), "runtime": runner.describe(),
                        "predictions": [p.to_dict() for p in predictions]})
            return
        table = Table(title=escape(f"{model.name} ({info.model}, {info.precision}, {runner.describe()})"))
        for col in ("image", "rank", "class", "label", "probability"):
            table.add_column(col, justify="right" if col in ("rank", "class", "probability") else "left")
        for p in predictions:
            for rank, c in enumerate(p.top, 1):
                table.add_row(escape(Path(p.file).name) if rank == 1 else "", str(rank), str(c.index), escape(c.label),
                              f"{c.probability:.1%}", end_section=rank == len(p.top))
        stdout.print(table)
