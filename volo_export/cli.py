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
        if checkpoint is None:
            console.print("[bold yellow]warning:[/] no --checkpoint: exporting RANDOM weights; "
                          "the model's outputs are meaningless (use only to test the pipeline)")
        with stages() as on_stage:
            result = export_onnx(request, on_stage)
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


@app.command("bench")
def bench_command(
    model: ModelName,
    checkpoint: Checkpoint = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    backends: Annotated[str, typer.Option(
        help="Comma-separated: eager, onnx-naive, onnx-fp32, onnx-fp16, onnx-int8, trt-fp16, trt-int8.")
    ] = "eager,onnx-naive,onnx-fp32,onnx-fp16,onnx-int8",
    threads: Annotated[int, typer.Option(help="Threads for every backend (0 = all usable cores).")] = 0,
    warmup: Annotated[int, typer.Option(help="Untimed calls per backend and batch size.")] = 2,
    iterations: Annotated[int, typer.Option(help="Timed rounds (one call per backend each).")] = 20,
    time_budget: Annotated[Optional[float], typer.Option(
        help="Stop a batch size's rounds after this many seconds (at least 3 rounds).")] = None,
    gemm_size: Annotated[int, typer.Option(help="n of the n^3 FP32 MatMul that measures the GEMM peak.")] = 2048,
    memory: Annotated[bool, typer.Option(help="Measure peak RSS per backend in a fresh process.")] = True,
    spin: Annotated[bool, typer.Option(
        help="Let idle runtime threads busy-wait (off: fairer interleaving on shared cores).")] = False,
    artifacts: Annotated[Optional[Path], typer.Option(help="Keep the built ONNX files in this folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the report as JSON.")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also plot throughput and latency to a PNG (matplotlib).")] = None,
) -> None:
    """Benchmark eager PyTorch, the naive export and volo-export's artifacts in one interleaved run."""
    with user_errors():
        from volo_export.bench import BenchSettings
        from volo_export.benchmark import BenchRequest, require_matplotlib, run_benchmark
        from volo_export.errors import UsageError

        if plot:
            require_matplotlib()
        try:
            sizes = tuple(int(b) for b in batch.split(","))
        except ValueError:
            raise UsageError(f"--batch takes comma-separated integers, got {batch!r}") from None
        request = BenchRequest(
            model=model, checkpoint=checkpoint, backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
            settings=BenchSettings(batch_sizes=sizes, warmup=warmup, iterations=iterations, time_budget_s=time_budget),
            threads=threads, gemm_size=gemm_size, memory=memory, artifacts=artifacts, spinning=spin,
        )
        with timing_progress() as (on_stage, on_progress):
            result = run_benchmark(request, on_stage, on_progress)
        if as_json:
            stdout.print_json(json.dumps(result.to_dict()))
        else:
            wide = stdout if stdout.is_terminal else Console(width=160)  # files and pipes get the whole table
            wide.print(result.table())
            for line in result.footnotes() + result.environment_lines() + result.notes:
                wide.print(line, highlight=False)
        if report:
            result.write_json(report)
        if plot:
            result.plot(plot)


@contextlib.contextmanager
def timing_progress() -> Iterator:
    """Stage lines plus a progress bar over the timed calls; yields (on_stage, on_progress)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("starting", total=None)

        def on_stage(text: str) -> None:
            progress.console.log(text)
            progress.update(task, description=text)

        def on_progress(done: int, total: int, text: str) -> None:
            progress.update(task, completed=done, total=total, description=text)

        yield on_stage, on_progress


def main() -> None:
    app()


if __name__ == "__main__":
    main()
