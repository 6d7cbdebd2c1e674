"""TensorRT and TensorRT-RTX plans (`X.engine` + `X.engine.json`) as runners.

Before TensorRT sees the plan: the sidecar must exist, the plan must match it (size,
sha256), and the sidecar's product, version and GPU (TensorRT-RTX: target compute
capabilities) must suit this machine; each failure is a one-line error. Batches outside
the engine's profile are refused likewise. A TensorRT-RTX engine keeps the kernels it
compiles just in time in a runtime cache (`trt.rtx.runtime_cache_path`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from volo_export.export.metadata import ArtifactInfo
from volo_export.names import Executor
from volo_export.runtime.base import BatchRange
from volo_export.trt.products import PRODUCTS, RTX


class TensorRTRunner:
    """Runs a volo-export TensorRT or TensorRT-RTX engine: `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`.

    `running` describes this machine (default: probe it); `session` opens the deserialized engine
    (default: `trt.infer.EngineSession`, or `RtxEngineSession` for a TensorRT-RTX engine, which also gets
    `runtime_cache=`); `cache_root` is where runtime caches go (default: the user cache). All are
    parameters so the checks can be exercised without a GPU.
    """

    def __init__(self, path: Path, plugins: Sequence[Path] = (), running=None,
                 session: Callable | None = None, cache_root: Path | None = None):
        from volo_export.trt import environment, infer, rtx_session
        from volo_export.trt.provenance import ensure_compatible, read_sidecar, verify_plan_file
        from volo_export.trt.rtx import runtime_cache_path

        path = Path(path)
        self.name = str(path)
        self.provenance = read_sidecar(path)
        verify_plan_file(path, self.provenance)
        self.product = self.provenance.product
        self.runtime = Executor.TENSORRT_RTX if self.product == RTX else Executor.TENSORRT
        self.profile = self.provenance.profile
        self.running = running or environment.running_environment()
        self.notices = ensure_compatible(self.provenance, self.running)
        libs = [Path(p) for p in plugins] or [Path(p) for p in self.provenance.plugins]
        self.runtime_cache = None
        extra = {}
        if self.product == RTX:
            self.runtime_cache = runtime_cache_path(self.provenance.engine_sha256, self.provenance.product_version,
                                                    cache_root)
            extra["runtime_cache"] = self.runtime_cache
        opener = session or (rtx_session.RtxEngineSession if self.product == RTX else infer.EngineSession)
        self.session = opener(path.read_bytes(), path.name, libs, **extra)

    @property
    def info(self) -> ArtifactInfo:
        return self.provenance.info

    @property
    def batch_range(self) -> BatchRange:
        lo, _, hi = self.profile.batches
        return BatchRange(lo, hi)

    def describe(self) -> str:
        return (f"{PRODUCTS[self.product].label} {self.running.version_of(self.product)} on "
                f"{self.running.gpu_name or 'GPU'}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batch_range.check(len(x), f"engine {Path(self.name).name}",
                               "use a batch in range or rebuild with --min-batch/--max-batch")
        return self.session(x)
