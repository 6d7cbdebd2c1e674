"""Results are data: what every report offers its renderers.

A result (a gate `Report`, a `CheckResult`, a benchmark or load-test report) is a dataclass with
`to_dict()` (its JSON record) and `tables()` (what a terminal shows, as `Table`s of plain text).
Rendering happens in one place, `volo_export.render` (rich tables, markdown), and JSON files in
`io.write_json`. No result imports a renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Mark:
    """A cell (or a status) with a tone the renderer colours: good, bad, or a finding's severity."""

    text: str
    tone: str


Cell = str | Mark


@dataclass(frozen=True)
class Column:
    name: str
    justify: str = "right"  # left | right
    no_wrap: bool = True
    overflow: str | None = None  # None: the renderer's default; "fold": wrap long words too


@dataclass
class Table:
    """A titled table of plain-text cells. `status`: a verdict the renderer appends to the title."""

    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str | None = None
    status: Mark | None = None
    section_ends: list[int] = field(default_factory=list)  # rows after which a rule is drawn

    @classmethod
    def of(cls, title: str, header: list[str], rows: list[list[Cell]], left: tuple[str, ...] = ("backend",)) -> "Table":
        """A table of `rows` under `header`; the `left` columns are left-aligned, the others right."""
        return cls(title, [Column(c, "left" if c in left else "right") for c in header], rows)


def verdict(passed: bool, text: tuple[str, str] = ("PASS", "FAIL")) -> Mark:
    """A pass/fail mark."""
    return Mark(text[0], "good") if passed else Mark(text[1], "bad")


class Result(Protocol):
    """What every report offers: its JSON record and the tables a terminal shows."""

    def to_dict(self) -> dict: ...

    def tables(self) -> list[Table]: ...
