"""The one report type for every gate (eager vs ONNX, FP16, INT8, engine, any runtime): data, with
its JSON record (`to_dict`) and its tables (`tables`, plain text; the CLI renders them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from volo_export.results import Column, Table, verdict


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

    def shown_rows(self, max_rows: int = 8) -> list[Comparison]:
        """Rows worth a terminal: all of them when few, else the pooled rows and the worst batches."""
        if len(self.comparisons) <= max_rows:
            return list(self.comparisons)
        pooled = [c for c in self.comparisons if c.scope == "all"]
        worst = sorted((c for c in self.comparisons if c.scope != "all"), key=lambda c: c.min_cosine)
        keep = {id(c) for c in worst[:max_rows - len(pooled)]}
        return [c for c in self.comparisons if id(c) in keep] + pooled

    def tables(self) -> list[Table]:
        """The gate's table (one row per compared batch; the worst ones when there are many, JSON has all)
        and, after a fallback, the table of its attempts."""
        return [self.table()] + ([self.steps_table()] if self.steps else [])

    def table(self) -> Table:
        with_acc = any(c.accuracy is not None for c in self.comparisons)
        columns = ["inputs", "batch", "max abs", "mean abs", "min cos", "top-1", "top-5"] + ["acc (ref)"] * with_acc
        table = Table(f"{self.artifact} vs {self.reference} ({self.precision}, {self.tolerance} gate)",
                      [Column(c, "left" if c == "inputs" else "right") for c in columns], status=verdict(self.passed))
        rows = self.shown_rows()
        if len(rows) < len(self.comparisons):
            table.caption = f"worst {len(rows) - sum(c.scope == 'all' for c in rows)} of {len(self.comparisons)} " \
                            "rows by cosine; all rows in --report JSON"
        for c in rows:
            row = [c.inputs, str(c.batch_size), f"{c.max_abs:.1e}", f"{c.mean_abs:.1e}",
                   f"{c.min_cosine:.6f}", f"{c.top1_agreement:.0%}", f"{c.top5_agreement:.0%}"]
            if with_acc:
                row.append("" if c.accuracy is None else f"{c.accuracy:.1%} ({c.reference_accuracy:.1%})")
            table.rows.append(row)
        return table

    def steps_table(self) -> Table:
        """The fallback attempts."""
        with_acc = any(s.accuracy is not None for s in self.steps)
        columns = ["step", "kept", "min cos", "top-1"] + ["acc"] * with_acc + ["gate"]
        table = Table("automatic precision fallback: most sensitive nodes left unquantised", [Column(c) for c in columns])
        for i, s in enumerate(self.steps):
            row = [str(i), str(len(s.kept)), f"{s.min_cosine:.5f}", f"{s.top1_agreement:.1%}"]
            if with_acc:
                row.append("" if s.accuracy is None else f"{s.accuracy:.1%}")
            row.append(verdict(s.passed, ("pass", "fail")))
            table.rows.append(row)
        return table
