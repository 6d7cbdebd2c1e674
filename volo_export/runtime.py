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
    """ONNX Runtime session settings. `threads` 0 lets ONNX Runtime use every core."""

    providers: tuple[str, ...] | None = None
    threads: int = 0
    optimization: str = "all"


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

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """Raw session run: named inputs -> the named outputs (all graph outputs when None), unconverted."""
        return self.session.run(outputs, feeds)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self.input_type == "tensor(float16)" else np.float32
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=dtype)})[0]
        return out.astype(np.float32)


def open_runner(path: Path, settings: SessionSettings = SessionSettings()):
    """A runner for an artifact file (.onnx)."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"model not found: {path}")
    if path.suffix == ".onnx":
        return OnnxRuntimeRunner(path, settings)
    raise InputDataError(f"{path}: unsupported artifact type {path.suffix!r} (expected .onnx)")
