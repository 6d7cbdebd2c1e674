"""TensorRT plans (`X.engine` + `X.engine.json`) as runners.

Before TensorRT sees the plan: the sidecar must exist, the plan must match it (size,
sha256), and the sidecar's TensorRT/GPU must suit this machine; each failure is a
one-line error. Batches outside the engine's profile are refused likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from volo_export.export.metadata import ArtifactInfo
from volo_export.runtime.base import TENSORRT, BatchRange


class TensorRTRunner:
    """Runs a volo-export TensorRT engine: `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`.

    `running` describes this machine (default: probe it); `session` opens the deserialized engine
    (default: `trt.infer.EngineSession`). Both are parameters so the checks can be exercised without a GPU.
    """

    runtime = TENSORRT

    def __init__(self, path: Path, plugins: Sequence[Path] = (), running=None,
                 session: Callable | None = None):
        from volo_export.trt import environment, infer
        from volo_export.trt.provenance import ensure_compatible, read_sidecar, verify_plan_file

        path = Path(path)
        self.name = str(path)
        self.provenance = read_sidecar(path)
        verify_plan_file(path, self.provenance)
        self.profile = self.provenance.profile
        self.running = running or environment.running_environment()
        self.notices = ensure_compatible(self.provenance, self.running)
        libs = [Path(p) for p in plugins] or [Path(p) for p in self.provenance.plugins]
        self.session = (session or infer.EngineSession)(path.read_bytes(), path.name, libs)

    @property
    def info(self) -> ArtifactInfo:
        return self.provenance.info

    @property
    def batch_range(self) -> BatchRange:
        lo, _, hi = self.profile.batches
        return BatchRange(lo, hi)

    def describe(self) -> str:
        return f"TensorRT {self.running.tensorrt} on {self.running.gpu_name or 'GPU'}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batch_range.check(len(x), f"engine {Path(self.name).name}",
                               "use a batch in range or rebuild with --min-batch/--max-batch")
        return self.session(x)
