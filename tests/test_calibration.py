"""Calibration: data readers (folders, tensors, random), statistics, range methods, the cache."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from helpers import tiny_preprocessing
from volo_export.activations import HIST_BINS, TensorStats
from volo_export.calibration import cache
from volo_export.calibration.data import load_calibration_data, select_files
from volo_export.calibration.methods import (Range, compute_ranges, entropy_amax, percentile_amax)
from volo_export.errors import InputDataError, UsageError
from volo_export.export.metadata import graph_sha256
from volo_export.tolerances import MIN_CALIBRATION_SAMPLES

PREP = tiny_preprocessing()


def _images(folder, n, size=(40, 30), start=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    paths = []
    for i in range(start, start + n):
        p = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


# ---------------------------------------------------------------- data


def test_folder_recursive_with_junk_and_corrupt_files(tmp_path):
    _images(tmp_path / "a", 3)
    _images(tmp_path / "b" / "deep", 2, start=10)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    data = load_calibration_data(tmp_path, PREP, size=100)
    assert data.array.shape == (5, 3, 64, 64) and data.array.dtype == np.float32
    assert [p.name for p in data.skipped] == ["broken.jpg"]
    assert any("skipped 1 unreadable image(s): broken.jpg" in n for n in data.notes)
    assert any("ignored 1 non-image file(s)" in n for n in data.notes)
    assert any(f"fewer than {MIN_CALIBRATION_SAMPLES}" in n for n in data.notes)
    assert data.source == "images" and not data.random and len(data.file_hashes) == 5


def test_folder_size_limit_keeps_the_rest_for_the_gate(tmp_path):
    files = _images(tmp_path, 12)
    data = load_calibration_data(tmp_path, PREP, size=5)
    assert len(data.array) == 5 and len(data.unused) == 7
    assert set(data.files) | set(data.unused) == set(files) and not set(data.files) & set(data.unused)
    # seeded shuffle: deterministic, and not simply the first files of the sorted list
    assert data.files == load_calibration_data(tmp_path, PREP, size=5).files
    assert data.files != sorted(files)[:5]


def test_unreadable_files_are_replaced_from_the_rest(tmp_path):
    _images(tmp_path, 6)
    for name in ("x0.png", "x1.png"):
        (tmp_path / name).write_bytes(b"garbage")
    data = load_calibration_data(tmp_path, PREP, size=6)  # 8 files, 2 unreadable: 6 usable, always found
    assert len(data.array) == 6 and len(data.skipped) + len(data.unused) == 2
    every = load_calibration_data(tmp_path, PREP, size=8)
    assert len(every.array) == 6 and sorted(p.name for p in every.skipped) == ["x0.png", "x1.png"]


def test_digest_follows_file_content(tmp_path):
    paths = _images(tmp_path, 3)
    before = load_calibration_data(tmp_path, PREP).digest
    assert load_calibration_data(tmp_path, PREP).digest == before
    Image.new("RGB", (20, 20), "red").save(paths[0])
    assert load_calibration_data(tmp_path, PREP).digest != before


@pytest.mark.parametrize("setup,message", [
    (lambda d: None, "no images (jpg/jpeg/png/webp/bmp/tif/tiff) under"),
    (lambda d: (d / "a.txt").write_text("x"), "(1 other file(s) ignored)"),
    (lambda d: (d / "a.png").write_bytes(b"junk"), "none of the 1 image file(s)"),
])
def test_folder_without_usable_images_is_an_error(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(InputDataError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load_calibration_data(tmp_path, PREP)
    assert "\n" not in str(e.value)


def test_npy_and_npz_tensors(tmp_path):
    a = np.random.default_rng(0).standard_normal((7, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    data = load_calibration_data(tmp_path / "a.npy", PREP, size=5)
    assert data.source == "tensors" and np.array_equal(data.array, a[:5])
    np.save(tmp_path / "one.npy", a[0].astype(np.float64))
    assert load_calibration_data(tmp_path / "one.npy", PREP).array.shape == (1, 3, 64, 64)
    np.savez(tmp_path / "b.npz", x=a[:2], y=a[2:5])
    assert load_calibration_data(tmp_path / "b.npz", PREP).array.shape == (5, 3, 64, 64)


@pytest.mark.parametrize("array,message", [
    (np.zeros((4, 64, 64, 3), np.float32), r"expected float tensors of shape \(N, 3, 64, 64\).*got \(4, 64, 64, 3\)"),
    (np.zeros((4, 3, 32, 32), np.float32), r"got \(4, 3, 32, 32\)"),
    (np.zeros((3, 64), np.float32), r"got \(3, 64\)"),
    (np.zeros((2, 3, 64, 64), np.uint8), "expected float tensors"),
    (np.full((1, 3, 64, 64), np.nan, np.float32), "NaN or infinity"),
    (np.zeros((0, 3, 64, 64), np.float32), "holds no samples"),
])
def test_bad_tensor_files(tmp_path, array, message):
    np.save(tmp_path / "t.npy", array)
    with pytest.raises(InputDataError, match=message) as e:
        load_calibration_data(tmp_path / "t.npy", PREP)
    assert "\n" not in str(e.value)


def test_unreadable_tensor_file_and_other_paths(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not numpy")  # a text file named .npy is not "pickled data"
    with pytest.raises(InputDataError, match="bad.npy is not a .npy file"):
        load_calibration_data(tmp_path / "bad.npy", PREP)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(InputDataError, match="expected a folder of images, a .npy/.npz file or 'random'"):
        load_calibration_data(tmp_path / "x.csv", PREP)
    with pytest.raises(InputDataError, match="not found"):
        load_calibration_data(tmp_path / "missing", PREP)
    with pytest.raises(UsageError, match="--calib-size"):
        load_calibration_data("random", PREP, size=0)


def test_random_only_by_name_and_marked():
    data = load_calibration_data("random", PREP, size=10)
    assert data.random and data.array.shape == (10, 3, 64, 64)
    assert data.summary()["random"] == "true" and "RANDOM" in data.notes[0]
    assert data.digest == load_calibration_data("random", PREP, size=10).digest


def test_select_files_is_a_partition():
    files = [f"f{i}" for i in range(10)]
    chosen, rest = select_files(files, 4)
    assert len(chosen) == 4 and sorted(chosen + rest) == sorted(files)


# ---------------------------------------------------------------- statistics and methods


def test_stats_track_min_max_and_rebin_histogram():
    s = TensorStats.empty()
    s.update(np.array([0.5, -1.0, 0.25]))
    s.update(np.array([4.0, -0.1]))  # widens the histogram from 1.0 to 4.0
    assert (s.minimum, s.maximum, s.amax, s.edge) == (-1.0, 4.0, 4.0, 4.0)
    assert s.hist.sum() == 5 and len(s.hist) == HIST_BINS
    assert s.hist[-1] == 1  # |4.0| in the top bin
    again = TensorStats.from_dict(json.loads(json.dumps(s.to_dict())))
    assert np.array_equal(again.hist, s.hist) and again.amax == 4.0


def test_methods_order_on_heavy_tailed_data():
    rng = np.random.default_rng(0)
    s = TensorStats.empty()
    s.update(np.concatenate([rng.standard_normal(200_000), [40.0, -35.0]]))
    ranges = {m: compute_ranges({"t": s}, m)["t"] for m in ("minmax", "percentile", "entropy")}
    assert ranges["minmax"] == Range(-35.0, 40.0)
    assert 3.0 < ranges["percentile"].amax < 8.0  # 99.999 % of a standard normal is ~4.4
    assert 2.0 < ranges["entropy"].amax < 20.0  # clips the two outliers, keeps the bulk
    assert ranges["entropy"].lo == -ranges["entropy"].amax or ranges["entropy"].hi == ranges["entropy"].amax


def test_percentile_and_entropy_on_flat_histograms():
    hist = np.zeros(HIST_BINS, np.int64)
    hist[:100] = 10
    assert percentile_amax(hist, 2.0, 100.0) == pytest.approx(100 * 2.0 / HIST_BINS)
    assert entropy_amax(hist, 2.0) == pytest.approx(100 * 2.0 / HIST_BINS)  # fewer bins than levels: no clip
    assert entropy_amax(np.zeros(HIST_BINS, np.int64), 1.0) == 0.0


def test_unknown_method():
    with pytest.raises(UsageError, match="unknown calibration method 'kl'; choose one of: minmax, entropy, percentile"):
        compute_ranges({}, "kl")


def test_batches_fit_the_graph_by_repeating_rows():
    from volo_export.runtime.base import BatchRange

    static = BatchRange(2, 2).chunks(5)
    assert [(index.tolist(), rows) for index, rows in static] == [([0, 1], 2), ([2, 3], 2), ([4, 4], 1)]
    assert [rows for _, rows in BatchRange().chunks(5, 2)] == [2, 2, 1]
    assert [len(index) for index, _ in BatchRange(1, 4).chunks(10)] == [4, 4, 2]  # default: the largest batch
    with pytest.raises(UsageError, match="outside"):
        BatchRange(2, 2).chunks(5, 3)


# ---------------------------------------------------------------- cache


def _key(**changes) -> cache.CacheKey:
    base = cache.CacheKey(graph_sha256="g", data_sha256="d", preprocessing=dataclasses.asdict(PREP), method="minmax",
                          size=8, files=(("a.png", "h1"), ("b.png", "h2")))
    return dataclasses.replace(base, **changes)


def test_cache_hit_and_every_miss_reason(tmp_path):
    path = tmp_path / "c.json"
    ranges = {"x": Range(-1.0, 2.0), "y": Range(0.0, 3.0)}
    miss = cache.lookup(path, _key(), ["x"])
    assert not miss.hit and miss.reason == f"no calibration cache at {path}"
    cache.save(path, _key(), ranges)
    hit = cache.lookup(path, _key(), ["x", "y"])
    assert hit.hit and hit.ranges == ranges and hit.reason.startswith("reusing calibration cache")
    cases = {
        "the FP32 graph changed (other weights, model, opset or export)": _key(graph_sha256="other"),
        "preprocessing changed (crop_pct)": _key(preprocessing={**dataclasses.asdict(PREP), "crop_pct": 0.9}),
        "method changed (minmax -> entropy)": _key(method="entropy"),
        "calibration size changed (8 -> 16 samples)": _key(size=16),
        "calibration data changed (1 added, 1 modified file(s))":
            _key(data_sha256="d2", files=(("a.png", "h1"), ("b.png", "h9"), ("c.png", "h3"))),
    }
    for reason, key in cases.items():
        result = cache.lookup(path, key, ["x"])
        assert not result.hit and f"is stale: {reason}" in result.reason, result.reason
    lacking = cache.lookup(path, _key(), ["x", "z"])
    assert not lacking.hit and "lacks ranges for 1 tensor(s) (e.g. z)" in lacking.reason


def test_corrupt_or_foreign_cache_is_a_miss(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    assert "unreadable" in cache.lookup(path, _key(), []).reason
    path.write_text(json.dumps({"format": "something else"}))
    assert "not a volo-export calibration cache" in cache.lookup(path, _key(), []).reason


def test_graph_hash_ignores_metadata(tiny_fp32):
    import onnx

    other = onnx.ModelProto()
    other.CopyFrom(tiny_fp32)
    other.metadata_props.add(key="volo_export.extra", value="x")
    assert graph_sha256(other) == graph_sha256(tiny_fp32)
    other.graph.initializer[0].raw_data = bytes(len(other.graph.initializer[0].raw_data))
    assert graph_sha256(other) != graph_sha256(tiny_fp32)
