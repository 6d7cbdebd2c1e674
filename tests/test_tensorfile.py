"""The tensor file format shared with the C++ app: exact round trips, exact layout, clear rejections."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from volo_export.errors import InputDataError, UsageError
from volo_export.tensorfile import MAGIC, decode, encode, read_tensor, write_tensor


@pytest.mark.parametrize("shape", [(7,), (2, 3, 5, 4), (0, 3, 4, 4), (1, 1, 1, 1, 1, 1, 1, 2)])
def test_round_trip_is_exact(tmp_path, shape):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 1e3).astype(np.float32)
    path = write_tensor(tmp_path / "x.bin", array)
    back = read_tensor(path)
    assert back.dtype == np.float32 and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert path.stat().st_size == 24 + 8 * len(shape) + 4 * array.size


def test_layout_is_the_documented_one():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    blob = encode(array)
    magic, version, dtype, ndim, reserved = struct.unpack_from("<8sIIII", blob)
    assert (magic, version, dtype, ndim, reserved) == (MAGIC, 1, 1, 2, 0)
    assert struct.unpack_from("<2q", blob, 24) == (2, 3)
    assert blob[40:] == array.astype("<f4").tobytes()  # C order, little-endian


def test_non_contiguous_and_special_values_survive():
    array = np.array([[1.0, np.nan], [np.inf, -0.0]], dtype=np.float32).T  # Fortran-ordered view
    back = decode(encode(array))
    np.testing.assert_array_equal(back, array)
    assert np.signbit(back[1, 1])


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:10], "only 10 bytes"),
    (lambda b: b"NOTATNSR" + b[8:], "not a volo-export tensor file"),
    (lambda b: b[:8] + struct.pack("<I", 2) + b[12:], "version 2"),
    (lambda b: b[:12] + struct.pack("<I", 2) + b[16:], "unknown dtype code 2"),
    (lambda b: b[:16] + struct.pack("<I", 9) + b[20:], "9 dims"),
    (lambda b: b[:-4], "needs"),
    (lambda b: b + b"\0", "needs"),
    (lambda b: b[:24] + struct.pack("<q", -2) + b[32:], "negative dim"),
])
def test_malformed_files_are_rejected_in_one_line(mutate, message):
    blob = encode(np.zeros((2, 3), np.float32))
    with pytest.raises(InputDataError, match=message) as info:
        decode(mutate(blob), "bad.bin")
    assert "bad.bin" in str(info.value) and "\n" not in str(info.value)


def test_only_float32_with_1_to_8_dims_is_written(tmp_path):
    with pytest.raises(InputDataError, match="float32 only"):
        write_tensor(tmp_path / "x.bin", np.zeros(3, np.float64))
    with pytest.raises(InputDataError, match="1..8 dims"):
        write_tensor(tmp_path / "x.bin", np.float32(1.0))
    assert not (tmp_path / "x.bin").exists()
    with pytest.raises(UsageError, match="does not exist"):
        write_tensor(tmp_path / "missing" / "x.bin", np.zeros(3, np.float32))
    with pytest.raises(InputDataError, match="not found"):
        read_tensor(tmp_path / "nothing.bin")
