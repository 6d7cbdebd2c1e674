"""Real photographs for calibrating the ImageNet-size variants where no ImageNet exists:
the ~26 photos scikit-image ships, split by photo into a calibration half (many
random crops of each) and a validation half (whole photos), so the two never share
a photo.

    write_photo_split("calib", folder)   # 13 photos x 8 crops
    write_photo_split("val", folder)     # the other 13 photos, whole

`write_samples(model, folder)` picks the right real data for a variant: the digits
calib/test splits for volo_tiny_digits, these photos for the ImageNet variants.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError
from volo_export.preprocess import load_image, sample_photos

SPLITS = ("calib", "val")
_SEED = 0


def photo_split(split: str) -> list[Path]:
    """The scikit-image photos of one split: a seeded half of them each."""
    if split not in SPLITS:
        raise InputDataError(f"unknown photo split {split!r}; choose one of: {', '.join(SPLITS)}")
    photos = sample_photos()
    if not photos:
        raise InputDataError("scikit-image is not installed: no sample photos (pip install scikit-image)")
    order = np.random.default_rng(_SEED).permutation(len(photos))
    half = len(photos) // 2
    chosen = order[:half] if split == "calib" else order[half:]
    return [photos[i] for i in sorted(chosen)]


def write_photo_split(split: str, folder: Path, crops_per_photo: int = 8) -> int:
    """Write the split as PNGs under `folder`: calib as `crops_per_photo` seeded random crops (40-100 % of
    the shorter side, random flips) per photo, val as the whole photos. Returns the file count."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(_SEED)
    count = 0
    for path in photo_split(split):
        img = load_image(path)
        if split == "val":
            img.save(folder / f"{path.stem}.png")
            count += 1
            continue
        w, h = img.size
        for k in range(crops_per_photo):
            side = int(min(w, h) * rng.uniform(0.4, 1.0))
            left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = img.crop((left, top, left + side, top + side))
            if rng.random() < 0.5:
                crop = crop.transpose(0)  # FLIP_LEFT_RIGHT
            crop.save(folder / f"{path.stem}_{k}.png")
            count += 1
    return count


def write_samples(model: str, folder: Path) -> tuple[Path, Path]:
    """Real calibration and (disjoint) validation images for `model` under `folder`: (calib_dir, val_dir)."""
    folder = Path(folder)
    calib, val = folder / "calib", folder / "val"
    if model == "volo_tiny_digits":
        from volo_export.datasets import write_image_folder

        write_image_folder("calib", calib)
        write_image_folder("test", val)
    else:
        write_photo_split("calib", calib, crops_per_photo=20)
        write_photo_split("val", val)
    return calib, val
