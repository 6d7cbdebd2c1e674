"""Issue 2's benchmark: export + validate time of volo_d1_224, and ONNX Runtime CPU latency of this
export next to the naive export of the unmodified model (Col2Im), at batch 1 and 8, in one run.

    python benchmarks/export_vs_naive.py [--model volo_d1_224] [--iterations 10]

Ours must not be slower: exits 1 when this export's median latency is above the naive
export's at any batch size (a benchmark, not a timed test: rerun on a quiet machine before
trusting a failure).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer


def main(
    model: Annotated[str, typer.Option(help="Registered variant.")] = "volo_d1_224",
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    iterations: Annotated[int, typer.Option(help="Timed rounds per batch size.")] = 10,
    warmup: Annotated[int, typer.Option(help="Warm-up calls per backend and batch size.")] = 2,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads (0 = all usable cores).")] = 0,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from volo_export.bench.run import BenchRequest, run_benchmark
    from volo_export.timing import BenchSettings
    from volo_export.progress import StageLog
    from volo_export.pipeline import OnnxRequest, export_onnx

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="volo-export-vs-naive-") as tmp:
        ours = Path(tmp) / f"{model}.onnx"
        t0 = time.perf_counter()
        exported = export_onnx(OnnxRequest(model=model, output=ours), StageLog(console.log))
        total_s = time.perf_counter() - t0
        request = BenchRequest(model=model, backends=("onnx-naive", "onnx-fp32"), prebuilt={"onnx-fp32": ours},
                               threads=threads, memory=False,
                               settings=BenchSettings(batch_sizes=tuple(int(b) for b in batch.split(",")),
                                                      warmup=warmup, iterations=iterations))
        report = run_benchmark(request, StageLog(console.log))

    out = Console(width=160)
    t = exported.timings
    naive_build = next(b.build_s for b in report.backends if b.name == "onnx-naive")
    out.print(f"volo-export onnx --model {model}: {total_s:.1f} s in all (load {t['load_s']:.1f} s, "
              f"export {t['export_s']:.1f} s, validate {t['validate_s']:.1f} s; gate "
              f"{'PASSED' if exported.report.passed else 'FAILED'}); naive export alone: {naive_build:.1f} s")
    table = Table(title=f"ONNX Runtime CPU, {report.threads} threads, interleaved ({report.environment['cpu']})")
    for col in ("batch", "naive p50 ms", "ours p50 ms", "naive p90 ms", "ours p90 ms", "speed-up (p50)", "verdict"):
        table.add_column(col, justify="right")
    slower = []
    for b in request.settings.batch_sizes:
        naive, mine = report.row("onnx-naive", b), report.row("onnx-fp32", b)
        speedup = naive.p50_ms / mine.p50_ms
        if speedup < 1:
            slower.append(b)
        table.add_row(str(b), f"{naive.p50_ms:.1f}", f"{mine.p50_ms:.1f}", f"{naive.p90_ms:.1f}",
                      f"{mine.p90_ms:.1f}", f"{speedup:.2f}x", "ok" if speedup >= 1 else "SLOWER")
    out.print(table)
    for line in report.environment_lines():
        out.print(line, highlight=False)
    if slower:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
