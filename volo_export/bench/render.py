"""`BenchReport` for people beyond its table (`volo_export.render`): the README's markdown and a PNG plot."""

from __future__ import annotations

from pathlib import Path

from volo_export.bench.report import BenchReport
from volo_export.errors import UsageError
from volo_export.render import markdown_table
from volo_export.timing import OK


def markdown(report: BenchReport) -> str:
    """A GitHub markdown table with the environment underneath (for the README)."""
    lines = markdown_table(report.tables()[0])
    lines += [""] + [f"- {line}" for line in report.footnotes() + report.environment_lines() + report.limit_lines()]
    if report.memory_method:
        lines.append(f"- memory: {report.memory_method}")
    lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def plot(report: BenchReport, path: Path) -> None:
    """Throughput and median latency per backend and batch size, as a PNG (needs matplotlib)."""
    from volo_export.io import atomic_output

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in report.results if r.status == OK]
    names = list(dict.fromkeys(r.backend for r in ok))
    batches = sorted({r.batch_size for r in ok})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        measured = [(j, report.row(name, b)) for j, b in enumerate(batches)]
        measured = [(j, r) for j, r in measured if r and r.status == OK]
        xs = [j + i * width for j, _ in measured]
        axes[0].bar(xs, [r.throughput for _, r in measured], width, label=name)
        axes[1].bar(xs, [r.p50_ms for _, r in measured], width, label=name)
    for ax, label in zip(axes, ("throughput (img/s)", "p50 latency (ms)")):
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(batches))],
                      [f"batch {b}" for b in batches])
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(report.title(), fontsize=9)
    fig.tight_layout()
    with atomic_output(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def require_matplotlib() -> None:
    """Raise a one-line UsageError when matplotlib (the `plot` extra) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib (the volo-export \"plot\" extra)") from None
