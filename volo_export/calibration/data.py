"""Calibration inputs: a folder of images, `.npy`/`.npz` tensors, or (only when asked
for by name) random tensors.

Images go through `volo_export.preprocess`, the model's own preprocessing, so
calibration sees exactly what validation and prediction see. Every source is
summarised by a digest (file names + content hashes, or the seed) that the
calibration cache compares.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, UsageError, first_line
from volo_export.models.variants import Preprocessing
from volo_export.preprocess import IMAGE_SUFFIXES, find_images, load_image, preprocess_image
from volo_export.progress import SILENT, Progress
from volo_export.tolerances import MIN_CALIBRATION_SAMPLES

RANDOM = "random"
TENSOR_SUFFIXES = (".npy", ".npz")
DEFAULT_CALIB_SIZE = 256
# Files are picked from a folder in a seeded shuffle of the sorted list, so a folder
# laid out by class (`0/`, `1/`, ...) contributes every class, not only the first ones.
SELECTION_SEED = 0


@dataclass
class CalibrationData:
    """Preprocessed calibration samples (N, 3, S, S) float32 and where they came from."""

    array: np.ndarray
    source: str  # "images", "tensors" or "random"
    description: str
    digest: str  # sha256 over the file list and contents (or the random seed)
    files: list[Path] = field(default_factory=list)
    file_hashes: list[str] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    unused: list[Path] = field(default_factory=list)  # images beyond --calib-size: held-out candidates
    notes: list[str] = field(default_factory=list)
    root: Path | None = None  # the folder the images came from

    @property
    def random(self) -> bool:
        return self.source == RANDOM

    def summary(self) -> dict[str, str]:
        """What the artifact's metadata records about its calibration data."""
        return {"source": self.source, "description": self.description, "size": str(len(self.array)),
                "data_sha256": self.digest, "random": "true" if self.random else "false"}


