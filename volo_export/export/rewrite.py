"""Exact, export-friendly outlook attention.

`F.fold` exports as ONNX Col2Im, which TensorRT's parser rejects. Here
unfold and fold are written with Pad, strided Slice, Concat, Split, Add and
Reshape only, all channels-last, so the graph also needs no BHWC<->BCHW
transposes around the attention:

* unfold: window (i, j), offset (ki, kj) reads padded[s*i + ki, s*j + kj]:
  k*k strided slices of the padded input, stacked on a new axis.
* fold: output row u = s*m + t receives offset ki of window i when
  s*i + ki - p = u. Writing t + p = s*a + r, those are the offsets
  ki = s*q + r from window m + a - q: every output phase t is a sum of whole
  shifted tap tensors, and the phases interleave by stack + reshape. Rows and
  columns are folded one after the other (the placement is separable).
* pooling: the window average that feeds the attention logits is a Reshape +
  ReduceMean in BHWC (when the grid is a multiple of the stride) instead of
  AvgPool between two transposes.

All compute the sums of `F.unfold`/`F.fold`/`AvgPool2d`, only the order of the
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
    """Shift `x` along `dim` so that its element j lands at j + before (before < 0 drops the first
    -before elements), zero-filled, then pad or cut the end so the axis has `length`."""
    size = x.shape[dim]
    if before >= length or -before >= size:
        return x.new_zeros(*x.shape[:dim], length, *x.shape[dim + 1:])
    if before < 0:
        x = x.narrow(dim, -before, size + before)
        before = 0
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
    """Place kernel offsets `parts[ki]` (window axis `dim`) at s*i + ki - p and sum overlaps -> axis of `size`.

    Output phase t (rows u = s*m + t): with t + p = s*a + r, exactly the offsets ki = s*q + r land
    there, from window i = m + a - q. So each phase is a sum of whole shifted tensors and the phases
    interleave by stack + reshape; no scatter, and the usual s=2, k=3, p=1 case needs one shift.
    """
    kernel = len(parts)
    rows = -(-size // stride)  # m = 0 .. rows-1 in every phase
    phases = []
    for t in range(stride):
        a, r = divmod(t + padding, stride)
        terms = [_fit(parts[ki], dim, (ki - r) // stride - a, rows) for ki in range(r, kernel, stride)]
        phases.append(functools.reduce(operator.add, terms) if terms else _fit(parts[0], dim, rows, rows))
    if stride == 1:
        return phases[0]
    out = torch.stack(phases, dim=dim + 1).flatten(dim, dim + 1)  # row u = s*m + t
    return out if stride * rows == size else out.narrow(dim, 0, size)


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


def window_means(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, H/s, W/s, C): the mean of every s x s window, channels-last (Reshape +
    ReduceMean). H and W must be multiples of s (then AvgPool2d(s, s) computes the same)."""
    B, H, W, C = x.shape
    return x.reshape(B, H // stride, stride, W // stride, stride, C).mean(dim=(2, 4))


def outlook_attention_weights(attn: OutlookAttention, x: torch.Tensor) -> torch.Tensor:
    """Drop-in for `OutlookAttention.attention_weights` that pools channels-last, without the
    BHWC<->BCHW transposes around AvgPool. (B, H, W, C) -> (B, h*w, heads, k*k, k*k).

    Sizes that are not multiples of the stride (partial ceil_mode windows) keep the module's pool.
    """
    B, H, W, _ = x.shape
    s = attn.stride
    if H % s or W % s:
        return OutlookAttention.attention_weights(attn, x)
    kk = attn.kernel_size**2
    a = attn.attn(window_means(x, s)).reshape(B, -1, attn.num_heads, kk, kk)
    return (a * attn.scale).softmax(dim=-1)


@contextlib.contextmanager
def export_friendly(model: nn.Module) -> Iterator[int]:
    """Within the block, every OutlookAttention of `model` uses `outlook_aggregate` and
    `outlook_attention_weights`. Yields how many were patched."""
    patched = [m for m in model.modules() if isinstance(m, OutlookAttention)]
    for m in patched:
        m.aggregate = outlook_aggregate.__get__(m)
        m.attention_weights = outlook_attention_weights.__get__(m)
    try:
        yield len(patched)
    finally:
        for m in patched:
            del m.aggregate
            del m.attention_weights
