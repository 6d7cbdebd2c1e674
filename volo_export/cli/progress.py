"""The rich rendering of `volo_export.progress.Progress`: every stage logged as a line on stderr,
a live line with a spinner, the current stage, a bar when the work is countable, and one bar
per nested phase (TensorRT's builder phases). Transient: the live part vanishes when done."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from volo_export.cli.console import console, notice, warning
from volo_export.progress import Progress as ProgressProtocol


class RichProgress(ProgressProtocol):
    def __init__(self, bars: Progress):
        self.bars = bars
        self.current = "starting"
        self.task = bars.add_task(self.current, total=None)
        self.phases: dict[str, int] = {}

    def stage(self, text: str) -> None:
        self.current = text
        if self.bars.console.is_terminal:
            self.bars.console.log(escape(text))
        else:  # logs and pipes: one plain line each (console.log would pad it to the console's width)
            self.bars.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.bars.update(self.task, description=escape(text), completed=0, total=None)

    def advance(self, done: int, total: int, detail: str | None = None) -> None:
        self.bars.update(self.task, completed=done, total=total, description=escape(detail or self.current))

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        self.phases[name] = self.bars.add_task(("  " if parent else "") + escape(name), total=steps)

    def phase_step(self, name: str, step: int) -> bool:
        if name in self.phases:
            self.bars.update(self.phases[name], completed=step + 1)
        return True

    def phase_finish(self, name: str) -> None:
        if name in self.phases:
            self.bars.remove_task(self.phases.pop(name))

    def notice(self, text: str) -> None:
        notice(text)

    def warning(self, text: str) -> None:
        warning(text)


@contextlib.contextmanager
def progress() -> Iterator[RichProgress]:
    """A live progress display on stderr for the duration of the block."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bars:
        yield RichProgress(bars)
