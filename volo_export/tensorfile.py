"""The input/output tensor file that `volo-export preprocess` writes and the C++
app (`examples/cpp`) reads; `volo_infer --output` writes its logits back in it.

A small self-describing binary format, little-endian, version 1::

    offset      size      field
    0           8         magic  b"VOLOTNSR"
    8           4         uint32 version (1)
    12          4         uint32 dtype code (1 = float32; no other code is defined)
    16          4         uint32 ndim (1..8)
    20          4         uint32 reserved (0)
    24          8 * ndim  int64 dims, each >= 0
    24 + 8*ndim 4 * prod  float32 data, C order (images: N, 3, H, W)

The file ends exactly after the data; anything else is rejected. The data
starts 8-byte aligned, so readers can map it. The C++ twin is
`examples/cpp/volo_io.cpp` (`readTensorFile` / `writeTensorFile`).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError
from volo_export.io import atomic_output

MAGIC = b"VOLOTNSR"
VERSION = 1
MAX_DIMS = 8  # TensorRT's Dims::MAX_DIMS
DTYPES: dict[int, np.dtype] = {1: np.dtype("<f4")}
_CODES = {dt: code for code, dt in DTYPES.items()}
_FIXED = struct.Struct("<8sIIII")  # magic, version, dtype, ndim, reserved


def encode(array: np.ndarray) -> bytes:
    """Header + little-endian C-order data of a float32 array with 1..8 dims."""
    array = np.asarray(array)
    if array.dtype != np.float32:
        raise InputDataError(f"tensor files hold float32 only, got {array.dtype}")
    if not 1 <= array.ndim <= MAX_DIMS:
        raise InputDataError(f"tensor files hold 1..{MAX_DIMS} dims, got {array.ndim}")
    header = _FIXED.pack(MAGIC, VERSION, _CODES[np.dtype("<f4")], array.ndim, 0)
    dims = struct.pack(f"<{array.ndim}q", *array.shape)
    return header + dims + np.ascontiguousarray(array, dtype="<f4").tobytes()


def decode(data: bytes, source: str = "tensor") -> np.ndarray:
    """Inverse of `encode`; any malformed header or size raises InputDataError naming `source`."""
    if len(data) < _FIXED.size:
        raise InputDataError(f"{source} is not a volo-export tensor file: only {len(data)} bytes")
    magic, version, code, ndim, _ = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise InputDataError(f"{source} is not a volo-export tensor file (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise InputDataError(f"{source} has tensor file version {version}; this volo-export reads {VERSION}")
    if code not in DTYPES:
        raise InputDataError(f"{source} has unknown dtype code {code} (known: {sorted(DTYPES)})")
    if not 1 <= ndim <= MAX_DIMS:
        raise InputDataError(f"{source} has {ndim} dims; 1..{MAX_DIMS} allowed")
    offset = _FIXED.size + 8 * ndim
    if len(data) < offset:
        raise InputDataError(f"{source} is truncated inside its header")
    dims = struct.unpack_from(f"<{ndim}q", data, _FIXED.size)
    if any(d < 0 for d in dims):
        raise InputDataError(f"{source} has a negative dim in {dims}")
    dtype = DTYPES[code]
    expected = offset + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise InputDataError(f"{source} holds {len(data)} bytes but shape {tuple(dims)} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims).astype(np.float32)


def write_tensor(path: Path, array: np.ndarray) -> Path:
    """Write `array` (float32, any shape of 1..8 dims) to `path` atomically."""
    blob = encode(array)
    with atomic_output(Path(path)) as tmp:
        tmp.write_bytes(blob)
    return Path(path)


def read_tensor(path: Path) -> np.ndarray:
    """Read a tensor file as a float32 array of its stored shape."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"tensor file not found: {path}")
    return decode(path.read_bytes(), str(path))
