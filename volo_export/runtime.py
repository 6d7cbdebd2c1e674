"""One inference API over this project's artifacts: `open_runner(path)(batch) -> logits`.

ONNX models run in ONNX Runtime with the best available provider
(TensorRT EP, CUDA EP, CPU EP, in that order of preference). The artifact's
own metadata says how to preprocess, so a file alone is enough to run it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError
from volo_export.export.metadata import ArtifactInfo, read_info

_PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime session settings. `threads` 0 lets ONNX Runtime use every core.

    `spinning` False stops idle intra-op threads from busy-waiting between runs (ONNX Runtime spins by
    default): a little latency for not stealing cores from other work, e.g. interleaved benchmarks.
    `profile_prefix` turns on ONNX Runtime's profiler (see `OnnxRuntimeRunner.end_profiling`);
    `optimized_model` saves the graph as ONNX Runtime optimized it (an ORT-only artifact).
    """

    providers: tuple[str, ...] | None = None
    threads: int = 0
    optimization: str = "all"
    spinning: bool = True
    profile_prefix: str | None = None
    optimized_model: Path | None = None


def available_providers(requested: tuple[str, ...] | None = None) -> list[str]:
    import onnxruntime as ort

    have = ort.get_available_providers()
    wanted = requested or _PROVIDER_PREFERENCE
    chosen = [p for p in wanted if p in have]
    if not chosen:
        raise InputDataError(f"none of the providers {', '.join(wanted)} is available (have {', '.join(have)})")
    return chosen


class OnnxRuntimeRunner:
    """Runs an ONNX model: `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`."""

    def __init__(self, model: Path | bytes, settings: SessionSettings = SessionSettings(), info: ArtifactInfo | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = settings.threads
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[settings.optimization]
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
        if settings.profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = settings.profile_prefix
        if settings.optimized_model:
            opts.optimized_model_filepath = str(settings.optimized_model)
        source = str(model) if isinstance(model, Path) else model
        self.name = str(model) if isinstance(model, Path) else "<in-memory model>"
        try:
            self.session = ort.InferenceSession(source, opts, providers=available_providers(settings.providers))
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types, not importable portably
            raise InputDataError(f"ONNX Runtime cannot load {self.name}: {str(e).splitlines()[0]}") from None
        self.info = info or (read_info(model) if isinstance(model, Path) else None)
        self.input_name = self.session.get_inputs()[0].name
        self.input_type = self.session.get_inputs()[0].type
        self.providers = self.session.get_providers()

    def end_profiling(self) -> Path:
        """Stop ONNX Runtime's profiler (needs `profile_prefix`); returns its JSON trace file."""
        return Path(self.session.end_profiling())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self.input_type == "tensor(float16)" else np.float32
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=dtype)})[0]
        return out.astype(np.float32, copy=False)


def open_runner(path: Path, settings: SessionSettings = SessionSettings()):
    """A runner for an artifact file (.onnx)."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"model not found: {path}")
    if path.suffix == ".onnx":
        return OnnxRuntimeRunner(path, settings)
    raise InputDataError(f"{path}: unsupported artifact type {path.suffix!r} (expected .onnx)")
