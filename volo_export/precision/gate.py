"""The accuracy gate for FP16/INT8 artifacts: what they are compared with, on which
images (held out from calibration), and under which thresholds.

Thresholds default to `tolerances.FP16` / `tolerances.INT8`; `GateOverrides`
changes single bounds from the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volo_export.calibration.data import CalibrationData, content_hash, select_files
from volo_export.errors import InputDataError, UsageError
from volo_export.models.variants import Preprocessing
from volo_export.preprocess import batches, find_images, preprocess_files, sample_photos
from volo_export.tolerances import PRECISION_TOLERANCES, Tolerance
from volo_export.validate import InputSet, Predictor

DEFAULT_GATE_IMAGES = 64
GATE_BATCH = 8


@dataclass(frozen=True)
class GateOverrides:
    """Command-line overrides of single gate bounds (None: the documented default)."""

    min_cosine: float | None = None
    min_top1_agreement: float | None = None
    max_accuracy_drop: float | None = None

    def __post_init__(self):
        for name in ("min_cosine", "min_top1_agreement", "max_accuracy_drop"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(f"--{name.replace('_', '-')} must be within 0..1, got {value}")


def tolerance_for(precision: str, overrides: GateOverrides = GateOverrides()) -> Tolerance:
    """The gate for `precision` with the overrides applied."""
    base = PRECISION_TOLERANCES[precision]
    changes = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    return dataclasses.replace(base, **changes, name=f"{base.name}{' (overridden)' if changes else ''}")


@dataclass
class Reference:
    """What the gate compares an artifact with: a predictor and its name for the report."""

    predict: Predictor
    name: str


def memoized(predict: Predictor) -> Predictor:
    """Remember outputs per input content: the fallback gates the same inputs many times, and the
    reference of one model can serve several conversions."""
    import hashlib

    seen: dict[tuple, np.ndarray] = {}

    def run(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x)
        key = (x.shape, x.dtype.str, hashlib.blake2b(x.tobytes(), digest_size=16).digest())
        if key not in seen:
            seen[key] = predict(x)
        return seen[key]

    return run


def heldout_inputs(prep: Preprocessing, *, calibration: CalibrationData | None, validate_images: Path | None,
                   count: int = DEFAULT_GATE_IMAGES, static_batch: int | None = None) -> tuple[list[InputSet], list[str]]:
    """Gate batches (of GATE_BATCH, or exactly `static_batch` for a static-batch graph) from images no
    calibration sample was made from, with labels where the folder has them.

    Source, in order: `validate_images`; the calibration folder's images beyond --calib-size;
    the photos scikit-image ships. Files identical (by content) to a calibration file are dropped.
    """
    if count < 1:
        raise UsageError(f"--validate-count must be >= 1, got {count}")
    root: Path | None
    if validate_images is not None:
        files, root, source = find_images(validate_images), Path(validate_images), Path(validate_images).name
        if not files:
            raise InputDataError(f"no images (jpg/png/webp/bmp) under {validate_images}")
    elif calibration is not None and calibration.unused:
        files, root = calibration.unused, calibration.root
        source = f"{root.name if root else 'calibration folder'} (held out)"
    else:
        files, root, source = sample_photos(), None, "photos"
    notes = []
    if calibration is not None and calibration.file_hashes and files:
        used = set(calibration.file_hashes)
        disjoint = [f for f in files if content_hash(f) not in used]
        if len(disjoint) < len(files):
            notes.append(f"gate: left out {len(files) - len(disjoint)} image(s) that are also calibration images")
        files = disjoint
    if not files:
        raise InputDataError("no images held out from calibration for the accuracy gate: "
                             "give --validate-images DIR (disjoint from --calib-data)")
    chosen, _ = select_files(files, count) if len(files) > count else (files, [])
    loaded = preprocess_files(chosen, prep)
    if loaded.skipped:
        notes.append(f"gate: skipped {len(loaded.skipped)} unreadable image(s): "
                     + ", ".join(p.name for p in loaded.skipped[:3]))
    if not len(loaded.array):
        raise InputDataError(f"none of the {len(chosen)} gate image(s) could be read")
    labels = _labels(loaded.files, root)
    array = loaded.array
    notes.append(f"gate: {len(array)} image(s) from {source}"
                 + (", disjoint from calibration" if calibration is not None else "")
                 + (", labelled by class folder" if labels is not None else ""))
    if static_batch:  # a static-batch graph takes exactly `static_batch` rows: cycle the images to whole batches
        rows = np.arange(-(-len(array) // static_batch) * static_batch) % len(array)
        array, labels = array[rows], None if labels is None else labels[rows]
    sets, start = [], 0
    for i, b in enumerate(batches(array, (static_batch or GATE_BATCH,))):
        targets = None if labels is None else labels[start:start + len(b)]
        sets.append(InputSet(f"{source}[{i}]", b, targets))
        start += len(b)
    return sets, notes


def _labels(files: Sequence[Path], root: Path | None) -> np.ndarray | None:
    if root is None:
        return None
    from volo_export.datasets import labels_from_folder

    return labels_from_folder(files, root)
