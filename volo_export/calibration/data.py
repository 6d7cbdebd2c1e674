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
from volo_export.io import sha256_file
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
# The preprocessed samples are held in memory together (float32 (N, 3, S, S)): --calib-size is refused
# up front where they would pass this (VOLO-D1 at 224: 7133 samples; gains stop long before that).
MAX_CALIB_BYTES = 4 << 30


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
    """sha256 of a file's bytes, read in chunks."""
    return sha256_file(Path(path))


def load_calibration_data(spec: str | Path, prep: Preprocessing, size: int = DEFAULT_CALIB_SIZE,
                          progress: Progress = SILENT) -> CalibrationData:
    """Resolve `--calib-data` into preprocessed samples.

    `spec` is a folder of images (recursive), a `.npy`/`.npz` file of (N, 3, S, S) or
    (3, S, S) float tensors, or the word "random". At most `size` samples are used.
    Raises InputDataError when there is no usable data at all.
    """
    if size < 1:
        raise UsageError(f"--calib-size must be >= 1, got {size}")
    sample = 3 * prep.size * prep.size * 4
    if size * sample > MAX_CALIB_BYTES:
        raise UsageError(f"--calib-size {size} would hold {size * sample / 2**30:.1f} GiB of {prep.size}x{prep.size} "
                         f"samples in memory; at most {MAX_CALIB_BYTES // sample} fit the "
                         f"{MAX_CALIB_BYTES >> 30} GiB bound")
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
            arrays.append(preprocess_image(load_image(path), prep, str(path)))
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
    """The first `size` samples of a .npy/.npz file. Only array headers and the rows used are read (a .npy
    is memory-mapped, an .npz member decompressed up to the rows needed): memory stays `size` samples,
    whatever the file claims to hold."""
    expected = (3, prep.size, prep.size)
    members = _tensor_members(path)
    for label, header in members:
        shape, _fortran, dtype = header
        if len(shape) == 3:
            shape = (1, *shape)
        if len(shape) != 4 or tuple(shape[1:]) != expected:
            raise InputDataError(f"{path}{label}: expected float tensors of shape (N, {', '.join(map(str, expected))}) "
                                 f"or {expected} (preprocessed, normalised, channels first), got {tuple(header[0])}")
        if not np.issubdtype(dtype, np.floating):
            raise InputDataError(f"{path}{label}: expected float tensors (preprocessed, normalised), got {dtype}")
    total = sum(int(np.prod(h[0][:-3], dtype=np.int64)) for _, h in members)
    if total == 0:
        raise InputDataError(f"{path} holds no samples (N = 0)")
    array = np.empty((min(total, size), *expected), np.float32)  # the only copy of the samples kept
    done = 0
    for label, a in _read_rows(path, members, size):
        if not np.isfinite(a).all():
            raise InputDataError(f"{path}{label}: tensor contains NaN or infinity")
        array[done:done + len(a)] = a
        done += len(a)
    file_hash = sha256_file(path)
    digest = hashlib.sha256(f"{path.name}\0{file_hash}\0{len(array)}".encode()).hexdigest()
    return CalibrationData(array, "tensors", f"{len(array)} of {total} tensors from {path}", digest,
                           [path], [file_hash])


Header = tuple  # (shape, fortran_order, dtype) of one stored array


def _tensor_members(path: Path) -> list[tuple[str, Header]]:
    """[(label, header)] of a .npy (one array) or .npz (every member): only the headers are read. A file that
    is not such an archive, a member that is not a .npy array, an object array: one-line InputDataErrors."""
    magic = {".npy": b"\x93NUMPY", ".npz": b"PK"}[path.suffix.lower()]
    with open(path, "rb") as f:
        if f.read(len(magic)) != magic:
            raise InputDataError(f"{path} is not a {path.suffix.lower()} file (numpy.save/savez writes those)")
    with _reading(path):
        if path.suffix.lower() == ".npy":
            with open(path, "rb") as f:
                return [("", _header(f, path, ""))]
        import zipfile

        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names:
                raise InputDataError(f"{path} holds no arrays")
            out = []
            for name in names:
                label = f"[{name.removesuffix('.npy')}]"
                if not name.endswith(".npy"):
                    raise InputDataError(f"{path}{label}: not a .npy array (numpy.savez writes only those)")
                with archive.open(name) as f:
                    out.append((label, _header(f, path, label)))
            return out


def _header(f, path: Path, label: str) -> Header:
    version = np.lib.format.read_magic(f)
    read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read is None:
        raise InputDataError(f"{path}{label}: .npy format version {version} is not supported")
    shape, fortran, dtype = read(f)
    if dtype.hasobject:
        raise InputDataError(f"{path}{label}: holds Python objects ({dtype}); only numeric tensors are read "
                             "(nothing is unpickled)")
    return tuple(shape), fortran, dtype


def _read_rows(path: Path, members: list[tuple[str, Header]], size: int):
    """Yield (label, array) with the first rows of each member until `size` samples are read."""
    import zipfile

    need = size
    with _reading(path):
        if path.suffix.lower() == ".npy":
            label, (shape, _, _) = members[0]
            mapped = np.load(path, mmap_mode="r", allow_pickle=False).reshape(-1, *shape[-3:])
            for start in range(0, min(need, len(mapped)), _CHUNK_SAMPLES):
                yield label, np.asarray(mapped[start:start + min(_CHUNK_SAMPLES, need - start)])
            return
        with zipfile.ZipFile(path) as archive:
            for name, (label, (shape, fortran, dtype)) in zip(archive.namelist(), members):
                if need <= 0:
                    return
                rows = int(np.prod(shape[:-3], dtype=np.int64))
                take = min(rows, need)
                sample = int(np.prod(shape[-3:])) * dtype.itemsize
                if fortran and take < rows:
                    raise InputDataError(f"{path}{label}: a Fortran-order array holds its samples interleaved; save "
                                         "it C-ordered (np.ascontiguousarray) so the samples used can be read alone")
                with archive.open(name) as f:
                    _header(f, path, label)
                    if fortran:  # only whole (take == rows): the samples are interleaved
                        data = f.read(take * sample)
                        _check_length(path, label, len(data), take * sample)
                        yield label, np.frombuffer(data, dtype).reshape(shape[::-1]).transpose().reshape(
                            take, *shape[-3:])
                    else:
                        for start in range(0, take, _CHUNK_SAMPLES):  # a chunk at a time: one copy of the samples
                            count = min(_CHUNK_SAMPLES, take - start)
                            data = f.read(count * sample)
                            _check_length(path, label, len(data), count * sample)
                            yield label, np.frombuffer(data, dtype).reshape(count, *shape[-3:])
                    if take == rows:
                        f.read(1)  # reads to the end of the member, so zipfile checks its CRC
                need -= take


_CHUNK_SAMPLES = 16


def _check_length(path: Path, label: str, got: int, want: int) -> None:
    if got != want:
        raise InputDataError(f"{path}{label}: truncated ({got} of {want} bytes)")


class _reading:
    """Context: the errors of a damaged archive or array file (zip, zlib, numpy header) -> one line."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        import zipfile
        import zlib

        if isinstance(error, (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)) \
                and not isinstance(error, InputDataError):
            raise InputDataError(f"cannot read {self.path} as {self.path.suffix} tensors: "
                                 f"{first_line(error, typed=True)}") from None
        return False


def _digest(names: list[str], hashes: list[str]) -> str:
    """sha256 over (relative name, content hash) pairs, in order."""
    h = hashlib.sha256()
    for n, c in zip(names, hashes):
        h.update(f"{n}\0{c}\n".encode())
    return h.hexdigest()
