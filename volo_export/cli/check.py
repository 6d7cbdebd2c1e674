"""`volo-export check`: will TensorRT's ONNX parser take this graph? Offline rules (no TensorRT needed),
and the real parser of TensorRT or TensorRT-RTX where one is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import result_line, user_errors
from volo_export.cli.options import AsJson
from volo_export.cli.render import print_json, show_tables


def command(
    model: Annotated[Path, typer.Argument(help="ONNX file to check.")],
    trt: Annotated[int, typer.Option("--trt", help="TensorRT major version whose rules apply: 10 (the stricter) "
                                     "or 11.")] = 10,
    as_json: AsJson = False,
    trtexec: Annotated[bool, typer.Option("--trtexec", help="Also print the trtexec command that builds an "
                                          "engine from it (default batch profile 1/8/32).")] = False,
    real: Annotated[Optional[bool], typer.Option(
        "--real/--no-real", help="Also run the real ONNX parser (TensorRT, else TensorRT-RTX). Default: when one "
        "is installed; --real: it must be.", show_default=False)] = None,
) -> None:
    """Will TensorRT's ONNX parser take this graph? Offline rules, plus the real parser where installed."""
    def show(result) -> None:
        if as_json:
            print_json(result.to_dict())
            return
        show_tables(result)
        result_line(f"offline: {result.summary()}")
        if result.real is not None:
            result_line(f"real:    {result.real.summary()}")
            for issue in result.real.issues[1:]:
                result_line(f"         {issue.message()}")
        if result.trtexec:
            result_line(f"trtexec equivalent: {result.trtexec}")

    with user_errors(show):
        from volo_export.trt.check import check_artifact

        show(check_artifact(model, trt, trtexec, real))
