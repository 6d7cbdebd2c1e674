"""The one report type for every gate (eager vs ONNX, FP16, INT8, engine, any runtime),
rendered as a rich table or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Comparison:
    """Reference vs artifact on one batch of inputs. Errors are on logits."""

    inputs: str
    batch_size: int
    max_abs: float
    mean_abs: float
    min_cosine: float
    top1_agreement: float
    top5_agreement: float
    reference_scale: float
    accuracy: float | None = None
    reference_accuracy: float | None = None
    # "batch": one batch of inputs; "all": every gate input pooled (agreement and
    # accuracy of reduced-precision artifacts are judged on this row).
    scope: str = "batch"


@dataclass
class FallbackStep:
    """One attempt of the automatic precision fallback: which nodes stayed in float, and the pooled outcome."""

    kept: list[str]
    min_cosine: float
    top1_agreement: float
    accuracy: float | None
    passed: bool
    failure: str | None = None


@dataclass
class Report:
    """Outcome of gating one artifact against eager PyTorch."""

    artifact: str
    model: str
    precision: str
    tolerance: str
    comparisons: list[Comparison] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference: str = "eager PyTorch"
    tolerance_reason: str = ""  # why the bounds are what they are (volo_export/tolerances.py)
    # Nodes left in higher precision (FP16: kept float32; INT8: not quantized), with the reason.
    kept: list[str] = field(default_factory=list)
    steps: list[FallbackStep] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def write_json(self, path: Path) -> None:
        from volo_export.io import write_json

        write_json(path, self.to_dict())

    def shown_rows(self, max_rows: int = 8) -> list[Comparison]:
        """Rows worth a terminal: all of them when few, else the pooled rows and the worst batches."""
        if len(self.comparisons) <= max_rows:
            return list(self.comparisons)
        pooled = [c for c in self.comparisons if c.scope == "all"]
        worst = sorted((c for c in self.comparisons if c.scope != "all"), key=lambda c: c.min_cosine)
        keep = {id(c) for c in worst[:max_rows - len(pooled)]}
        return [c for c in self.comparisons if id(c) in keep] + pooled

    def table(self):
        """A rich Table: one row per compared batch (the worst ones when there are many; JSON has all)."""
        from rich.markup import escape
        from rich.table import Table

        status = "[green]PASS[/]" if self.passed else "[red]FAIL[/]"
        table = Table(title=f"{escape(self.artifact)} vs {escape(self.reference)} ({self.precision}, "
                            f"{self.tolerance} gate): {status}")
        with_acc = any(c.accuracy is not None for c in self.comparisons)
        columns = ["inputs", "batch", "max abs", "mean abs", "min cos", "top-1", "top-5"] + ["acc (ref)"] * with_acc
        for col in columns:
            table.add_column(col, justify="left" if col == "inputs" else "right", no_wrap=True)
        rows = self.shown_rows()
        if len(rows) < len(self.comparisons):
            table.caption = f"worst {len(rows) - sum(c.scope == 'all' for c in rows)} of {len(self.comparisons)} " \
                            "rows by cosine; all rows in --report JSON"
        for c in rows:
            row = [escape(c.inputs), str(c.batch_size), f"{c.max_abs:.1e}", f"{c.mean_abs:.1e}",
                   f"{c.min_cosine:.6f}", f"{c.top1_agreement:.0%}", f"{c.top5_agreement:.0%}"]
            if with_acc:
                row.append("" if c.accuracy is None else f"{c.accuracy:.1%} ({c.reference_accuracy:.1%})")
            table.add_row(*row)
        return table

    def steps_table(self):
        """A rich Table of the fallback attempts (None when there were none)."""
        from rich.table import Table

        if not self.steps:
            return None
        with_acc = any(s.accuracy is not None for s in self.steps)
        table = Table(title="automatic precision fallback: most sensitive nodes kept in float32")
        for col in ["step", "kept", "min cos", "top-1"] + ["acc"] * with_acc + ["gate"]:
            table.add_column(col, justify="right", no_wrap=True)
        for i, s in enumerate(self.steps):
            row = [str(i), str(len(s.kept)), f"{s.min_cosine:.5f}", f"{s.top1_agreement:.1%}"]
            if with_acc:
                row.append("" if s.accuracy is None else f"{s.accuracy:.1%}")
            row.append("[green]pass[/]" if s.passed else "[red]fail[/]")
            table.add_row(*row)
        return table
