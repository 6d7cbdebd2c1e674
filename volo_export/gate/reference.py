"""What an artifact is compared with, and the one policy for rebuilding it.

The reference is the eager PyTorch model with the exact weights the artifact was
exported from. Those weights are known by the checkpoint sha256 recorded in the
artifact's metadata:

- a `--checkpoint` the user passes must be that file (another file, or any file for
  an artifact exported with random weights, is refused: the comparison would be
  meaningless);
- without one, the variant's bundled weights are used when they are that file;
- otherwise the eager model cannot be rebuilt and `rebuild_eager` says why; the
  caller decides (quantize compares with the FP32 ONNX instead, validate refuses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volo_export.errors import UnknownModelError, UsageError
from volo_export.export.metadata import ArtifactInfo

Predictor = Callable[[np.ndarray], np.ndarray]
EAGER = "eager PyTorch"


@dataclass
class Reference:
    """What the gate compares an artifact with: a predictor (N, 3, S, S) -> (N, classes) and its name."""

    predict: Predictor
    name: str


def eager_predictor(model) -> Predictor:
    """An eval-mode torch model as numpy -> numpy."""
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return predict


def memoized(predict: Predictor) -> Predictor:
    """Remember outputs per input content: the fallback gates the same inputs many times, and the
    reference of one model serves several conversions."""
    seen: dict[tuple, np.ndarray] = {}

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x)
        key = (x.shape, x.dtype.str, hashlib.blake2b(x.tobytes(), digest_size=16).digest())
        if key not in seen:
            seen[key] = predict(x)
        return seen[key]

    return run


def eager_reference(model) -> Reference:
    """The eager model as the gate's reference (memoized)."""
    return Reference(memoized(eager_predictor(model)), EAGER)


def onnx_reference(path: Path) -> Reference:
    """An FP32 ONNX file, run by ONNX Runtime on the CPU, as the gate's reference (memoized)."""
    from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

    return Reference(memoized(OnnxRuntimeRunner(Path(path), SessionSettings(providers=CPU_ONLY))),
                     f"FP32 ONNX {Path(path).name}")


def rebuild_eager(info: ArtifactInfo, checkpoint: Path | None, artifact: str):
    """(LoadedModel, None) with the weights `artifact` was exported from, or (None, why it cannot be
    rebuilt). A `checkpoint` that is not those weights raises UsageError (see the module docstring)."""
    from volo_export.models.checkpoint import bundled_checkpoint, load_model
    from volo_export.models.variants import get_config

    if checkpoint is not None and info.random_weights:
        raise UsageError(f"{artifact} was exported with random weights; no --checkpoint can rebuild them")
    if checkpoint is None and info.random_weights:
        return None, f"{artifact} was exported with random weights, which cannot be rebuilt"
    try:
        config = get_config(info.model)
    except UnknownModelError:
        return None, f"model {info.model!r} of {artifact} is not registered here"
    ask = (f"pass --checkpoint with the weights {artifact} was exported from "
           f"(sha256 {str(info.checkpoint_sha256)[:16]}...)")
    if checkpoint is None and bundled_checkpoint(config) is None:
        return None, ask  # said before building a model that could only be random
    loaded = load_model(info.model, checkpoint)
    if loaded.checkpoint_sha256 != info.checkpoint_sha256:
        if checkpoint is not None:
            raise UsageError(f"--checkpoint {checkpoint} is not the checkpoint {artifact} was exported from "
                             f"(sha256 {str(loaded.checkpoint_sha256)[:12]}... vs {str(info.checkpoint_sha256)[:12]}...)")
        return None, ask
    if loaded.config.num_classes != info.num_classes:
        raise UsageError(f"the checkpoint has {loaded.config.num_classes} classes, {artifact} {info.num_classes}")
    return loaded, None
