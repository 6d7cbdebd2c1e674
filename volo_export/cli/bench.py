"""`volo-export bench`: eager PyTorch, the naive export and volo-export's artifacts (ONNX Runtime and OpenVINO)
in one interleaved run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from volo_export.cli.console import result_line, user_errors
from volo_export.cli.options import AsJson, Checkpoint, ModelName, ReportFile, Runtime, integers, names
from volo_export.cli.progress import progress
from volo_export.cli.render import print_json, show_tables
from volo_export.io import write_json


def command(
    model: ModelName,
    checkpoint: Checkpoint = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    backends: Annotated[Optional[str], typer.Option(
        help="Comma-separated: eager, onnx-naive, onnx-fp32, onnx-fp16, onnx-bf16, onnx-int8 (--target cpu), "
        "onnx-int8-trt (--target tensorrt on CPU), openvino-fp32, openvino-bf16, openvino-int8 (--target "
        "openvino), openvino-int8-trt. Default: eager, onnx-naive and the fp32/fp16/bf16/int8 backends of every "
        "runtime (or of --runtime).", show_default=False)] = None,
    runtime: Annotated[Optional[Runtime], typer.Option(
        help="Only this runtime's backends (with eager and onnx-fp32, the baseline); auto: every runtime.",
        show_default=False)] = None,
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
    as_json: AsJson = False,
    report: ReportFile = None,
    plot: Annotated[Optional[Path], typer.Option(help="Also plot throughput and latency to a PNG (matplotlib).")] = None,
) -> None:
    """Benchmark eager PyTorch, the naive export and volo-export's artifacts in one interleaved run."""
    with user_errors():
        from volo_export.bench import render
        from volo_export.bench.backends import backends_for_runtime
        from volo_export.bench.run import BenchRequest, run_benchmark
        from volo_export.timing import BenchSettings

        from volo_export.io import distinct_outputs

        distinct_outputs({"--checkpoint": checkpoint}, {"--report": report, "--plot": plot})
        if plot:
            render.require_matplotlib()
        sizes = integers(batch, "--batch")
        request = BenchRequest(
            model=model, checkpoint=checkpoint,
            backends=names([backends]) if backends else backends_for_runtime(runtime.value if runtime else None),
            settings=BenchSettings(batch_sizes=sizes, warmup=warmup, iterations=iterations, time_budget_s=time_budget),
            threads=threads, gemm_size=gemm_size, memory=memory, artifacts=artifacts, spinning=spin,
        )
        with progress() as shown:
            result = run_benchmark(request, shown)
        if as_json:
            print_json(result.to_dict())
        else:
            show_tables(result)
            for line in result.footnotes() + result.environment_lines() + result.limit_lines() + result.notes:
                result_line(line)
        if report:
            write_json(report, result.to_dict(with_samples=True))
        if plot:
            render.plot(result, plot)
