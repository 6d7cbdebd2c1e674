"""plugins/: the OutlookAggregate kernel's per-element maths (outlookAggregateMath.h, run on
the host by outlook_aggregate_reference) equals VOLO's unfold -> weighted sum -> fold in
PyTorch. The CUDA kernel and the TensorRT plugin need a GPU and TensorRT and are not built here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import build_cmake_project
from volo_export.models.volo import OutlookAttention
from volo_export.tensorfile import read_tensor, write_tensor

SOURCE = Path(__file__).resolve().parents[1] / "plugins"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    build = build_cmake_project(SOURCE, tmp_path_factory.mktemp("plugins_build"), "-DVOLO_PLUGINS_WITH_TENSORRT=OFF",
                                target="outlook_aggregate_reference")
    return build / "outlook_aggregate_reference"


# (B, H, W, C, heads, kernel, padding, stride): VOLO's outlooker (k3 p1 s2) at even and odd
# sizes, a stride-1 variant, and a larger kernel.
CASES = [(2, 8, 8, 12, 3, 3, 1, 2), (1, 7, 5, 8, 2, 3, 1, 2), (1, 6, 6, 4, 1, 3, 1, 1), (1, 9, 9, 6, 2, 5, 2, 2)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "B{}_H{}_W{}_C{}_h{}_k{}p{}s{}".format(*c))
def test_host_reference_matches_pytorch_unfold_fold(reference, tmp_path, case):
    B, H, W, C, heads, k, p, s = case
    attn = OutlookAttention(C, heads, kernel_size=k, padding=p, stride=s)
    gh, gw = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    g = torch.Generator().manual_seed(sum(case))
    v = torch.randn(B, H, W, C, generator=g)
    a = torch.randn(B, gh * gw, heads, k * k, k * k, generator=g).softmax(-1)
    with torch.no_grad():
        expected = attn.aggregate(v, a).numpy()
    write_tensor(tmp_path / "v.bin", v.numpy())
    write_tensor(tmp_path / "a.bin", a.numpy())
    subprocess.run([str(reference), tmp_path / "v.bin", tmp_path / "a.bin", tmp_path / "out.bin", "--num-heads",
                    str(heads), "--kernel-size", str(k), "--padding", str(p), "--stride", str(s)], check=True)
    got = read_tensor(tmp_path / "out.bin")
    assert got.shape == expected.shape == (B, H, W, C)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    assert np.abs(expected).max() > 0.1  # a real signal, not zeros on both sides


def test_host_reference_rejects_mismatched_attention(reference, tmp_path):
    write_tensor(tmp_path / "v.bin", np.zeros((1, 8, 8, 12), np.float32))
    write_tensor(tmp_path / "a.bin", np.zeros((1, 15, 3, 9, 9), np.float32))
    result = subprocess.run([str(reference), tmp_path / "v.bin", tmp_path / "a.bin", tmp_path / "out.bin",
                             "--num-heads", "3"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == "error: attn must be (1, 16, 3, 9, 9) for v (1, 8, 8, 12)\n"
    assert not (tmp_path / "out.bin").exists()
