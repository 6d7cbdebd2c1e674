"""Class names shipped as package data and the lookup by a model's `labels` metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from volo_export.labels import class_names, imagenet_class_names


def test_imagenet_names():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "tench, Tinca tinca" and names[281] == "tabby, tabby cat" and names[999].startswith("toilet")
    assert len(set(names)) == 999  # "crane" is both a bird (134) and a machine (517)
    assert names[134] == names[517] == "crane"


def test_names_match_timms_synset_files():
    timm = pytest.importorskip("timm", reason="timm (reference extra) not installed")
    info = Path(timm.__file__).parent / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemmas = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines()
                  if line.strip())
    assert list(imagenet_class_names()) == [lemmas[s].strip() for s in synsets]


def test_class_names_by_labels():
    assert class_names("digits", 10) == tuple("0123456789")
    assert class_names("imagenet-1k", 1000)[1] == "goldfish, Carassius auratus"
    assert class_names("indices-37", 37) == tuple(str(i) for i in range(37))
    assert class_names("imagenet-1k", 5) == ("0", "1", "2", "3", "4")  # a fine-tuned head is not ImageNet
