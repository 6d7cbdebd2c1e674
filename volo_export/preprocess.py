"""The one image preprocessing implementation (timm's eval transform), shared by
validation, calibration, predict, serving and the C++ input writer.

file -> decode (refusing decompression bombs) -> EXIF orientation applied -> 8-bit RGB
-> resize shorter side to floor(size / crop_pct) (bicubic by default)
-> centre crop `size` (zero padding where the resized image is smaller)
-> [0, 1] -> (x - mean) / std -> float32 (3, size, size).

Every Pillow mode becomes the RGB picture it shows (`to_rgb`): 16-bit grey (I;16*) is
scaled by 1/257, 32-bit integer (I) likewise when its values exceed 8 bits, float (F)
is read on Pillow's 0..255 scale, palette and CMYK go through Pillow's conversions,
and transparent images are composited over black.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, UsageError, first_line
from volo_export.models.variants import Preprocessing

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# The shipped photos are scikit-image's JPEG/PNG/BMP ones (its TIFFs are multi-page test files): a fixed
# set, so the calibration/validation photo split (calibration.samples) never changes with the suffix list.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Decompression-bomb guard: images with more pixels than this are refused before they are decoded
# (a 90-megapixel RGB image needs ~270 MB decoded; a crafted 1 KB PNG can claim gigapixels). The
# default is Pillow's own limit; set VOLO_EXPORT_MAX_IMAGE_PIXELS to allow larger images.
MAX_PIXELS_ENV = "VOLO_EXPORT_MAX_IMAGE_PIXELS"
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def _pil_filter(name: str):
    from PIL import Image

    filters = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
    try:
        return filters[name]
    except KeyError:
        raise InputDataError(f"unknown interpolation {name!r}; one of {', '.join(filters)}") from None


def max_image_pixels() -> int:
    """The decompression-bomb limit in pixels (see MAX_PIXELS_ENV)."""
    from PIL import Image

    value = os.environ.get(MAX_PIXELS_ENV)
    if value is None:
        return int(Image.MAX_IMAGE_PIXELS or 0) or 2**31
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{MAX_PIXELS_ENV}={value!r} is not a whole number of pixels") from None


def load_image(path: Path):
    """Decode an image file as the 8-bit RGB picture it shows (EXIF orientation applied, see `to_rgb`).
    A missing, unreadable, truncated or oversized file raises InputDataError naming it."""
    path = Path(path)
    if path.is_dir():
        raise InputDataError(f"{path} is a folder, not an image")
    from volo_export.io import input_file

    input_file(path, "image")
    return _decode(path, str(path))


def decode_image(data: bytes, name: str = "image"):
    """Encoded image bytes (e.g. a served request) -> the 8-bit RGB picture they show, exactly as
    `load_image` decodes a file; `name` stands for the source in error messages."""
    import io

    return _decode(io.BytesIO(data), name)


def _decode(source, name: str):
    """A file path or binary stream -> 8-bit RGB (see `load_image`); errors name `name`."""
    import warnings

    from PIL import Image, ImageOps, UnidentifiedImageError

    limit = max_image_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below decides
            with Image.open(source) as img:  # reads the header only
                w, h = img.size
                if w * h > limit:
                    raise InputDataError(f"{name} is {w}x{h} = {w * h / 1e6:.0f} megapixels, above the "
                                         f"{limit / 1e6:.0f}-megapixel decompression-bomb limit; set "
                                         f"{MAX_PIXELS_ENV}={w * h} to allow it")
                ImageOps.exif_transpose(img, in_place=True)  # no copy of a picture up to the pixel limit
                return to_rgb(img)
    except Image.DecompressionBombError as e:
        raise InputDataError(f"{name}: {e}; set {MAX_PIXELS_ENV} to allow larger images") from None
    except UnidentifiedImageError:
        raise InputDataError(f"cannot read image {name}: not an image format Pillow knows") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data (PIL raises all three)
        raise InputDataError(f"cannot read image {name}: {first_line(e)}") from None


def to_rgb(img):
    """Any Pillow image -> the 8-bit RGB picture it shows (see the module docstring)."""
    from PIL import Image

    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        values = np.asarray(img, dtype=np.float64)
        scale = 257.0 if img.mode in _SIXTEEN_BIT or values.max(initial=0) > 255 else 1.0
        return Image.fromarray(np.clip(np.round(values / scale), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    return img.convert("RGB")


def resized_size(w: int, h: int, prep: Preprocessing) -> tuple[int, int]:
    """(width, height) of a w x h image with its shorter side resized to `prep.resize_to`."""
    short = prep.resize_to
    scale = short / min(w, h)
    return (short, max(1, round(h * scale))) if w <= h else (max(1, round(w * scale)), short)


def preprocess_image(img, prep: Preprocessing, name: str = "image") -> np.ndarray:
    """PIL RGB image -> float32 (3, size, size), normalised.

    The resize target is held to the decompression-bomb limit too (a 60000x1 image would resize to
    15 gigapixels), and only the part of it that the centre crop keeps is computed: Pillow resamples
    the crop's box of the source (its filter still reads the pixels around the box), which gives the
    pixels of resize-then-crop while the work stays (size x source height) + (size x size) whatever the
    aspect ratio."""
    w, h = img.size
    new_w, new_h = resized_size(w, h, prep)
    limit = max_image_pixels()
    if new_w * new_h > limit:
        raise InputDataError(f"{name} is {w}x{h}: with its shorter side resized to {prep.resize_to} it would be "
                             f"{new_w}x{new_h} = {new_w * new_h / 1e6:.0f} megapixels, above the "
                             f"{limit / 1e6:.0f}-megapixel limit (aspect ratio {max(w, h) / min(w, h):.0f}:1); "
                             "crop it to a less extreme shape")
    size = prep.size
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x0, y0 = max(left, 0), max(top, 0)
    crop_w, crop_h = min(size, new_w), min(size, new_h)
    sx, sy = w / new_w, h / new_h
    # Horizontal pass, then vertical, as Pillow's own full resize does them (one resize with a box
    # that crops both ways runs them in another order, up to 23 levels off).
    resample = _pil_filter(prep.interpolation)
    if prep.interpolation == "nearest":  # Pillow's fixed-point nearest picks other pixels for a box: resize in
        # full (8-bit, at most the pixel limit) and crop
        img = img.resize((new_w, new_h), resample).crop((x0, y0, x0 + crop_w, y0 + crop_h))
    else:
        img = img.resize((crop_w, h), resample, box=(x0 * sx, 0, (x0 + crop_w) * sx, h))
        img = img.resize((crop_w, crop_h), resample, box=(0, y0 * sy, crop_w, (y0 + crop_h) * sy))
    out = np.zeros((size, size, 3), dtype=np.float32)
    dst_top, dst_left = max(-top, 0), max(-left, 0)
    out[dst_top:dst_top + crop_h, dst_left:dst_left + crop_w] = np.asarray(img, dtype=np.float32) / 255.0
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
            arrays.append(preprocess_image(load_image(p), prep, str(p)))
            files.append(Path(p))
        except InputDataError:
            skipped.append(Path(p))
    shape = (0, 3, prep.size, prep.size)
    return ImageBatch(np.stack(arrays) if arrays else np.zeros(shape, np.float32), files, skipped)


def expand_images(args: Sequence[Path]) -> list[Path]:
    """Command-line image arguments -> image files, in order: a folder gives its images (recursive,
    sorted), a glob pattern the image files it matches (sorted), a file itself."""
    import glob

    files: list[Path] = []
    for arg in map(Path, args):
        if arg.is_dir():
            found = find_images(arg)
            if not found:
                raise InputDataError(f"no images ({'/'.join(s[1:] for s in IMAGE_SUFFIXES)}) under {arg}")
            files += found
        elif not arg.exists() and glob.has_magic(str(arg)):
            found = sorted(Path(p) for p in glob.glob(str(arg), recursive=True)
                           if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
            if not found:
                raise InputDataError(f"no image matches {arg}")
            files += found
        else:
            files.append(arg)
    return files


def preprocess_paths(paths: Sequence[Path], prep: Preprocessing) -> np.ndarray:
    """Every image, in order, as float32 (N, 3, S, S); the first missing or unreadable one raises InputDataError."""
    if not paths:
        raise UsageError("no images given")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise InputDataError(f"image not found: {missing[0]}")
    return np.stack([preprocess_image(load_image(Path(p)), prep, str(p)) for p in paths])


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
    from volo_export.io import distinct_outputs, ensure_writable
    from volo_export.tensorfile import write_tensor

    ensure_writable(out)
    distinct_outputs({"IMAGES": list(paths)}, {"--out": out})
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
    return sorted(p for p in data.glob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
