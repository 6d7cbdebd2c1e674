"""Images -> top-k classes with any artifact (.onnx in ONNX Runtime, .engine in TensorRT) or a model
on a running Triton: the use case behind `volo-export predict` (`predict(PredictRequest) -> PredictResult`).

Preprocessing comes from the artifact's own metadata through `volo_export.preprocess`
(the one implementation); class names from `volo_export.labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, UsageError
from volo_export.export.metadata import ArtifactInfo, info_or_variant
from volo_export.labels import class_names
from volo_export.names import Runtime
from volo_export.preprocess import preprocess_paths
from volo_export.progress import SILENT, Progress
from volo_export.results import Column, Table
from volo_export.runtime.base import DEFAULT_BATCH, run_in_batches


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
    return info_or_variant(lambda: runner.info, model_name, runner.name, getattr(runner, "input_shape", None))


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


@dataclass(frozen=True)
class PredictRequest:
    """What `volo-export predict` was asked: image files, folders or glob patterns, and exactly one of an
    artifact (`model`, run by `runtime`; None: by file type) or a served model (`url`, `model_name`)."""

    images: tuple[Path, ...]
    model: Path | None = None
    url: str | None = None
    model_name: str | None = None
    top_k: int = 5
    batch_size: int | None = None
    timeout_s: float = 60.0  # with `url`: seconds to connect and for each answer
    plugins: tuple[Path, ...] = ()
    runtime: Runtime | None = None

    def __post_init__(self):
        if (self.model is None) == (self.url is None):
            raise UsageError("give exactly one of --model (an artifact) or --url (a running Triton)")
        if self.url is not None and self.runtime is not None:
            raise UsageError("--runtime applies to --model: a served model runs where Triton runs it")


@dataclass
class PredictResult:
    """The predictions, and what made them: the artifact (`model`, its file name `source`, its metadata)
    and the runner's description."""

    model: str
    source: str
    info: ArtifactInfo
    runtime: str
    predictions: list[Prediction] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"model": self.model, "runtime": self.runtime, "predictions": [p.to_dict() for p in self.predictions]}

    def tables(self) -> list[Table]:
        """One table: a section per image, one row per class."""
        table = Table(f"{self.source} ({self.info.model}, {self.info.precision}, {self.runtime})",
                      [Column(c, "right" if c in ("rank", "class", "probability") else "left", no_wrap=False)
                       for c in ("image", "rank", "class", "label", "probability")])
        for p in self.predictions:
            for rank, c in enumerate(p.top, 1):
                table.rows.append([Path(p.file).name if rank == 1 else "", str(rank), str(c.index), c.label,
                                   f"{c.probability:.1%}"])
            table.section_ends.append(len(table.rows) - 1)
        return [table]


def predict(request: PredictRequest, progress: Progress = SILENT) -> PredictResult:
    """Open the artifact (or the served model), preprocess the images as its metadata says and return the
    top-k classes of each; notices about the runner and random weights go to `progress` when known."""
    from volo_export.preprocess import expand_images

    files = expand_images(list(request.images))
    if request.url is not None:
        from volo_export.serve.client import open_served_runner

        runner = open_served_runner(request.url, request.model_name, request.timeout_s)
        info, source = runner.info, runner.model.name
    else:
        from volo_export.runtime import open_runner

        runner = open_runner(request.model, plugins=request.plugins, runtime=request.runtime,
                             batch=request.batch_size or min(len(files), DEFAULT_BATCH))
        for line in runner.notices:
            progress.notice(line)
        info, source = model_info(runner, request.model_name), request.model.name
    if info.random_weights:
        progress.warning(f"{source} was exported with RANDOM weights: these predictions are meaningless")
    predictions = predict_files(runner, files, request.top_k, request.batch_size, info)
    return PredictResult(str(request.model or runner.name), source, info, runner.describe(), predictions)
