"""Splitting fused qkv/kv projections of a TensorRT Q/DQ graph (passes/projections.py): which MatMuls
match (the pattern `passes.heads` splits in a float graph), that the split graph computes exactly what the
fused one did on ONNX Runtime (the INT8 gate's 'basic' level, TensorRT's arithmetic), and that the tensorrt
INT8 target applies it and records it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from volo_export.activations import collect_stats
from volo_export.calibration.methods import compute_ranges
from volo_export.precision.int8 import find_targets, quantize_qdq
from volo_export.passes.projections import FusedProjection, fused_projection, fused_projections, split_projections
from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

# volo_tiny_digits: 3 transformer blocks (qkv -> q, k, v) and 2 class-attention blocks (kv -> k, v)
SPLIT = ["node_linear_5", "node_linear_9", "node_linear_13", "node_linear_17", "node_linear_22"]


@pytest.fixture(scope="module")
def samples():
    return np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def ranges(tiny_fp32, samples):
    """Ranges of every tensor either INT8 target reads (minmax on noise: exactness does not need real images)."""
    from volo_export.precision.forms import qdq_calibration_tensors

    tensors = qdq_calibration_tensors(tiny_fp32)
    return compute_ranges(collect_stats(tiny_fp32, tensors, samples, histogram=False), "minmax")


@pytest.fixture(scope="module")
def tiny_qdq(tiny_fp32, ranges):
    return quantize_qdq(tiny_fp32, find_targets(tiny_fp32), ranges)


def _run(model, x):
    settings = SessionSettings(providers=CPU_ONLY, optimization="basic")
    return OnnxRuntimeRunner(model.SerializeToString(), settings)(x)


def test_split_is_exact_and_only_touches_fused_projections(tiny_qdq):
    split = onnx.ModelProto()
    split.CopyFrom(tiny_qdq)
    assert [f.node.name for f in fused_projections(split)] == SPLIT
    assert [f.parts for f in fused_projections(split)] == [3, 3, 3, 2, 2]
    origins: dict[str, str] = {}
    assert split_projections(split, origins) == len(SPLIT)
    assert list(dict.fromkeys(origins.values())) == SPLIT and len(origins) == 3 * 3 + 2 * 2
    onnx.checker.check_model(split, full_check=True)
    matmuls = [n for n in split.graph.node if n.op_type == "MatMul" and n.name.startswith("node_linear_5")]
    assert [n.name for n in matmuls] == ["node_linear_5_part0", "node_linear_5_part1", "node_linear_5_part2"]
    assert len({n.input[0] for n in matmuls}) == 1  # one shared activation Q/DQ
    concat = next(n for n in split.graph.node if n.name == "node_linear_5_concat")
    assert concat.output[0] == "linear_5" and list(concat.input) == [n.output[0] for n in matmuls]
    before = {t.name for t in tiny_qdq.graph.initializer}
    after = {t.name for t in split.graph.initializer}
    fused = next(n for n in tiny_qdq.graph.node if n.name == "node_linear_5")
    weight = fused.input[1].removesuffix("_dequantized")  # the exporter's name for the [64, 192] weight
    assert f"{weight}_quantized" in before - after  # the fused weight and its DQ are gone
    assert not [n for n in split.graph.node if n.name == f"{weight}_DequantizeLinear"]
    x = np.random.default_rng(1).standard_normal((4, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(_run(split, x), _run(tiny_qdq, x))  # bitwise
    assert split_projections(split) == 0  # nothing left to split


def test_refusal_reasons(tiny_qdq, tiny_fp32):
    from volo_export.passes.graph import GraphIndex

    index = GraphIndex(tiny_qdq)
    by_name = {n.name: n for n in tiny_qdq.graph.node}
    found = fused_projection(by_name["node_linear_5"], index)
    assert isinstance(found, FusedProjection) and found.parts == 3 and found.dequantize is not None
    assert found.weight.dtype == np.int8 and found.columns(1) == slice(64, 128)
    assert fused_projection(by_name["node_linear_6"], index) == "not a MatMul"  # the biased proj Gemm
    # a quantised MatMul that is no fused projection (its output is not reshaped into parts)
    assert fused_projection(by_name["node_MatMul_473"], index) == "output does not go to one Reshape"
    # the same pattern in the float graph (what passes.heads splits); split_projections leaves it alone
    fp32_linear_5 = next(n for n in tiny_fp32.graph.node if n.name == "node_linear_5")
    floating = fused_projection(fp32_linear_5, GraphIndex(tiny_fp32))
    assert isinstance(floating, FusedProjection) and floating.dequantize is None and floating.weight.shape == (64, 192)
    untouched = onnx.ModelProto()
    untouched.CopyFrom(tiny_fp32)
    assert split_projections(untouched) == 0 and untouched == tiny_fp32


def test_tensorrt_int8_target_splits_and_records_it(tiny_fp32, ranges, samples):
    from volo_export.precision.form import Prepared
    from volo_export.precision.forms import form_for
    from volo_export.precision.qdq_form import QdqState

    prepared = Prepared(QdqState(find_targets(tiny_fp32), ranges, [], samples))
    built = form_for("int8", "tensorrt").build(tiny_fp32, prepared, keep=["node_linear_9"])
    assert built.extra["quantized_nodes"] == "33"  # FP32 nodes, as --exclude-nodes and the fallback name them
    assert json.loads(built.extra["split_projections"]) == [n for n in SPLIT if n != "node_linear_9"]
    assert "split_projections" not in form_for("int8", "cpu").build(tiny_fp32, prepared).extra
