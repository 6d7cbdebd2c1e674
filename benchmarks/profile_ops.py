"""Where the time goes: ONNX Runtime's profiler on an exported model, kernel time by op type.

    python benchmarks/profile_ops.py MODEL.onnx [--batch 8] [--threads 1] [--runs 3]

With --threads 1 the kernel times are close to CPU time, so the shares hold on a shared machine.
Export the model first, e.g. `volo-export onnx --model volo_d1_224 --output d1.onnx --no-validate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def main(
    model: Annotated[Path, typer.Argument(help="An ONNX file written by volo-export.")],
    batch: Annotated[int, typer.Option(help="Batch size.")] = 8,
    threads: Annotated[int, typer.Option(help="Intra-op threads (0 = all usable cores).")] = 1,
    runs: Annotated[int, typer.Option(help="Profiled runs.")] = 3,
) -> None:
    from rich.console import Console
    from rich.table import Table

    from volo_export.bench.profile import profile_onnx

    rows = profile_onnx(model, batch, threads, runs)
    total = sum(r.ms_per_run for r in rows)
    table = Table(title=f"{model.name}, batch {batch}, {threads or 'all'} thread(s): {total:.0f} ms kernel time per run")
    for col in ("op", "ms/run", "share", "nodes", "GFLOP/s"):
        table.add_column(col, justify="left" if col == "op" else "right")
    for r in rows:
        table.add_row(r.op_type, f"{r.ms_per_run:.1f}", f"{r.share:.1%}", str(r.nodes),
                      "" if r.gflops is None else f"{r.gflops:.1f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    typer.run(main)
