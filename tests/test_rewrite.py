"""The export-friendly outlook attention computes exactly what F.unfold / F.fold compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from volo_export.export.rewrite import (export_friendly, fold_windows, num_windows, outlook_attention_weights,
                                         unfold_windows, window_means)
from volo_export.models.volo import OutlookAttention

CASES = [  # (H, W, kernel, stride, padding)
    (28, 28, 3, 2, 1), (27, 27, 3, 2, 1), (7, 10, 3, 2, 1), (9, 6, 3, 1, 1), (8, 8, 3, 1, 1),
    (5, 5, 3, 2, 0), (6, 5, 2, 2, 0), (11, 7, 5, 2, 2), (12, 9, 3, 3, 1), (1, 1, 3, 2, 1),
]


def _reference_unfold(x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """(B, H, W, C) -> (B, h, w, 1, k*k, C) via F.unfold."""
    B, H, W, C = x.shape
    h, w = num_windows(H, k, s, p), num_windows(W, k, s, p)
    cols = F.unfold(x.permute(0, 3, 1, 2), k, padding=p, stride=s)  # B, C*kk, hw
    return cols.reshape(B, C, k * k, h, w).permute(0, 3, 4, 2, 1).unsqueeze(3)


@pytest.mark.parametrize("H,W,k,s,p", CASES)
def test_unfold_matches_torch(H, W, k, s, p):
    x = torch.randn(2, H, W, 5, generator=torch.Generator().manual_seed(H * W))
    got = unfold_windows(x.unsqueeze(3), k, s, p)
    assert torch.equal(got, _reference_unfold(x, k, s, p))  # pure data movement: bit-exact


@pytest.mark.parametrize("H,W,k,s,p", CASES)
def test_fold_matches_torch(H, W, k, s, p):
    h, w = num_windows(H, k, s, p), num_windows(W, k, s, p)
    y = torch.randn(2, h, w, 1, k * k, 5, generator=torch.Generator().manual_seed(h + w))
    cols = y.squeeze(3).permute(0, 4, 3, 1, 2).reshape(2, 5 * k * k, h * w)
    expected = F.fold(cols, (H, W), k, padding=p, stride=s).permute(0, 2, 3, 1)
    got = fold_windows(y, (H, W), k, s, p).squeeze(3)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-5  # same sums, other order of additions


@pytest.mark.parametrize("H,W,stride", [(14, 14, 2), (13, 9, 2), (10, 7, 1)])
def test_attention_module_identical_with_rewrite(H, W, stride):
    torch.manual_seed(0)
    attn = OutlookAttention(dim=24, num_heads=3, stride=stride).eval()
    x = torch.randn(2, H, W, 24)
    with torch.no_grad():
        ref = attn(x)
        with export_friendly(attn) as patched:
            got = attn(x)
        back = attn(x)
    assert patched == 1
    assert (got - ref).abs().max().item() < 1e-5
    assert torch.equal(back, ref)  # the patch is gone after the block


def test_rewrite_leaves_state_dict_unchanged(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with export_friendly(tiny_model):
        during = tiny_model.state_dict()
    assert during.keys() == before.keys()
    assert all(torch.equal(during[k], before[k]) for k in before)


@pytest.mark.parametrize("H,W,stride", [(28, 28, 2), (14, 10, 2), (9, 9, 3), (6, 6, 1), (13, 9, 2)])
def test_channels_last_pooling_matches_module(H, W, stride):
    torch.manual_seed(1)
    attn = OutlookAttention(dim=24, num_heads=3, stride=stride).eval()
    x = torch.randn(2, H, W, 24)
    with torch.no_grad():
        ref = attn.attention_weights(x)
        got = outlook_attention_weights(attn, x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-6  # softmax weights in [0, 1]; only summation order differs


def test_window_means_is_avg_pool():
    x = torch.randn(2, 8, 12, 5)
    ref = F.avg_pool2d(x.permute(0, 3, 1, 2), 2, 2, ceil_mode=True).permute(0, 2, 3, 1)
    assert (window_means(x, 2) - ref).abs().max().item() < 1e-6


def test_exported_tiny_model_matches_eager_with_every_export_time_rewrite(tiny_model):
    import numpy as np

    from volo_export.export.to_onnx import ExportOptions, op_histogram, torch_to_onnx
    from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner

    proto = torch_to_onnx(tiny_model, ExportOptions())
    ops = op_histogram(proto)
    assert ops["Col2Im"] == 0 and ops["AveragePool"] == 0 and ops["ConvTranspose"] == 0
    assert ops["ReduceMean"] == tiny_model.config.layers[0]  # one channels-last pool per outlooker
    from volo_export.export.gemm import gemm_candidates

    assert ops["Gemm"] == len(gemm_candidates(tiny_model))  # biases folded into the GEMM
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64), dtype=np.float32)
    got = OnnxRuntimeRunner(proto.SerializeToString())(x)
    with torch.no_grad():
        ref = tiny_model(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
