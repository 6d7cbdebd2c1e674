"""Exact, export-friendly outlook attention.

`F.fold` exports as ONNX Col2Im, which TensorRT's parser rejects. Here
unfold and fold are written with Pad, strided Slice, Concat, Split, Add and
Reshape only, all channels-last, so the graph also needs no BHWC<->BCHW
transposes around the attention:

* unfold: window (i, j), offset (ki, kj) reads padded[s*i + ki, s*j + kj]:
  k*k strided slices of the padded input, stacked on a new axis.
* fold: offset ki of window i lands on row s*i + ki - p. Writing
  ki = s*q + r, that is coarse row (i + q), phase r: each phase is a sum of
  shifted copies and the phases interleave by stack + reshape. Rows and
  columns are folded one after the other (the placement is separable).

Both compute exactly the sums of `F.unfold`/`F.fold`, only the order of the
additions differs (max difference ~1e-6, see tests). `export_friendly(model)`
switches a model's outlook attention to this form for the duration of an
export; parameters and the state dict are untouched.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from volo_export.models.volo import OutlookAttention


def num_windows(size: int, kernel: int, stride: int, padding: int) -> int:
    """Windows along one axis, as F.unfold counts them."""
    return (size + 2 * padding - kernel) // stride + 1


def _fit(x: torch.Tensor, dim: int, before: int, length: int) -> torch.Tensor:
    """Shift `x` by `before` zeros along `dim`, then pad or cut the end so the axis has `length`."""
    if before >= length:
        return x.new_zeros(*x.shape[:dim], length, *x.shape[dim + 1:])
    after = length - before - x.shape[dim]
    if after < 0:
        x = x.narrow(dim, 0, x.shape[dim] + after)
        after = 0
    pads = [0, 0] * (x.ndim - 1 - dim) + [before, after]
    return F.pad(x, pads) if before or after else x


def unfold_windows(x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """(B, H, W, G, D) -> (B, h, w, G, k*k, D): every window's k*k neighbours, offsets row-major."""
    _, H, W = x.shape[:3]
    h, w = num_windows(H, kernel, stride, padding), num_windows(W, kernel, stride, padding)
    xp = F.pad(x, [0, 0, 0, 0, padding, padding, padding, padding])
    span_h, span_w = stride * (h - 1) + 1, stride * (w - 1) + 1
    taps = [xp[:, ki:ki + span_h:stride, kj:kj + span_w:stride] for ki in range(kernel) for kj in range(kernel)]
    return torch.stack(taps, dim=4)


def _fold_axis(parts: list[torch.Tensor], dim: int, stride: int, padding: int, size: int) -> torch.Tensor:
    """Place kernel offsets `parts[ki]` (window axis `dim`) at s*i + ki - p and sum overlaps -> axis of `size`."""
    kernel = len(parts)
    coarse = -(-(size + padding) // stride)
    phases = []
    for r in range(stride):
        shifted = [_fit(parts[ki], dim, ki // stride, coarse) for ki in range(r, kernel, stride)]
        if shifted:
            phases.append(functools.reduce(operator.add, shifted))
        else:
            phases.append(torch.zeros_like(_fit(parts[0], dim, 0, coarse)))
    out = torch.stack(phases, dim=dim + 1).flatten(dim, dim + 1)  # row u = s*m + r
    return out.narrow(dim, padding, size)


def fold_windows(y: torch.Tensor, size: tuple[int, int], kernel: int, stride: int, padding: int) -> torch.Tensor:
    """(B, h, w, G, k*k, D) -> (B, H, W, G, D): scatter-add every window back, like F.fold."""
    taps = y.unbind(dim=4)
    rows = [
        _fold_axis([taps[ki * kernel + kj] for ki in range(kernel)], 1, stride, padding, size[0])
        for kj in range(kernel)
    ]
    return _fold_axis(rows, 2, stride, padding, size[1])


def outlook_aggregate(attn: OutlookAttention, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Drop-in for `OutlookAttention.aggregate` without unfold/fold ops. v (B, H, W, C) -> (B, H, W, C)."""
    B, H, W, C = v.shape
    nh, k = attn.num_heads, attn.kernel_size
    cols = unfold_windows(v.reshape(B, H, W, nh, C // nh), k, attn.stride, attn.padding)  # B, h, w, nh, kk, C/nh
    h, w = cols.shape[1:3]
    out = a @ cols.reshape(B, h * w, nh, k * k, C // nh)  # B, hw, nh, kk, C/nh
    out = fold_windows(out.reshape(B, h, w, nh, k * k, C // nh), (H, W), k, attn.stride, attn.padding)
    return out.reshape(B, H, W, C)


@contextlib.contextmanager
def export_friendly(model: nn.Module) -> Iterator[int]:
    """Within the block, every OutlookAttention of `model` uses `outlook_aggregate`. Yields how many were patched."""
    patched = [m for m in model.modules() if isinstance(m, OutlookAttention)]
    for m in patched:
        m.aggregate = outlook_aggregate.__get__(m)
    try:
        yield len(patched)
    finally:
        for m in patched:
            del m.aggregate
