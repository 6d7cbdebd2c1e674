"""Linear layers whose bias ONNX Runtime folds into the GEMM.

The exporter writes `nn.Linear` on a (B, N, C) or (B, H, W, C) input as MatMul + Add, and ONNX
Runtime fuses MatMul + Add into one Gemm only for 2-D inputs, so every bias costs a separate pass
over the layer's output. `bias_in_gemm(model)` makes those layers run on the 2-D view (B*N, C)
(a free Reshape), which exports as ONNX Gemm with its bias, then reshapes back. Same maths,
standard ops (TensorRT parses Gemm).

Layers followed by GELU (`Mlp.fc1`) are left alone: ONNX Runtime already fuses their bias into the
activation (BiasGelu), which a Gemm would prevent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from volo_export.models.volo import Mlp


def linear_2d(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """Drop-in for `nn.Linear.forward`: (..., in) -> (..., out) through a 2-D (rows, in) product."""
    return F.linear(x.reshape(-1, x.shape[-1]), layer.weight, layer.bias).reshape(*x.shape[:-1], -1)


def gemm_candidates(model: nn.Module) -> list[nn.Linear]:
    """Linear layers with a bias that do not feed a GELU."""
    before_gelu = {id(m.fc1) for m in model.modules() if isinstance(m, Mlp)}
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.bias is not None and id(m) not in before_gelu]


@contextlib.contextmanager
def bias_in_gemm(model: nn.Module) -> Iterator[int]:
    """Within the block, the `gemm_candidates` of `model` use `linear_2d`. Yields how many were patched."""
    patched = gemm_candidates(model)
    for m in patched:
        m.forward = linear_2d.__get__(m)
    try:
        yield len(patched)
    finally:
        for m in patched:
            del m.forward
