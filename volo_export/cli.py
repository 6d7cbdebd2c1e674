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
ValidateImages = Annotated[Optional[Path], typer.Option(
    help="Folder of images for the gate (default: photos shipped with scikit-image; for fp16/int8 also "
    "calibration images beyond --calib-size). Class folders named 0..N-1 give accuracy too.")]
Precision = Annotated[str, typer.Option(help="fp32, fp16 (sensitive ops stay fp32) or int8 (explicit Q/DQ).")]
Target = Annotated[str, typer.Option(help="int8 graph for: tensorrt (TensorRT-parseable Q/DQ, also runs on ONNX "
                                     "Runtime) or cpu (fastest on ONNX Runtime CPU, CPU-only).")]
IoDtype = Annotated[str, typer.Option(help="fp16 graph input/output type: float32 or float16.")]
CalibData = Annotated[Optional[str], typer.Option(
    help="int8 calibration data: a folder of images (recursive), a .npy/.npz of (N,3,S,S) preprocessed "
    "tensors, or 'random' (pipeline tests only; stamped in the metadata).")]
CalibSize = Annotated[int, typer.Option(help="Calibration samples to use.")]
CalibMethod = Annotated[str, typer.Option(help="Range method: minmax, entropy or percentile.")]
CalibCache = Annotated[Optional[Path], typer.Option(
    help="Calibration cache file (default: beside --output, <name>.calib.json); reused only when graph, "
    "data, preprocessing, method and size match.")]
ExcludeNodes = Annotated[Optional[list[str]], typer.Option(
    help="Node names to keep in float (comma-separated or repeated).")]
ExcludeOpTypes = Annotated[Optional[list[str]], typer.Option(
    help="int8: op types not to quantise, e.g. Conv (comma-separated or repeated).")]
Fallback = Annotated[bool, typer.Option(
    help="int8: when the gate fails, keep the most sensitive layers in float32 until it passes.")]
MinCosine = Annotated[Optional[float], typer.Option(help="Gate override: minimum cosine vs the reference.")]
MinTop1 = Annotated[Optional[float], typer.Option(help="Gate override: minimum top-1 agreement (0..1).")]
MaxAccDrop = Annotated[Optional[float], typer.Option(
    help="Gate override: largest top-1 accuracy drop vs FP32 (0.01 = 1 point), where images are labelled.")]
ValidateCount = Annotated[int, typer.Option(help="fp16/int8: held-out images the gate uses.")]


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


