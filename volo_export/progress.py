"""How long work reports what it is doing: one protocol for every stage.

Library functions take a `Progress` and call it; they never print. The CLI
passes a rich implementation (`volo_export.cli.progress`), tests and scripts
the silent default `SILENT`.

    stage(text)                 a coarse step started ("exporting to ONNX")
    advance(done, total[, detail])
                                countable work inside the current step (detail: what
                                the unit just finished was, e.g. "batch 8: round 3/20 eager")
    phase_start / phase_step / phase_finish
                                nested phases with their own step counts
                                (TensorRT's builder reports those)
    notice(text) / warning(text)
                                something the user should know now, before the
                                results (bundled or random weights, an adapted
                                checkpoint); results keep them too
"""

from __future__ import annotations

from collections.abc import Callable


class Progress:
    """Callbacks of long work. Every method is a no-op here; override what you render."""

    def stage(self, text: str) -> None:
        """A coarse step began."""

    def advance(self, done: int, total: int, detail: str | None = None) -> None:
        """`done` of `total` units of the current step are finished; `detail` names the last one."""

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        """A nested phase with `steps` steps began (inside `parent`, if any)."""

    def phase_step(self, name: str, step: int) -> bool:
        """Step `step` of phase `name` finished; return False to cancel the work."""
        return True

    def phase_finish(self, name: str) -> None:
        """Phase `name` ended."""

    def notice(self, text: str) -> None:
        """Information the user should see as soon as it is known."""

    def warning(self, text: str) -> None:
        """A warning the user should see as soon as it is known (e.g. random weights)."""


SILENT = Progress()


class StageLog(Progress):
    """Each stage's text to `log` (e.g. a rich console's `log`), nothing else: for scripts."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log

    def stage(self, text: str) -> None:
        self.log(text)
