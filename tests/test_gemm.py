"""Biased Linear layers export as Gemm on a 2-D view, with the same outputs."""

from __future__ import annotations

import torch

from volo_export.export.gemm import bias_in_gemm, gemm_candidates, linear_2d
from volo_export.models.volo import Mlp


def test_candidates_are_biased_linears_not_before_gelu(tiny_model):
    chosen = gemm_candidates(tiny_model)
    fc1 = {id(m.fc1) for m in tiny_model.modules() if isinstance(m, Mlp)}
    assert chosen and all(m.bias is not None and id(m) not in fc1 for m in chosen)
    assert tiny_model.head in chosen and not any(m is tiny_model.network[2][0].attn.qkv for m in chosen)


def test_linear_2d_equals_linear_on_any_rank():
    layer = torch.nn.Linear(6, 5)
    for shape in [(4, 6), (2, 3, 6), (2, 3, 4, 6)]:
        x = torch.randn(*shape)
        assert torch.allclose(linear_2d(layer, x), layer(x), atol=1e-6, rtol=0)


def test_patched_model_is_unchanged_and_restored(tiny_model):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = tiny_model(x)
        with bias_in_gemm(tiny_model) as n:
            got = tiny_model(x)
        after = tiny_model(x)
    assert n == len(gemm_candidates(tiny_model))
    assert (got - ref).abs().max().item() < 1e-5
    assert torch.equal(after, ref) and all("forward" not in vars(m) for m in gemm_candidates(tiny_model))
