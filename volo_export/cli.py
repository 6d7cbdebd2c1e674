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
console = Console(stderr=True, log_path=False)
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
    help="Op types to keep in float: int8 MatMul/Gemm/Conv/ConvTranspose, fp16 any (comma-separated or repeated).")]
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
    """`timing_progress` for library calls that report (done, total) under the current stage's text."""
    with timing_progress() as (on_stage, on_progress):
        current = ["starting"]

        def stage(text: str) -> None:
            current[0] = text
            on_stage(text)

        yield stage, lambda done, total: on_progress(done, total, current[0])


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
    from volo_export.trt.check import check_model

    verdict = check_model(result.output).summary()
    if info.target == "cpu":
        verdict += " (expected: --target cpu is ONNX Runtime CPU only)"
    stdout.print(f"TensorRT check: {verdict}", markup=False, highlight=False, soft_wrap=True)


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


@app.command("preprocess")
def preprocess_command(
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
        stdout.print(f"wrote {out}: float32 {tuple(batch.shape)} (size {prep.size}, crop_pct {prep.crop_pct}, "
                     f"{prep.interpolation})", highlight=False, soft_wrap=True)
        for i, path in enumerate(images):
            stdout.print(f"  {i}: {path}", highlight=False, soft_wrap=True)
Artifact = Annotated[Path, typer.Option("--model", "-m", help="An artifact: .onnx (ONNX Runtime) or .engine "
                                        "(TensorRT, with its .engine.json sidecar).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Plugins = Annotated[Optional[list[Path]], typer.Option(
    "--plugins", help="TensorRT plugin library (.so/.dll) to load; repeat for several.")]


@app.command("check")
def check_command(
    model: Annotated[Path, typer.Argument(help="ONNX file to check.")],
    trt: Annotated[int, typer.Option("--trt", help="TensorRT major version: 10 (stricter: opsets 9-24) or 11.")] = 10,
    as_json: AsJson = False,
    trtexec: Annotated[bool, typer.Option("--trtexec", help="Also print the trtexec command that builds an "
                                          "engine from it (default batch profile 1/8/32).")] = False,
) -> None:
    """Offline check: will TensorRT's ONNX parser take this graph? (No TensorRT needed.)"""
    with user_errors():
        from volo_export.errors import TensorRTCheckFailed
        from volo_export.trt.check import check_model, first_violation

        result = check_model(model, trt=trt)
        if trtexec:
            from volo_export.trt.build import trtexec_for

            result.trtexec = trtexec_for(model, trt)
        if as_json:
            stdout.print_json(json.dumps(result.to_dict()))
        else:
            stdout.print(result.table())
            stdout.print(result.summary(), markup=False, highlight=False, soft_wrap=True)
            if result.trtexec:
                stdout.print(f"trtexec equivalent: {result.trtexec}", markup=False, highlight=False, soft_wrap=True)
        if not result.passed:
            raise TensorRTCheckFailed(f"{model.name}: {len(result.errors)} violation(s) of TensorRT {trt}'s ONNX "
                                      f"parser rules; first: {first_violation(result)}")


@app.command("engine")
def engine_command(
    model: Annotated[Path, typer.Argument(help="ONNX file exported by volo-export (FP32, FP16 or INT8 Q/DQ).")],
    output: Output,
    min_batch: Annotated[Optional[int], typer.Option(help="Smallest batch of the profile (default 1).")] = None,
    opt_batch: Annotated[Optional[int], typer.Option(
        help="Batch TensorRT tunes for (default 8, within min..max).")] = None,
    max_batch: Annotated[Optional[int], typer.Option(help="Largest batch of the profile (default 32).")] = None,
    workspace: Annotated[Optional[int], typer.Option(help="Workspace limit in MiB (default: TensorRT's).")] = None,
    opt_level: Annotated[int, typer.Option(help="Builder optimization level 0-5 (TensorRT default 3).")] = 3,
    timing_cache: Annotated[Optional[Path], typer.Option(
        help="Timing cache file: loaded if present, saved after.")] = None,
    hardware_compat: Annotated[str, typer.Option(
        help="none | ampere-plus | same-compute-capability: run on other GPUs, maybe slower.")] = "none",
    version_compatible: Annotated[bool, typer.Option(help="Plan loads on newer TensorRT of the same major.")] = False,
    plugins: Plugins = None,
    strongly_typed: Annotated[bool, typer.Option(help="Strongly typed network (precision from the graph); "
                                                 "TensorRT 11 knows no other mode.")] = True,
    check: Annotated[bool, typer.Option(help="Run the offline TensorRT check first.")] = True,
) -> None:
    """Build a TensorRT engine (bare plan) + X.engine.json provenance sidecar."""
    with user_errors():
        from volo_export.trt.build import EngineRequest, build_engine
        from volo_export.trt.config import BuildSettings

        settings = BuildSettings(min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                                 workspace_mib=workspace, opt_level=opt_level, timing_cache=timing_cache,
                                 hardware_compat=hardware_compat, version_compatible=version_compatible,
                                 plugins=tuple(plugins or ()), strongly_typed=strongly_typed)
        with _build_progress() as progress:
            result = build_engine(EngineRequest(model, output, settings, check), progress)
        prov = result.provenance
        for warning in result.warnings[:5]:
            console.print(f"[yellow]TensorRT:[/] {warning}", highlight=False, soft_wrap=True)
        lo, opt, hi = prov.profile.batches
        stdout.print(f"wrote {output} ({prov.engine_bytes / 1e6:.1f} MB) + {result.sidecar.name} in "
                     f"{result.seconds:.0f} s: {prov.environment.describe()}, batch {lo}/{opt}/{hi}",
                     markup=False, highlight=False, soft_wrap=True)
        stdout.print(f"trtexec equivalent: {prov.trtexec}", markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _build_progress():
    """Rich rendering of the TensorRT builder's phases (IProgressMonitor), with a spinner for the rest."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from volo_export.trt.build import BuildProgress

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        class RichProgress(BuildProgress):
            def __init__(self):
                self.tasks: dict = {}

            def stage(self, text: str) -> None:
                console.log(text)

            def phase_start(self, name, parent, steps):
                self.tasks[name] = bar.add_task(("  " if parent else "") + name, total=steps)

            def step(self, name, step):
                bar.update(self.tasks[name], completed=step + 1)
                return True

            def phase_finish(self, name):
                bar.remove_task(self.tasks.pop(name))

        yield RichProgress()


@app.command("validate")
def validate_command(
    engine: Annotated[Optional[Path], typer.Option(help="TensorRT engine (.engine + .engine.json sidecar).")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="ONNX file (any precision).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(
        "--checkpoint", "-c", help="The weights the artifact was exported from (sha256 is compared with its "
        "metadata).")] = None,
    validate_images: Annotated[Optional[Path], typer.Option(
        help="Folder of images (default: photos shipped with scikit-image).")] = None,
    report: ReportFile = None,
    as_json: AsJson = False,
    plugins: Plugins = None,
) -> None:
    """Compare an .onnx or .engine with eager PyTorch (same report as the export gate)."""
    with user_errors():
        from volo_export.errors import UsageError, ValidationFailed
        from volo_export.validate_artifact import ArtifactCheckRequest, validate_artifact

        if (engine is None) == (model is None):
            raise UsageError("give exactly one of --engine X.engine or --model X.onnx")
        artifact = engine or model
        request = ArtifactCheckRequest(artifact, checkpoint, validate_images, plugins=tuple(plugins or ()))
        with stages() as on_stage:
            on_stage(f"running {artifact.name} and eager PyTorch on the same images")
            result = validate_artifact(request)
        if as_json:
            stdout.print_json(json.dumps(result.to_dict()))
        else:
            stdout.print(result.table())
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
        if report:
            result.write_json(report)
        if not result.passed:
            raise ValidationFailed(f"{artifact.name} differs from eager PyTorch: {result.failures[0]}")


@app.command("predict")
def predict_command(
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
            stdout.print_json(json.dumps({"model": str(model), "providers": list(runner.providers),
                                          "predictions": [p.to_dict() for p in predictions]}))
            return
        table = Table(title=f"{model.name} ({runner.info.model}, {runner.info.precision}, {runner.providers[0]})")
        for col in ("image", "rank", "class", "label", "probability"):
            table.add_column(col, justify="right" if col in ("rank", "class", "probability") else "left")
        for p in predictions:
            for rank, c in enumerate(p.top, 1):
                table.add_row(Path(p.file).name if rank == 1 else "", str(rank), str(c.index), c.label,
                              f"{c.probability:.1%}", end_section=rank == len(p.top))
        stdout.print(table)


@app.command("bench")
def bench_command(
    model: ModelName,
    checkpoint: Checkpoint = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    backends: Annotated[str, typer.Option(
        help="Comma-separated: eager, onnx-naive, onnx-fp32, onnx-fp16, onnx-int8 (--target cpu), "
        "onnx-int8-trt (--target tensorrt on CPU), trt-fp16, trt-int8.")
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
