"""What a gate runs on: real images (never calibration images), optionally seeded noise,
cut into batches the artifact accepts.

Images come from, in this order: the user's folder (`--validate-images`); the
calibration folder's images beyond `--calib-size` (held out); the photographs
scikit-image ships. Files identical (by content) to a calibration file are
dropped, so a reduced-precision artifact is never judged on its own calibration
data. Class folders `DIR/<index>/...` label the images (accuracy then joins the
report).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volo_export.names import Precision
from volo_export.calibration.data import CalibrationData, content_hash, select_files
from volo_export.errors import InputDataError, UsageError
from volo_export.models.variants import Preprocessing
from volo_export.preprocess import find_images, preprocess_files, sample_photos
from volo_export.runtime.base import BatchRange


@dataclass(frozen=True)
class InputSet:
    """One batch to compare on: a label saying where it came from, images (N, 3, S, S), optional labels (N,).
    `rows`: how many leading rows are real when the rest only repeat them to fill a static batch (None: all);
    only those are compared."""

    label: str
    array: np.ndarray
    targets: np.ndarray | None = None
    rows: int | None = None


@dataclass(frozen=True)
class InputPlan:
    """Which inputs a gate runs on: at most `count` images (a seeded choice when there are more), cut
    into batches cycling through `batch_sizes`, plus seeded standard-normal batches `random_batches`.
    Without random batches real images are required; with them, missing images are a note."""

    images: Path | None = None
    count: int = 16
    batch_sizes: tuple[int, ...] = (1, 4, 8)
    random_batches: tuple[int, ...] = (2,)
    seed: int = 0

    def __post_init__(self):
        if self.count < 1:
            raise UsageError(f"--validate-count must be >= 1, got {self.count}")


# FP32 (exact) gates: a few real photos in several batch sizes through the one dynamic-batch graph,
# plus noise, which reaches activations photos do not.
EXACT_PLAN = InputPlan()
# FP16/INT8 gates: agreement and accuracy are pooled statistics, so more images, one batch size, no noise
# (INT8 ranges were calibrated on images; noise would only measure out-of-range clipping).
DEFAULT_HELDOUT_IMAGES = 64
HELDOUT_PLAN = InputPlan(count=DEFAULT_HELDOUT_IMAGES, batch_sizes=(8,), random_batches=())


def plan_for(precision: str, images: Path | None = None, count: int | None = None) -> InputPlan:
    """The default plan of an artifact of `precision` (see above), on the user's images if given."""
    base = EXACT_PLAN if precision == Precision.FP32 else HELDOUT_PLAN
    return InputPlan(images, count or base.count, base.batch_sizes, base.random_batches, base.seed)


def gate_inputs(prep: Preprocessing, plan: InputPlan,
                calibration: CalibrationData | None = None) -> tuple[list[InputSet], list[str]]:
    """The input batches of `plan`, disjoint from `calibration`; returns them with notes for the report."""
    files, root, source = _image_files(plan, calibration)
    notes = []
    used = set(calibration.file_hashes) if calibration is not None and calibration.file_hashes else set()
    chosen, dropped = _held_out(files, plan.count, used)
    if dropped:
        notes.append(f"gate: left out {dropped} image(s) that are also calibration images")
    if not chosen and not plan.random_batches:
        raise InputDataError("no images held out from calibration for the accuracy gate: "
                             "give --validate-images DIR (disjoint from --calib-data)")
    loaded = preprocess_files(chosen, prep)
    if loaded.skipped:
        notes.append(f"gate: skipped {len(loaded.skipped)} unreadable image(s): "
                     + ", ".join(p.name for p in loaded.skipped[:3]))
    if chosen and not len(loaded.array) and not plan.random_batches:
        raise InputDataError(f"none of the {len(chosen)} gate image(s) could be read")
    labels = _labels(loaded.files, root)
    if len(loaded.array):
        notes.append(f"gate: {len(loaded.array)} image(s) from {source}"
                     + (", disjoint from calibration" if calibration is not None else "")
                     + (", labelled by class folder" if labels is not None else ""))
    elif not files:
        notes.append("no photos available (scikit-image is not installed): gated on random inputs only")
    sets = _cycle(loaded.array, labels, plan.batch_sizes, source)
    rng = np.random.default_rng(plan.seed)
    for n in plan.random_batches:
        sets.append(InputSet("random", rng.standard_normal((n, 3, prep.size, prep.size), dtype=np.float32)))
    return sets, notes


def fit_to(sets: Sequence[InputSet], batches: BatchRange) -> list[InputSet]:
    """Input sets an artifact with batch range `batches` accepts: longer sets are cut, shorter ones
    repeat their own rows (`BatchRange.chunks`, the policy predict uses too)."""
    out = []
    for s in sets:
        chunks = batches.chunks(len(s.array), batches.hi if batches.hi else len(s.array))
        if len(chunks) == 1 and len(chunks[0][0]) == len(s.array):  # fits as it is
            out.append(s)
            continue
        for index, rows in chunks:
            label = s.label if len(chunks) == 1 else f"{s.label}[{index[0]}:{index[0] + rows}]"
            if len(index) > rows:
                label += f" (rows repeated to batch {len(index)})"
            out.append(InputSet(label, s.array[index], None if s.targets is None else s.targets[index],
                                rows if len(index) > rows else None))
    return out


def _held_out(files: list[Path], count: int, calibration_hashes: set[str]) -> tuple[list[Path], int]:
    """(up to `count` files of a seeded choice that are not calibration files, how many were left out for
    being one). Only the files looked at are hashed: a calibration folder's leftovers can be 50k images."""
    kept, dropped, pool = [], 0, files
    while pool and len(kept) < count:
        want = count - len(kept)
        take, pool = select_files(pool, want) if len(pool) > want else (pool, [])
        fresh = [f for f in take if not calibration_hashes or content_hash(f) not in calibration_hashes]
        kept, dropped = kept + fresh, dropped + len(take) - len(fresh)
    return sorted(kept), dropped


def _image_files(plan: InputPlan, calibration: CalibrationData | None) -> tuple[list[Path], Path | None, str]:
    """(image files, the folder their class labels are relative to, a name for the report)."""
    if plan.images is not None:
        files = find_images(plan.images)
        if not files:
            raise InputDataError(f"no images (jpg/png/webp/bmp) under {plan.images}")
        return files, Path(plan.images), Path(plan.images).name
    if calibration is not None and calibration.unused:
        root = calibration.root
        return calibration.unused, root, f"{root.name if root else 'calibration folder'} (held out)"
    return sample_photos(), None, "photos"


def _cycle(array: np.ndarray, labels: np.ndarray | None, sizes: Sequence[int], source: str) -> list[InputSet]:
    """Consecutive batches of `array` cycling through `sizes` (the last one may be short)."""
    sets, start, k = [], 0, 0
    while start < len(array):
        n = sizes[k % len(sizes)]
        rows = slice(start, start + n)
        sets.append(InputSet(f"{source}[{k}]", array[rows], None if labels is None else labels[rows]))
        start, k = start + n, k + 1
    return sets


def _labels(files: Sequence[Path], root: Path | None) -> np.ndarray | None:
    if root is None:
        return None
    from volo_export.datasets import labels_from_folder

    return labels_from_folder(files, root)
