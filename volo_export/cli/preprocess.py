"""`volo-export preprocess`: images -> one float32 (N, 3, S, S) tensor file for the C++ app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import result_line, user_errors


def command(
    images: Annotated[list[Path], typer.Argument(help="Image files, in batch order.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Tensor file to write (format: examples/cpp/README.md).")],
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="Artifact whose preprocessing to use: .onnx, .engine (reads X.engine.json) or .engine.json.")] = None,
    model_name: Annotated[Optional[str], typer.Option(
        "--model-name", help="Registered variant whose preprocessing to use, e.g. volo_d1_224.")] = None,
) -> None:
    """Preprocess images into one float32 (N, 3, S, S) tensor file for the C++ app (volo_infer)."""
    with user_errors():
        from volo_export.preprocess import preprocessing_for, write_input_file

        prep = preprocessing_for(model, model_name)
        batch = write_input_file(images, prep, out)
        result_line(f"wrote {out}: float32 {tuple(batch.shape)} (size {prep.size}, crop_pct {prep.crop_pct}, "
                    f"{prep.interpolation})")
        for i, path in enumerate(images):
            result_line(f"  {i}: {path}")
