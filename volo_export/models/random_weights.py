"""Random weights that make every block of a VOLO matter, for measurements without a real checkpoint.

timm-style initialisation leaves the deep blocks near identity, so a random-weight model would judge a
precision form on its stem and head only. `randomize` draws every weight at the scale a trained network
has (the tests' D1 fixture, `benchmarks/vs_modelopt.py` and `benchmarks/layer_mix.py` use it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from volo_export.models.volo import VOLO


def randomize(model: VOLO, seed: int = 0) -> VOLO:
    """Weights that make every block matter (timm-style init leaves deep blocks near identity):
    matrices ~ N(0, 1/fan_in), biases and norm offsets ~ N(0, 0.05), embeddings ~ N(0, 0.5)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("pos_embed", "cls_token"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                base = 1.0 if name.endswith("weight") else 0.0  # norm scales around 1
                p.copy_(base + torch.randn(p.shape, generator=g) * 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def save_random_checkpoint(name: str, path: Path, seed: int = 0) -> Path:
    """The registered variant `name` with `randomize`d weights, saved as a state-dict checkpoint at `path`."""
    from volo_export.models.variants import get_config
    from volo_export.models.volo import create_model

    torch.manual_seed(seed)
    torch.save(randomize(create_model(get_config(name)), seed).state_dict(), path)
    return Path(path)
