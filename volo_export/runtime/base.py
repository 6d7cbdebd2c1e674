"""What every runner is: `runner(x: float32 (N, 3, S, S)) -> logits float32 (N, classes)`, plus the
artifact's metadata, the batch sizes it accepts and which runtime really executes it.

`BatchRange.chunks` is the one policy for fitting rows into an artifact's batch range,
used by predict, the gate and serving: batches of at most `hi` rows; a batch shorter
than `lo` (a static-batch artifact) is filled by repeating its own rows, never zeros,
and callers keep only the first rows of its output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from volo_export.errors import UsageError
from volo_export.export.metadata import ArtifactInfo
from volo_export.names import Executor

DEFAULT_BATCH = 32


@dataclass(frozen=True)
class BatchRange:
    """Batch sizes an artifact accepts: lo..hi (hi None: no upper bound)."""

    lo: int = 1
    hi: int | None = None

    @property
    def static(self) -> bool:
        return self.hi is not None and self.lo == self.hi

    def check(self, n: int, artifact: str, hint: str = "") -> None:
        """A one-line UsageError when batch `n` is outside the range."""
        if n < self.lo or (self.hi is not None and n > self.hi):
            span = f"exactly {self.lo}" if self.static else f"{self.lo}..{self.hi}"
            raise UsageError(f"batch {n} does not fit {artifact}, which takes batch {span}" + (f"; {hint}" if hint else ""))

    def default_size(self) -> int:
        """The batch size to run with when the caller has no preference."""
        return self.lo if self.static else min(DEFAULT_BATCH, self.hi or DEFAULT_BATCH)

    def chunks(self, rows: int, size: int | None = None) -> list[tuple[np.ndarray, int]]:
        """Consecutive batches covering `rows` rows: (row indices, how many of them are new rows). Each
        batch has at most `size` rows (default: `default_size`); one shorter than `lo` repeats its own
        rows up to `lo` (the repeats come after the new rows)."""
        size = size or self.default_size()
        if size < self.lo or (self.hi is not None and size > self.hi):
            raise UsageError(f"batch size {size} is outside {self.lo}..{self.hi}")
        out = []
        for start in range(0, rows, size):
            index = np.arange(start, min(start + size, rows))
            out.append((np.resize(index, max(self.lo, len(index))), len(index)))
        return out


def batch_range_of(model_proto) -> BatchRange:
    """The batch sizes an ONNX graph takes: its input's static batch, or any (dynamic batch)."""
    dim = model_proto.graph.input[0].type.tensor_type.shape.dim[0]
    return BatchRange(dim.dim_value, dim.dim_value) if dim.HasField("dim_value") else BatchRange()


class Runner(Protocol):
    """One loaded artifact, ready to run."""

    name: str  # the file, for messages
    runtime: Executor  # what executes it (it decides the arithmetic, so the tolerance)
    notices: list[str]  # things the user should know about how it runs (compatibility warnings, ...)

    @property
    def info(self) -> ArtifactInfo: ...

    @property
    def batch_range(self) -> BatchRange: ...

    def describe(self) -> str:
        """Runtime and device, for tables ("ONNX Runtime 1.32 CPUExecutionProvider")."""

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def run_in_batches(runner: Runner, array: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Run `array` (N, 3, S, S) through `runner` in batches it accepts (`BatchRange.chunks`); returns (N, classes)."""
    from pathlib import Path

    if batch_size is not None:
        runner.batch_range.check(batch_size, Path(runner.name).name, "choose a --batch-size in range")
    outs = [runner(array[index])[:rows] for index, rows in runner.batch_range.chunks(len(array), batch_size)]
    return np.concatenate(outs)
