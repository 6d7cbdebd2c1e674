"""Images -> top-k classes with any artifact (.onnx in ONNX Runtime, .engine in TensorRT).

Preprocessing comes from the artifact's own metadata through `volo_export.preprocess`
(the one implementation); class names from `volo_export.labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, UsageError
from volo_export.export.metadata import ArtifactInfo, info_or_variant
from volo_export.labels import class_names
from volo_export.preprocess import preprocess_paths
from volo_export.runtime.base import run_in_batches


@dataclass(frozen=True)
class ClassScore:
    index: int
    label: str
    probability: float
    logit: float


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image, best first."""

    file: str
    top: tuple[ClassScore, ...]

    def to_dict(self) -> dict:
        return {"file": self.file, "top": [asdict(c) for c in self.top]}


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, C) logits -> probabilities, computed in float64."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def top_k(logits: np.ndarray, names: Sequence[str], k: int, files: Sequence[str]) -> list[Prediction]:
    """(N, C) logits -> one Prediction per row with the k most likely classes (ties: lower index first)."""
    probs = softmax(logits)
    k = min(k, logits.shape[1])
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return [Prediction(str(f), tuple(ClassScore(int(c), names[c], float(p[c]), float(row[c])) for c in idx))
            for f, row, p, idx in zip(files, logits, probs, order)]


def model_info(runner, model_name: str | None = None) -> ArtifactInfo:
    """What the artifact says about itself; for an ONNX without volo-export metadata, `model_name` (a
    registered variant) supplies the preprocessing, labels and class count instead."""
    return info_or_variant(lambda: runner.info, model_name, runner.name)


def predict_files(runner, paths: Sequence[Path], k: int = 5, batch_size: int | None = None,
                  info: ArtifactInfo | None = None) -> list[Prediction]:
    """Top-k predictions for image files with an opened runner (see runtime.open_runner); `info` (default:
    the artifact's own metadata) gives the preprocessing, labels and class count."""
    if k < 1:
        raise UsageError(f"--top-k must be >= 1, got {k}")
    info = info or runner.info
    batch = preprocess_paths(paths, info.preprocessing)
    logits = run_in_batches(runner, batch, batch_size)
    if logits.shape != (len(paths), info.num_classes):
        raise InputDataError(f"{runner.name} returned logits of shape {logits.shape}, expected "
                             f"({len(paths)}, {info.num_classes})")
    return top_k(logits, class_names(info.labels, info.num_classes), k, [str(p) for p in paths])
