"""A real, labelled dataset that ships inside a registry package: scikit-learn's
handwritten digits (1797 images, 8x8, 10 classes), made into 64x64 RGB images
for `volo_tiny_digits`.

The split into `train` / `calib` / `test` (60 / 15 / 25 % of each class) is
fixed by a seed, so every tool and test sees the same images: the tiny model
is trained on `train`, INT8 ranges come from `calib`, and accuracy is measured
on `test`, which neither of them saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError
from volo_export.models.variants import Preprocessing
from volo_export.preprocess import preprocess_image

SPLITS = ("train", "calib", "test")
_FRACTIONS = {"train": 0.60, "calib": 0.15}  # test: the rest of each class
_SEED = 20240607
IMAGE_SIZE = 64


@dataclass
class LabeledImages:
    """RGB PIL images (IMAGE_SIZE x IMAGE_SIZE), their int64 class labels (N,) and
    their row indices (N,) in `sklearn.datasets.load_digits()`."""

    images: list
    labels: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def preprocessed(self, prep: Preprocessing) -> np.ndarray:
        """The images through the model's preprocessing: float32 (N, 3, prep.size, prep.size)."""
        return np.stack([preprocess_image(img, prep) for img in self.images])


@lru_cache(maxsize=1)
def _load_raw() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) float pixel values in 0..16 and (1797,) int64 labels (cached: callers index, never mutate)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise InputDataError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    return np.asarray(digits.images), np.asarray(digits.target, dtype=np.int64)


def split_indices(labels: np.ndarray, seed: int = _SEED) -> dict[str, np.ndarray]:
    """Stratified, seeded split of row indices into SPLITS (each sorted, pairwise disjoint)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        n_train = round(len(rows) * _FRACTIONS["train"])
        n_calib = round(len(rows) * _FRACTIONS["calib"])
        parts["train"].append(rows[:n_train])
        parts["calib"].append(rows[n_train:n_train + n_calib])
        parts["test"].append(rows[n_train + n_calib:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def digit_image(pixels: np.ndarray, size: int = IMAGE_SIZE):
    """(8, 8) values 0..16 -> RGB PIL image (size, size): scaled to 0..255, bicubic upscale."""
    from PIL import Image

    gray = np.clip(np.round(pixels * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def load_digits_split(split: str) -> LabeledImages:
    """The images and labels of one split ('train', 'calib' or 'test')."""
    if split not in SPLITS:
        raise InputDataError(f"unknown digits split {split!r}; choose one of: {', '.join(SPLITS)}")
    pixels, labels = _load_raw()
    rows = split_indices(labels)[split]
    return LabeledImages([digit_image(pixels[i]) for i in rows], labels[rows], rows)


def write_image_folder(split: str, folder: Path) -> int:
    """Write a split as PNGs `folder/<label>/<index>.png` (index: row in load_digits); returns the count."""
    data = load_digits_split(split)
    folder = Path(folder)
    for img, label, index in zip(data.images, data.labels, data.indices):
        target = folder / str(int(label))
        target.mkdir(parents=True, exist_ok=True)
        img.save(target / f"{int(index)}.png")
    return len(data)


def labels_from_folder(paths: Sequence[Path], root: Path) -> np.ndarray | None:
    """Class labels (N,) int64 read from the class-subfolder names (`root/<class index>/.../file`),
    or None unless every path sits below `root` in a first-level folder named by a class index."""
    root = Path(root)
    labels = []
    for p in paths:
        try:
            parts = Path(p).relative_to(root).parts
        except ValueError:
            return None
        if len(parts) < 2 or not (parts[0].isascii() and parts[0].isdecimal()):
            return None
        labels.append(int(parts[0]))
    return np.asarray(labels, dtype=np.int64) if labels else None
