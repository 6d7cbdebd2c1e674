"""Reproduce the README's performance table with one command.

    python benchmarks/readme_table.py                      # volo_d1_224, batch 1 and 8
    python benchmarks/readme_table.py --batch 1,8,32 --iterations 10 --plot
    python benchmarks/readme_table.py --name avx512            # results/volo_d1_224.avx512.{md,json}

Numbers from different CPUs are kept apart: `--name` (default: the CPU's ISA tier, e.g. avx2 or
avx512-vnni) names the result files, and the table's footnotes name the CPU and its ISA.

Runs `volo-export bench` (every backend, interleaved, with the GEMM probe, the limits and the
peak-memory probe) and writes, under benchmarks/results/:
  <model>.<isa>.md    the markdown table pasted into README.md ("Performance")
  <model>.<isa>.json  every number, per-call latencies and the environment
  <model>.<isa>.png   with --plot (needs matplotlib)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp: idle eager threads must not spin
RESULTS = Path(__file__).resolve().parent / "results"
# Every CPU backend (ONNX Runtime and OpenVINO, FP32/FP16/BF16/INT8) and the TensorRT ones where registered.
ALL_BACKENDS = ("eager,onnx-naive,onnx-fp32,onnx-fp16,onnx-bf16,onnx-int8,onnx-int8-trt,"
                "openvino-fp32,openvino-bf16,openvino-int8,openvino-int8-trt")


def isa_name() -> str:
    """avx2, avx512, avx512-vnni, amx...: which machine class a result file belongs to."""
    from volo_export.hardware import cpu_isa

    isa = cpu_isa()
    if isa.amx:
        return "amx"
    if isa.avx512:
        return "avx512-vnni" if isa.vnni else "avx512"
    return "avx2" if isa.has("avx2") else "baseline"


def main(
    model: Annotated[str, typer.Option(help="Registered variant.")] = "volo_d1_224",
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    backends: Annotated[str, typer.Option(help="Comma-separated backends.")] = ALL_BACKENDS,
    iterations: Annotated[int, typer.Option(help="Timed rounds per batch size.")] = 10,
    warmup: Annotated[int, typer.Option(help="Warm-up calls per backend and batch size.")] = 2,
    threads: Annotated[int, typer.Option(help="Threads for every backend (0 = all usable cores).")] = 0,
    output: Annotated[Path, typer.Option(help="Folder for the .md/.json/.png results.")] = RESULTS,
    plot: Annotated[bool, typer.Option(help="Also write a PNG plot (matplotlib).")] = False,
    artifacts: Annotated[Optional[Path], typer.Option(help="Keep the built ONNX files in this folder.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Suffix of the result files (default: the ISA tier).")] = None,
) -> None:
    from rich.console import Console

    from volo_export.bench import render
    from volo_export.io import write_json
    from volo_export.render import rich_table
    from volo_export.bench.run import BenchRequest, run_benchmark
    from volo_export.timing import BenchSettings
    from volo_export.progress import StageLog
    from volo_export.io import atomic_output

    console = Console(stderr=True)
    if plot:
        render.require_matplotlib()
    request = BenchRequest(model=model, backends=tuple(backends.split(",")), threads=threads, artifacts=artifacts,
                           settings=BenchSettings(batch_sizes=tuple(int(b) for b in batch.split(",")),
                                                  warmup=warmup, iterations=iterations))
    report = run_benchmark(request, StageLog(console.log))
    output.mkdir(parents=True, exist_ok=True)
    stem = f"{model}.{name or isa_name()}"
    markdown = render.markdown(report)
    with atomic_output(output / f"{stem}.md") as tmp:
        tmp.write_text(markdown)
    write_json(output / f"{stem}.json", report.to_dict(with_samples=True))
    if plot:
        render.plot(report, output / f"{stem}.png")
    Console(width=200).print(rich_table(report.tables()[0]))
    print(markdown)


if __name__ == "__main__":
    typer.run(main)
