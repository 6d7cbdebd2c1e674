"""The one image preprocessing implementation (timm's eval transform), shared by
validation, calibration, predict and the C++ input writer.

RGB image -> resize shorter side to floor(size / crop_pct) (bicubic by default)
-> centre crop `size` (zero padding where the resized image is smaller)
-> [0, 1] -> (x - mean) / std -> float32 (3, size, size).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, UsageError
from volo_export.models.variants import Preprocessing

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def _pil_filter(name: str):
    from PIL import Image

    filters = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
    try:
        return filters[name]
    except KeyError:
        raise InputDataError(f"unknown interpolation {name!r}; one of {', '.join(filters)}") from None


def load_image(path: Path):
    """Open an image file as RGB; a file that is not a readable image raises InputDataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InputDataError(f"cannot read image {path}: {e.__class__.__name__}") from None


def preprocess_image(img, prep: Preprocessing) -> np.ndarray:
    """PIL RGB image -> float32 (3, size, size), normalised."""
    w, h = img.size
    short = prep.resize_to
    scale = short / min(w, h)
    new_w, new_h = (short, max(1, round(h * scale))) if w <= h else (max(1, round(w * scale)), short)
    img = img.resize((new_w, new_h), _pil_filter(prep.interpolation))
    arr = np.asarray(img, dtype=np.float32) / 255.0  # H, W, 3
    out = np.zeros((prep.size, prep.size, 3), dtype=np.float32)
    top, left = (new_h - prep.size) // 2, (new_w - prep.size) // 2
    src = arr[max(top, 0):max(top, 0) + prep.size, max(left, 0):max(left, 0) + prep.size]
    dst_top, dst_left = max(-top, 0), max(-left, 0)
    out[dst_top:dst_top + src.shape[0], dst_left:dst_left + src.shape[1]] = src
    out = (out - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


@dataclass
class ImageBatch:
    """Preprocessed images (N, 3, S, S) with the files they came from and the ones skipped."""

    array: np.ndarray
    files: list[Path]
    skipped: list[Path] = field(default_factory=list)


def find_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputDataError(f"image folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def preprocess_files(paths: Iterable[Path], prep: Preprocessing) -> ImageBatch:
    """Preprocess every readable image; unreadable ones are counted in `skipped`, not fatal."""
    arrays, files, skipped = [], [], []
    for p in paths:
        try:
            arrays.append(preprocess_image(load_image(p), prep))
            files.append(Path(p))
        except InputDataError:
            skipped.append(Path(p))
    shape = (0, 3, prep.size, prep.size)
    return ImageBatch(np.stack(arrays) if arrays else np.zeros(shape, np.float32), files, skipped)


def preprocess_paths(paths: Sequence[Path], prep: Preprocessing) -> np.ndarray:
    """Every image, in order, as float32 (N, 3, S, S); the first missing or unreadable one raises InputDataError."""
    if not paths:
        raise UsageError("no images given")
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise InputDataError(f"image not found: {missing[0]}")
    return np.stack([preprocess_image(load_image(Path(p)), prep) for p in paths])


def preprocessing_for(model: Path | None = None, model_name: str | None = None) -> Preprocessing:
    """The preprocessing of an artifact (.onnx, .engine via its sidecar, .engine.json) or of a
    registered variant; exactly one of the two must be given."""
    if (model is None) == (model_name is None):
        raise UsageError("give exactly one of --model (an .onnx/.engine/.engine.json) or --model-name")
    if model_name is not None:
        from volo_export.models.variants import get_config

        return get_config(model_name).preprocessing
    from volo_export.artifact import read_artifact_info

    return read_artifact_info(Path(model)).preprocessing


def write_input_file(paths: Sequence[Path], prep: Preprocessing, out: Path) -> np.ndarray:
    """Preprocess `paths` into one (N, 3, S, S) batch and write it as a tensor file (see
    `volo_export.tensorfile`) for the C++ app; returns the batch."""
    from volo_export.io import ensure_writable
    from volo_export.tensorfile import write_tensor

    ensure_writable(out)
    batch = preprocess_paths(paths, prep)
    write_tensor(out, batch)
    return batch


def sample_photos() -> list[Path]:
    """Real photographs that ship inside scikit-image (`skimage/data`), used when the user gives none."""
    from importlib.util import find_spec

    spec = find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return []
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return sorted(p for p in data.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
