"""The VOLO variant registry: every released model is data, not a subclass.

Numbers come from the official sail-sg/volo `models/volo.py` (architecture)
and timm's `volo.py` default configs (preprocessing, crop_pct).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from volo_export.errors import InputDataError, UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos")
# What preprocessing metadata may say (SECURITY.md): the released models use sizes 224..512, crop_pct
# 0.875..1.15 and ImageNet mean/std; the bounds are wide around that but keep every step finite and small:
# the resize target's short side is at most size / MIN_CROP_PCT, every normalised value stays finite.
MAX_IMAGE_SIZE = 2048
MIN_CROP_PCT, MAX_CROP_PCT = 0.25, 4.0
MAX_ABS_MEAN = 1e3
MIN_STD, MAX_STD = 1e-4, 1e3


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model's `(3, size, size)` input.

    Resize the shorter side to `floor(size / crop_pct)` with `interpolation`,
    centre-crop `size` (zero-padding when crop_pct > 1), scale to [0, 1],
    normalise with `mean`/`std`. This is timm's eval transform.
    """

    size: int
    crop_pct: float
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        problem = preprocessing_problem(self)
        if problem:
            raise InputDataError(f"preprocessing: {problem}")

    @property
    def resize_to(self) -> int:
        return int(self.size / self.crop_pct)


def _real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _triple(values, name: str, lo: float, hi: float) -> str | None:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != 3:
        return f"{name} must be 3 numbers (R, G, B), got {values!r}"
    for channel, v in zip("RGB", values):
        if not _real(v) or not lo <= v <= hi:
            return f"{name} {channel} = {v!r} is not a number in [{lo:g}, {hi:g}]"
    return None


def preprocessing_problem(p: "Preprocessing") -> str | None:
    """Why `p` cannot preprocess images (None: it can). The one check of preprocessing metadata, run
    whenever a Preprocessing is made (an artifact's metadata, a sidecar, a served model, the registry)."""
    if not isinstance(p.size, int) or isinstance(p.size, bool) or not 1 <= p.size <= MAX_IMAGE_SIZE:
        return f"image_size {p.size!r} is not a whole number in 1..{MAX_IMAGE_SIZE}"
    if not _real(p.crop_pct) or not MIN_CROP_PCT <= p.crop_pct <= MAX_CROP_PCT:
        return f"crop_pct {p.crop_pct!r} is not a number in [{MIN_CROP_PCT}, {MAX_CROP_PCT}]"
    if p.resize_to < 1:
        return f"image_size {p.size} / crop_pct {p.crop_pct} resizes to nothing"
    if p.interpolation not in INTERPOLATIONS:
        return f"interpolation {p.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}"
    return (_triple(p.mean, "mean", -MAX_ABS_MEAN, MAX_ABS_MEAN)
            or _triple(p.std, "std", MIN_STD, MAX_STD))


@dataclass(frozen=True)
class VoloConfig:
    """Architecture of one VOLO variant (the arguments of sail-sg/volo `models/volo.py`'s VOLO class)."""

    name: str
    layers: tuple[int, int, int, int]
    embed_dims: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    mlp_ratio: float
    stem_hidden_dim: int
    preprocessing: Preprocessing
    num_classes: int = 1000
    in_chans: int = 3
    patch_size: int = 8
    outlook_kernel: int = 3
    outlook_padding: int = 1
    outlook_stride: int = 2
    num_post_blocks: int = 2
    use_aux_head: bool = True
    labels: str = "imagenet-1k"
    published_top1: float | None = None
    # Weights shipped with the package (a file in volo_export/models/weights/), loaded when
    # the user gives no checkpoint; None: no bundled weights, the model is random then.
    bundled_checkpoint: str | None = None

    @property
    def img_size(self) -> int:
        return self.preprocessing.size

    @property
    def stage1_grid(self) -> int:
        """Side of the outlooker stage's token grid (input / 8)."""
        return self.img_size // self.patch_size

    @property
    def stage2_grid(self) -> int:
        """Side of the transformer stage's token grid (input / 16); pos_embed's side."""
        return self.stage1_grid // 2

    def with_num_classes(self, num_classes: int, labels: str) -> "VoloConfig":
        return replace(self, num_classes=num_classes, labels=labels)


_ARCH = {
    "d1": dict(layers=(4, 4, 8, 2), embed_dims=(192, 384, 384, 384), num_heads=(6, 12, 12, 12),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d2": dict(layers=(6, 4, 10, 4), embed_dims=(256, 512, 512, 512), num_heads=(8, 16, 16, 16),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d3": dict(layers=(8, 8, 16, 4), embed_dims=(256, 512, 512, 512), num_heads=(8, 16, 16, 16),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d4": dict(layers=(8, 8, 16, 4), embed_dims=(384, 768, 768, 768), num_heads=(12, 16, 16, 16),
               mlp_ratio=3.0, stem_hidden_dim=64),
    "d5": dict(layers=(12, 12, 20, 4), embed_dims=(384, 768, 768, 768), num_heads=(12, 16, 16, 16),
               mlp_ratio=4.0, stem_hidden_dim=128),
}

# (arch, resolution, crop_pct, published ImageNet-1k top-1)
_RELEASES = [
    ("d1", 224, 0.96, 84.2), ("d1", 384, 1.0, 85.2),
    ("d2", 224, 0.96, 85.2), ("d2", 384, 1.0, 86.0),
    ("d3", 224, 0.96, 85.4), ("d3", 448, 1.0, 86.3),
    ("d4", 224, 0.96, 85.7), ("d4", 448, 1.15, 86.8),
    ("d5", 224, 0.96, 86.1), ("d5", 448, 1.15, 87.0), ("d5", 512, 1.15, 87.1),
]

REGISTRY: dict[str, VoloConfig] = {}


def register(config: VoloConfig) -> VoloConfig:
    REGISTRY[config.name] = config
    return config


for _arch, _size, _crop, _top1 in _RELEASES:
    register(VoloConfig(name=f"volo_{_arch}_{_size}", preprocessing=Preprocessing(_size, _crop),
                        published_top1=_top1, **_ARCH[_arch]))

# A tiny VOLO (same blocks, tiny widths) for demos and fast tests; 10 classes
# (scikit-learn's handwritten digits, upsampled to 64x64 RGB, see volo_export.datasets).
# Its bundled weights come from scripts/train_tiny_digits.py.
register(VoloConfig(name="volo_tiny_digits", layers=(1, 1, 1, 1), embed_dims=(32, 64, 64, 64),
                    num_heads=(1, 2, 2, 2), mlp_ratio=2.0, stem_hidden_dim=16,
                    preprocessing=Preprocessing(64, 1.0), num_classes=10, labels="digits",
                    bundled_checkpoint="volo_tiny_digits.safetensors"))


def model_names() -> list[str]:
    return sorted(REGISTRY)


def get_config(name: str) -> VoloConfig:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}") from None
