"""The `volo-export` command line: one small function per command, no logic.

Heavy libraries (torch, onnx, onnxruntime) are imported inside the commands
so `--help` is instant. Library errors become one line on stderr and a
non-zero exit code in `user_errors`, the only place that maps them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from volo_export.errors import VoloExportError

app = typer.Typer(
    name="volo-export",
    help="Export VOLO vision transformers to validated ONNX (and beyond).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
stdout = Console()

ModelName = Annotated[str, typer.Option("--model", "-m", help="Registered variant, e.g. volo_d1_224.")]
Checkpoint = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-c", help="Official .pth.tar, timm .pth/.bin/.safetensors or a plain state dict. "
    "Without it the weights are random.")]
Output = Annotated[Path, typer.Option("--output", "-o", help="Where to write the artifact.")]
ReportFile = Annotated[Optional[Path], typer.Option("--report", help="Also write the validation report as JSON.")]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a VoloExportError into 'error: <message>' and its exit code."""
    try:
        yield
    except VoloExportError as e:
        console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None


@contextlib.contextmanager
def stages() -> Iterator:
    """A spinner showing the current pipeline stage; yields the callback the library calls."""
    with console.status("starting") as status:
        def on_stage(text: str) -> None:
            console.log(text)
            status.update(text + " ...")

        yield on_stage


@app.command("onnx")
def onnx_command(
    model: ModelName,
    output: Output,
    checkpoint: Checkpoint = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (18-24). 20 has single-op LayerNormalization and Gelu.")] = 20,
    batch: Annotated[Optional[int], typer.Option(help="Static batch size (default: dynamic batch).")] = None,
    validate: Annotated[bool, typer.Option(help="Gate the ONNX against eager PyTorch before writing it.")] = True,
    validate_images: Annotated[Optional[Path], typer.Option(
        help="Folder of images for the gate (default: photos shipped with scikit-image).")] = None,
    report: ReportFile = None,
) -> None:
    """Export a VOLO to a validated ONNX file (dynamic batch, no Col2Im)."""
    with user_errors():
        from volo_export.errors import UsageError
        from volo_export.export.to_onnx import ExportOptions
        from volo_export.pipeline import OnnxRequest, export_onnx

        if report and not validate:
            raise UsageError("--report needs validation; drop --no-validate")
        if validate_images and not validate:
            raise UsageError("--validate-images needs validation; drop --no-validate")
        request = OnnxRequest(model=model, output=output, checkpoint=checkpoint,
                              export=ExportOptions(opset=opset, batch=batch), validate=validate,
                              validate_images=validate_images)
        with stages() as on_stage:
            result = export_onnx(request, on_stage)
        if result.info.random_weights:
            console.print("[bold yellow]warning:[/] no --checkpoint: exported RANDOM weights; "
                          "the model's outputs are meaningless (use only to test the pipeline)")
        for notice in result.notices:
            console.print(f"[yellow]notice:[/] {notice}")
        if result.report:
            stdout.print(result.report.table())
            for note in result.report.notes:
                console.print(f"[yellow]note:[/] {note}")
            if report:
                result.report.write_json(report)
        else:
            console.print("[bold yellow]warning:[/] --no-validate: the ONNX was NOT compared with eager PyTorch")
        size_mb = output.stat().st_size / 1e6
        stdout.print(f"wrote {output} ({size_mb:.1f} MB, opset {opset}, "
                     f"{'batch ' + str(batch) if batch else 'dynamic batch'}, {sum(result.op_types.values())} nodes)")


@app.command("models")
def models_command(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the registered VOLO variants."""
    from rich.table import Table

    from volo_export.models.variants import REGISTRY
    from volo_export.models.volo import count_macs

    rows = [dict(name=c.name, image_size=c.img_size, crop_pct=c.preprocessing.crop_pct,
                 layers=list(c.layers), embed_dims=list(c.embed_dims), gmacs=round(count_macs(c) / 1e9, 1),
                 published_top1=c.published_top1) for c in REGISTRY.values()]
    if as_json:
        stdout.print_json(json.dumps(rows))
        return
    table = Table(title="VOLO variants")
    for col in ("name", "image_size", "crop_pct", "layers", "embed_dims", "gmacs", "published_top1"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[c]) for c in r))
    stdout.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
