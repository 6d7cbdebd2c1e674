"""`volo-export predict`: top-k classes for images with any artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import stdout, user_errors
from volo_export.cli.options import Artifact, AsJson, Plugins
from volo_export.cli.render import print_json


def command(
    images: Annotated[list[Path], typer.Argument(help="Image files (jpg, png, webp, bmp).")],
    model: Artifact,
    top_k: Annotated[int, typer.Option(help="How many classes per image.")] = 5,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per run (default: up to 32, within the "
                                                      "artifact's batch range).")] = None,
    as_json: AsJson = False,
    plugins: Plugins = None,
) -> None:
    """Top-k classes for images, with an .onnx or .engine (preprocessing from the artifact's metadata)."""
    with user_errors():
        from rich.table import Table

        from volo_export.predict import predict_files
        from volo_export.runtime import open_runner

        runner = open_runner(model, plugins=tuple(plugins or ()))
        predictions = predict_files(runner, images, top_k, batch_size)
        if as_json:
            print_json({"model": str(model), "runtime": runner.describe(),
                        "predictions": [p.to_dict() for p in predictions]})
            return
        table = Table(title=f"{model.name} ({runner.info.model}, {runner.info.precision}, {runner.describe()})")
        for col in ("image", "rank", "class", "label", "probability"):
            table.add_column(col, justify="right" if col in ("rank", "class", "probability") else "left")
        for p in predictions:
            for rank, c in enumerate(p.top, 1):
                table.add_row(Path(p.file).name if rank == 1 else "", str(rank), str(c.index), c.label,
                              f"{c.probability:.1%}", end_section=rank == len(p.top))
        stdout.print(table)