def content_hash(path: Path) -> str:
    """sha256 of a file's bytes (short files: images, tensors)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_calibration_data(spec: str | Path, prep: Preprocessing, size: int = DEFAULT_CALIB_SIZE,
                          progress: Progress = SILENT) -> CalibrationData:
    """Resolve `--calib-data` into preprocessed samples.

    `spec` is a folder of images (recursive), a `.npy`/`.npz` file of (N, 3, S, S) or
    (3, S, S) float tensors, or the word "random". At most `size` samples are used.
    Raises InputDataError when there is no usable data at all.
    """
    if size < 1:
        raise UsageError(f"--calib-size must be >= 1, got {size}")
    if str(spec) == RANDOM:
        data = random_calibration(prep, size)
    else:
        path = Path(spec)
        if path.is_dir():
            data = _from_folder(path, prep, size, progress)
        elif path.is_file() and path.suffix.lower() in TENSOR_SUFFIXES:
            data = _from_tensor_file(path, prep, size)
        elif path.is_file():
            raise InputDataError(f"--calib-data {path}: expected a folder of images, a .npy/.npz file or 'random'")
        else:
            raise InputDataError(f"--calib-data {path} not found")
    if not data.random and len(data.array) < MIN_CALIBRATION_SAMPLES:
        data.notes.append(f"only {len(data.array)} calibration sample(s); ranges from fewer than "
                          f"{MIN_CALIBRATION_SAMPLES} are unreliable: give more images")
    return data


def random_calibration(prep: Preprocessing, size: int, seed: int = 0) -> CalibrationData:
    """Standard-normal tensors in the normalised input space: only to test the pipeline."""
    rng = np.random.default_rng(seed)
    array = rng.standard_normal((size, 3, prep.size, prep.size), dtype=np.float32)
    digest = hashlib.sha256(f"random:{seed}:{size}:{prep.size}".encode()).hexdigest()
    return CalibrationData(array, RANDOM, f"{size} random tensors (seed {seed})", digest,
                           notes=["calibrated on RANDOM data (--calib-data random): the INT8 ranges do not "
                                  "reflect real images; the artifact is stamped as such"])


def select_files(files: list[Path], size: int) -> tuple[list[Path], list[Path]]:
    """(chosen, rest): `size` files of a seeded shuffle of the sorted list, and the others in order."""
    order = np.random.default_rng(SELECTION_SEED).permutation(len(files))
    chosen = sorted(files[i] for i in order[:size])
    chosen_set = set(chosen)
    return chosen, [f for f in files if f not in chosen_set]


def _from_folder(folder: Path, prep: Preprocessing, size: int, progress: Progress) -> CalibrationData:
    files = find_images(folder)
    others = sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix.lower() not in IMAGE_SUFFIXES)
    if not files:
        extra = f" ({others} other file(s) ignored)" if others else ""
        raise InputDataError(f"no images ({'/'.join(s[1:] for s in IMAGE_SUFFIXES)}) under {folder}{extra}")
    chosen, rest = select_files(files, size)
    arrays, used, hashes, skipped = [], [], [], []
    pending = list(chosen)
    # Unreadable files are replaced by the next unused ones, so --calib-size still holds when possible.
    while pending:
        path = pending.pop(0)
        try:
            arrays.append(preprocess_image(load_image(path), prep))
            used.append(path)
            hashes.append(content_hash(path))
        except InputDataError:
            skipped.append(path)
            if rest:
                pending.append(rest.pop(0))
        progress.advance(len(used) + len(skipped), len(chosen) + len(skipped))
    notes = []
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable image(s): " + ", ".join(p.name for p in skipped[:3])
                     + (" ..." if len(skipped) > 3 else ""))
    if others:
        notes.append(f"ignored {others} non-image file(s) under {folder}")
    if not arrays:
        raise InputDataError(f"none of the {len(skipped)} image file(s) under {folder} could be read: "
                             + ", ".join(p.name for p in skipped[:3]))
    names = [str(p.relative_to(folder)) for p in used]
    digest = _digest(names, hashes)
    desc = f"{len(used)} of {len(files)} images under {folder}"
    return CalibrationData(np.stack(arrays), "images", desc, digest, used, hashes, skipped, rest, notes, folder)


def _from_tensor_file(path: Path, prep: Preprocessing, size: int) -> CalibrationData:
    arrays = _read_tensors(path)
    expected = (3, prep.size, prep.size)
    checked = []
    for name, a in arrays:
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or tuple(a.shape[1:]) != expected:
            raise InputDataError(f"{path}{name}: expected float tensors of shape (N, {', '.join(map(str, expected))}) "
                                 f"or {expected} (preprocessed, normalised, channels first), got {tuple(a.shape)}")
        if not np.issubdtype(a.dtype, np.floating):
            raise InputDataError(f"{path}{name}: expected float tensors (preprocessed, normalised), got {a.dtype}")
        if not np.isfinite(a).all():
            raise InputDataError(f"{path}{name}: tensor contains NaN or infinity")
        checked.append(a.astype(np.float32))
    array = np.concatenate(checked)
    if len(array) == 0:
        raise InputDataError(f"{path} holds no samples (N = 0)")
    total = len(array)
    array = np.ascontiguousarray(array[:size])
    file_hash = content_hash(path)
    digest = hashlib.sha256(f"{path.name}\0{file_hash}\0{len(array)}".encode()).hexdigest()
    return CalibrationData(array, "tensors", f"{len(array)} of {total} tensors from {path}", digest,
                           [path], [file_hash])


def _read_tensors(path: Path) -> list[tuple[str, np.ndarray]]:
    """[(label, array)] from a .npy (one array) or .npz (every array inside)."""
    magic = {".npy": b"\x93NUMPY", ".npz": b"PK"}[path.suffix.lower()]
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise InputDataError(f"{path} is not a {path.suffix.lower()} file (numpy.save/savez writes those)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputDataError(f"cannot read {path} as {path.suffix} tensors: {first_line(e)}") from None
    if isinstance(loaded, np.ndarray):
        return [("", loaded)]
    with loaded:
        if not loaded.files:
            raise InputDataError(f"{path} holds no arrays")
        return [(f"[{k}]", loaded[k]) for k in loaded.files]


def _digest(names: list[str], hashes: list[str]) -> str:
    """sha256 over (relative name, content hash) pairs, in order."""
    h = hashlib.sha256()
    for n, c in zip(names, hashes):
        h.update(f"{n}\0{c}\n".encode())
    return h.hexdigest()
