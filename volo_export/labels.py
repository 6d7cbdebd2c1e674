"""Class names for a model's `labels` metadata: ImageNet-1k names, digits, or plain indices.

`volo_export/data/imagenet_classes.txt` holds the 1000 ImageNet-1k class names in
class-index order, one per line (WordNet lemmas, e.g. "tabby, tabby cat"). It was
derived from the two files timm ships in `timm/data/_info/`: `imagenet_synsets.txt`
(the 1000 synsets in index order) and `imagenet_synset_to_lemma.txt` (synset ->
lemma); tests/test_labels.py re-derives it when timm is installed.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from volo_export.errors import InputDataError

IMAGENET_LABELS = "imagenet-1k"
DIGITS_LABELS = "digits"


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index i = class i."""
    text = files("volo_export").joinpath("data", "imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise InputDataError(f"volo_export/data/imagenet_classes.txt has {len(names)} names, expected 1000 "
                             "(broken installation)")
    return names


def class_names(labels: str, num_classes: int) -> tuple[str, ...]:
    """One display name per class for a model whose metadata says `labels`.

    "imagenet-1k" with 1000 classes -> ImageNet names; "digits" -> '0'..'9';
    anything else (e.g. a fine-tuned head, "indices-37") -> the class indices as text.
    """
    if labels == IMAGENET_LABELS and num_classes == 1000:
        return imagenet_class_names()
    if labels == DIGITS_LABELS and num_classes == 10:
        return tuple(str(i) for i in range(10))
    return tuple(str(i) for i in range(num_classes))
