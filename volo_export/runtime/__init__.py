"""One inference API over this project's artifacts: `open_runner(path)(batch) -> logits`.

- `base`                 the Runner protocol, BatchRange (the one batch-fitting policy), run_in_batches
- `onnxruntime_runner`   .onnx in ONNX Runtime (session settings, providers, profiling)
- `tensorrt_runner`      .engine in TensorRT or TensorRT-RTX (the sidecar says which), after its sidecar
                         was checked against this machine

A new runtime is one more runner module and one more branch in `open_runner`; its
tolerances go to `volo_export.tolerances`. The artifact's own metadata says how to
preprocess, so a file alone is enough to run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from volo_export.artifact import ENGINE, artifact_kind
from volo_export.errors import InputDataError
from volo_export.runtime.base import BatchRange, Runner, run_in_batches
from volo_export.runtime.onnxruntime_runner import SessionSettings

__all__ = ["BatchRange", "Runner", "SessionSettings", "open_runner", "run_in_batches"]


def open_runner(path: Path, settings: SessionSettings = SessionSettings(), plugins: Sequence[Path] = ()) -> Runner:
    """A runner for an artifact file: .onnx -> ONNX Runtime (`settings`), .engine/.plan/.trt -> TensorRT."""
    path = Path(path)
    kind = artifact_kind(path)
    if not path.is_file():
        raise InputDataError(f"model not found: {path}" + (" (a folder, not a file)" if path.is_dir() else ""))
    if kind == ENGINE:
        from volo_export.runtime.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path, plugins)
    from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner

    return OnnxRuntimeRunner(path, settings)
