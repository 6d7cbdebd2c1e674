"""FP32 vs FP16 vs INT8 (both targets) on ONNX Runtime CPU, gated and timed in one interleaved run.

    python benchmarks/precision_cpu.py                       # volo_d1_224, random weights, batch 1 and 8
    python benchmarks/precision_cpu.py --threads 1 --iterations 10 --profile
    python benchmarks/precision_cpu.py --model volo_tiny_digits --report results/precision_tiny.json

1-2. `volo-export bench`'s run_benchmark builds the FP32 ONNX (random weights are seeded; or
   --checkpoint) and FP16, INT8 --target tensorrt and INT8 --target cpu from it as `volo-export
   quantize` does: calibration on real images that ship with the dependencies (scikit-image
   photo crops; the digits calib split for the tiny model), gated against eager PyTorch on
   held-out images. Their gate metrics are printed.
3. It times the four graphs interleaved (round-robin calls, rotating order): latency
   p50/p90/p99 and images/s.
4. Print throughput ratios vs FP32 per batch size; with --profile, kernel time by op type
   (ONNX Runtime's profiler) for FP32 and INT8 cpu at the largest batch.

On a shared machine compare ratios from one run only; absolute numbers move with other load.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

BACKENDS = ("onnx-fp32", "onnx-fp16", "onnx-int8-trt", "onnx-int8")


def gate_table(gates: dict):
    """{backend: gate Report as JSON data} -> a rich table."""
    from rich.table import Table

    table = Table(title="gates (vs eager PyTorch, held-out images)")
    for col in ("backend", "gate", "images", "min cosine", "mean abs", "max abs", "top-1", "top-5"):
        table.add_column(col, justify="right")
    for backend, report in gates.items():
        pooled = report["comparisons"][-1]
        table.add_row(backend, "PASS" if report["passed"] else "FAIL", str(pooled["batch_size"]),
                      f"{min(c['min_cosine'] for c in report['comparisons']):.5f}", f"{pooled['mean_abs']:.2e}",
                      f"{pooled['max_abs']:.2e}", f"{pooled['top1_agreement']:.1%}", f"{pooled['top5_agreement']:.1%}")
    return table


def ratio_table(bench):
    from rich.table import Table

    table = Table(title="throughput vs FP32 (same run, interleaved)")
    batches = sorted({r.batch_size for r in bench.results})
    table.add_column("backend")
    for b in batches:
        table.add_column(f"batch {b}: img/s", justify="right")
        table.add_column(f"x fp32 @ {b}", justify="right")
    for backend in BACKENDS:
        row = [backend]
        for b in batches:
            r = bench.row(backend, b)
            base = bench.row("onnx-fp32", b)
            ok = r is not None and r.status == "ok" and base is not None and base.status == "ok"
            row += [f"{r.throughput:.2f}" if ok else "-", f"{r.throughput / base.throughput:.2f}" if ok else "-"]
        table.add_row(*row)
    return table


def profile_table(paths: dict, batch: int, threads: int):
    from rich.table import Table

    from volo_export.bench.profile import profile_onnx

    profiles = {b: {r.op_type: r for r in profile_onnx(paths[b], batch, threads)} for b in ("onnx-fp32", "onnx-int8")}
    totals = {b: sum(r.ms_per_run for r in p.values()) for b, p in profiles.items()}
    ops = sorted({op for p in profiles.values() for op in p},
                 key=lambda op: -max(p[op].ms_per_run if op in p else 0 for p in profiles.values()))
    table = Table(title=f"kernel time by op type, batch {batch}, {threads or 'all'} thread(s) (ONNX Runtime profiler)")
    for col in ("op", "fp32 ms", "fp32 share", "int8 cpu ms", "int8 cpu share"):
        table.add_column(col, justify="left" if col == "op" else "right")
    for op in ops[:18]:
        cells = []
        for b in profiles:
            r = profiles[b].get(op)
            cells += [f"{r.ms_per_run:.1f}", f"{r.ms_per_run / totals[b]:.1%}"] if r else ["", ""]
        table.add_row(op, *cells)
    table.add_row("total", f"{totals['onnx-fp32']:.1f}", "", f"{totals['onnx-int8']:.1f}", "")
    return table


def main(
    model: Annotated[str, typer.Option(help="Registered variant.")] = "volo_d1_224",
    checkpoint: Annotated[Optional[Path], typer.Option(help="Weights (default: seeded random weights).")] = None,
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8",
    threads: Annotated[int, typer.Option(help="Intra-op threads for every graph (0 = all usable cores).")] = 0,
    iterations: Annotated[int, typer.Option(help="Timed rounds per batch size.")] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed calls per graph and batch size.")] = 2,
    seed: Annotated[int, typer.Option(help="torch seed for random weights.")] = 0,
    profile: Annotated[bool, typer.Option(help="Also profile FP32 and INT8 cpu by op type.")] = False,
    artifacts: Annotated[Optional[Path], typer.Option(help="Keep the ONNX files here.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write gates + timings as JSON.")] = None,
) -> None:
    import torch
    from rich.console import Console

    from volo_export.render import rich_table
    from volo_export.bench.run import BenchRequest, run_benchmark
    from volo_export.io import write_json
    from volo_export.timing import BenchSettings
    from volo_export.progress import StageLog

    console = Console(width=150)
    sizes = tuple(int(b) for b in batch.split(","))
    torch.manual_seed(seed)  # the random weights, when there is no checkpoint
    with tempfile.TemporaryDirectory(prefix="precision-cpu-") as tmp:
        workdir = Path(artifacts or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        bench = run_benchmark(BenchRequest(model=model, checkpoint=checkpoint, backends=BACKENDS, artifacts=workdir,
                                           threads=threads, memory=False, gemm_size=1024,
                                           settings=BenchSettings(batch_sizes=sizes, warmup=warmup,
                                                                  iterations=iterations)), StageLog(console.log))
        gates = {b.name: b.gate for b in bench.backends if b.gate}
        paths = {b.name: Path(b.artifact) for b in bench.backends if b.artifact}
        console.print(gate_table(gates))
        console.print(rich_table(bench.tables()[0]))
        for line in bench.environment_lines():
            console.print(line, highlight=False)
        console.print(ratio_table(bench))
        if profile:
            console.print(profile_table(paths, max(sizes), threads))
    if report:
        data = {"gates": gates, "bench": bench.to_dict()}
        report.parent.mkdir(parents=True, exist_ok=True)
        write_json(report, data)


if __name__ == "__main__":
    typer.run(main)
