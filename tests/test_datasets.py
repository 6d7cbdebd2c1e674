"""The digits dataset: a fixed, stratified, disjoint split into 64x64 RGB images, and class folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from volo_export.datasets import (SPLITS, digit_image, labels_from_folder, load_digits_split, split_indices,
                                  write_image_folder)
from volo_export.errors import InputDataError
from volo_export.preprocess import find_images, load_image

SIZES = {"train": 1078, "calib": 269, "test": 450}  # 60 / 15 / 25 % of each class of 1797


@pytest.fixture(scope="module")
def splits():
    return {name: load_digits_split(name) for name in SPLITS}


def test_split_sizes_disjoint_and_complete(splits):
    assert {name: len(s) for name, s in splits.items()} == SIZES
    rows = [set(s.indices.tolist()) for s in splits.values()]
    assert sum(len(r) for r in rows) == 1797
    assert set.union(*rows) == set(range(1797))
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])


def test_split_is_stratified(splits):
    total = np.bincount(np.concatenate([s.labels for s in splits.values()]), minlength=10)
    for name, fraction in (("train", 0.60), ("calib", 0.15), ("test", 0.25)):
        counts = np.bincount(splits[name].labels, minlength=10)
        assert np.abs(counts - total * fraction).max() <= 1.0, name


def test_split_is_deterministic(splits):
    again = load_digits_split("test")
    assert np.array_equal(again.indices, splits["test"].indices)
    assert np.array_equal(again.labels, splits["test"].labels)
    assert np.array_equal(np.asarray(again.images[7]), np.asarray(splits["test"].images[7]))
    labels = np.repeat(np.arange(10), 30)
    assert all(np.array_equal(a, b) for a, b in zip(split_indices(labels).values(), split_indices(labels).values()))
    assert not np.array_equal(split_indices(labels, seed=1)["test"], split_indices(labels)["test"])


def test_images_are_64px_rgb_with_full_range(splits):
    data = splits["calib"]
    assert all(img.size == (64, 64) and img.mode == "RGB" for img in data.images)
    arr = np.asarray(data.images[0])
    assert arr.dtype == np.uint8 and arr.shape == (64, 64, 3)
    assert np.array_equal(arr[..., 0], arr[..., 2])  # grey digits
    assert arr.min() == 0 and arr.max() >= 240  # 0..16 scaled to 0..255
    assert data.labels.dtype == np.int64
    assert np.asarray(digit_image(np.full((8, 8), 16.0))).min() == 255
    assert np.asarray(digit_image(np.zeros((8, 8)))).max() == 0


def test_preprocessed_shape_and_normalisation(splits, tiny_config):
    x = splits["calib"].preprocessed(tiny_config.preprocessing)
    assert x.shape == (269, 3, 64, 64) and x.dtype == np.float32
    background = (0 - np.asarray(tiny_config.preprocessing.mean)) / np.asarray(tiny_config.preprocessing.std)
    assert np.allclose(x[0, :, 0, 0], background, atol=1e-6)  # corners are black


def test_unknown_split_is_one_line_error():
    with pytest.raises(InputDataError, match="unknown digits split 'val'; choose one of: train, calib, test") as e:
        load_digits_split("val")
    assert "\n" not in str(e.value)


def test_write_image_folder_round_trip(tmp_path, splits):
    root = tmp_path / "digits_calib"
    assert write_image_folder("calib", root) == 269
    assert sorted(p.name for p in root.iterdir()) == [str(c) for c in range(10)]
    files = find_images(root)
    assert len(files) == 269
    labels = labels_from_folder(files, root)
    by_index = dict(zip(splits["calib"].indices.tolist(), splits["calib"].labels.tolist()))
    assert labels.dtype == np.int64
    assert labels.tolist() == [by_index[int(p.stem)] for p in files]
    first = files[0]
    original = splits["calib"].images[splits["calib"].indices.tolist().index(int(first.stem))]
    assert np.array_equal(np.asarray(load_image(first)), np.asarray(original))  # PNG is lossless


def test_labels_from_folder_needs_class_index_folders(tmp_path):
    root = tmp_path
    assert labels_from_folder([root / "3" / "a.png", root / "12" / "sub" / "b.png"], root).tolist() == [3, 12]
    assert labels_from_folder([root / "3" / "a.png", root / "b.png"], root) is None  # file at the root
    assert labels_from_folder([root / "n01440364" / "a.jpg"], root) is None  # ImageNet synset folders
    assert labels_from_folder([root / "-1" / "a.png"], root) is None
    assert labels_from_folder([Path("/elsewhere/3/a.png")], root) is None
    assert labels_from_folder([], root) is None