@contextlib.contextmanager
def progress() -> Iterator[tuple]:
    """A progress display: yields (on_stage(text), on_progress(done, total)) for the library to call."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def on_stage(text: str) -> None:
            bar.console.print(f"[dim]-[/] {text}", highlight=False)
            bar.update(task, description=text[:70], total=None, completed=0)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, total=total, completed=done)

        yield on_stage, on_progress


def _names(values: Optional[list[str]]) -> tuple[str, ...]:
    """Repeated and/or comma-separated option values -> names."""
    return tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())


def _precision_request(precision: str, target: str, io_dtype: str, calib_data: Optional[str], calib_size: int,
                       calib_method: str, calib_cache: Optional[Path], exclude_nodes, exclude_op_types,
                       fallback: bool, min_cosine, min_top1, max_accuracy_drop, validate_count: int):
    from volo_export.precision.convert import PrecisionRequest
    from volo_export.precision.gate import GateOverrides

    return PrecisionRequest(precision=precision, target=target, io_dtype=io_dtype, calib_data=calib_data,
                            calib_size=calib_size, calib_method=calib_method, calib_cache=calib_cache,
                            exclude_nodes=_names(exclude_nodes), exclude_op_types=_names(exclude_op_types),
                            fallback=fallback, gate=GateOverrides(min_cosine, min_top1, max_accuracy_drop),
                            validate_count=validate_count)


@contextlib.contextmanager
def _failed_gate_shown(report_path: Optional[Path]) -> Iterator[None]:
    """On a failed gate, show its report (and write --report) before the one-line error."""
    from volo_export.errors import ValidationFailed

    try:
        yield
    except ValidationFailed as e:
        if e.report is not None:
            _show_report(e.report, report_path)
        raise


def _show_report(report, report_path: Optional[Path]) -> None:
    stdout.print(report.table())
    if report.steps:
        stdout.print(report.steps_table())
    if report.kept:
        console.print(f"kept in float32 ({len(report.kept)}): " + "; ".join(report.kept[:12])
                      + (" ..." if len(report.kept) > 12 else ""), highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if report_path:
        report.write_json(report_path)


def _show_result(result, report_path: Optional[Path]) -> None:
    if result.info.random_weights:
        console.print("[bold yellow]warning:[/] no --checkpoint: exported RANDOM weights; "
                      "the model's outputs are meaningless (use only to test the pipeline)")
    for notice in result.notices:
        console.print(f"[yellow]notice:[/] {notice}", highlight=False)
    for earlier in result.reports[:-1]:
        stdout.print(earlier.table())
    if result.report:
        _show_report(result.report, report_path)
    else:
        console.print("[bold yellow]warning:[/] --no-validate: the ONNX was NOT compared with eager PyTorch")
    info = result.info
    size_mb = result.output.stat().st_size / 1e6
    what = info.precision + (f", target {info.target}" if info.precision == "int8" else "")
    stdout.print(f"wrote {result.output} ({size_mb:.1f} MB, {what}, opset {info.opset}, "
                 f"{sum(result.op_types.values())} nodes)")


@app.command("onnx")
def onnx_command(
    model: ModelName,
    output: Output,
    checkpoint: Checkpoint = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (18-24). 20 has single-op LayerNormalization and Gelu.")] = 20,
    batch: Annotated[Optional[int], typer.Option(help="Static batch size (default: dynamic batch).")] = None,
    validate: Annotated[bool, typer.Option(help="Gate the ONNX against eager PyTorch before writing it.")] = True,
    validate_images: ValidateImages = None,
    report: ReportFile = None,
    precision: Precision = "fp32",
    target: Target = "tensorrt",
    io_dtype: IoDtype = "float32",
    calib_data: CalibData = None,
    calib_size: CalibSize = 256,
    calib_method: CalibMethod = "minmax",
    calib_cache: CalibCache = None,
    exclude_nodes: ExcludeNodes = None,
    exclude_op_types: ExcludeOpTypes = None,
    fallback: Fallback = True,
    min_cosine: MinCosine = None,
    min_top1: MinTop1 = None,
    max_accuracy_drop: MaxAccDrop = None,
    validate_count: ValidateCount = 64,
) -> None:
    """Export a VOLO to a validated ONNX file (dynamic batch, no Col2Im), optionally FP16 or INT8."""
    with user_errors():
        from volo_export.errors import UsageError
        from volo_export.export.to_onnx import ExportOptions
        from volo_export.pipeline import OnnxRequest, export_onnx

        if report and not validate:
            raise UsageError("--report needs validation; drop --no-validate")
        if validate_images and not validate:
            raise UsageError("--validate-images needs validation; drop --no-validate")
        lowered = _precision_request(precision, target, io_dtype, calib_data, calib_size, calib_method, calib_cache,
                                     exclude_nodes, exclude_op_types, fallback, min_cosine, min_top1,
                                     max_accuracy_drop, validate_count)
        request = OnnxRequest(model=model, output=output, checkpoint=checkpoint,
                              export=ExportOptions(opset=opset, batch=batch), validate=validate,
                              validate_images=validate_images, precision=lowered)
        with _failed_gate_shown(report), progress() as (on_stage, on_progress):
            result = export_onnx(request, on_stage, on_progress)
        _show_result(result, report)


@app.command("quantize")
def quantize_command(
    source: Annotated[Path, typer.Argument(help="An FP32 ONNX written by `volo-export onnx`.")],
    output: Output,
    precision: Precision = "int8",
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="The checkpoint SOURCE was exported from, to gate against eager PyTorch "
        "(without it: bundled weights, else the FP32 ONNX is the reference).")] = None,
    target: Target = "tensorrt",
    io_dtype: IoDtype = "float32",
    calib_data: CalibData = None,
    calib_size: CalibSize = 256,
    calib_method: CalibMethod = "minmax",
    calib_cache: CalibCache = None,
    exclude_nodes: ExcludeNodes = None,
    exclude_op_types: ExcludeOpTypes = None,
    fallback: Fallback = True,
    min_cosine: MinCosine = None,
    min_top1: MinTop1 = None,
    max_accuracy_drop: MaxAccDrop = None,
    validate_images: ValidateImages = None,
    validate_count: ValidateCount = 64,
    report: ReportFile = None,
) -> None:
    """Convert an existing FP32 export to FP16 or INT8, gated like `onnx --precision`."""
    with user_errors():
        from volo_export.pipeline import QuantizeRequest, quantize_onnx

        lowered = _precision_request(precision, target, io_dtype, calib_data, calib_size, calib_method, calib_cache,
                                     exclude_nodes, exclude_op_types, fallback, min_cosine, min_top1,
                                     max_accuracy_drop, validate_count)
        request = QuantizeRequest(source=source, output=output, precision=lowered, checkpoint=checkpoint,
                                  validate_images=validate_images)
        with _failed_gate_shown(report), progress() as (on_stage, on_progress):
            result = quantize_onnx(request, on_stage, on_progress)
        _show_result(result, report)


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
