"""Exact graph passes (volo_export/passes): each rewrites what it should, and ONNX Runtime computes the same
numbers before and after."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from volo_export.passes.casts import drop_noop_casts
from volo_export.passes.graph import GraphIndex, tensor_shapes
from volo_export.passes.heads import split_heads
from volo_export.passes.layernorm import layernorm_on_tokens
from volo_export.passes.matmul import gemm_as_matmul
from volo_export.passes.pooling import window_mean_as_avgpool
from volo_export.passes.qdq import hoist_qdq
from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings


def _copy(model):
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _run(model, x, optimization="disable"):
    settings = SessionSettings(providers=CPU_ONLY, optimization=optimization)
    return OnnxRuntimeRunner(model.SerializeToString(), settings)(x)


@pytest.fixture(scope="module")
def x(tiny_trained):
    size = tiny_trained.config.img_size
    return np.random.default_rng(0).standard_normal((3, 3, size, size)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(tiny_fp32, x):
    return _run(tiny_fp32, x)


def test_window_means_become_average_pools(tiny_fp32, x, reference):
    model = _copy(tiny_fp32)
    before = Counter(n.op_type for n in model.graph.node)
    changed = window_mean_as_avgpool(model)
    after = Counter(n.op_type for n in model.graph.node)
    onnx.checker.check_model(model, full_check=True)
    assert changed == before["ReduceMean"] == after["AveragePool"] > 0 and after["ReduceMean"] == 0
    assert after["Transpose"] == before["Transpose"] + 2 * changed
    np.testing.assert_allclose(_run(model, x), reference, rtol=0, atol=1e-6)
    assert window_mean_as_avgpool(model) == 0  # nothing left to rewrite


def test_layernorms_of_4d_tensors_run_on_3d_views(tiny_fp32, x, reference):
    model = _copy(tiny_fp32)
    ranks = {n.name: len(tensor_shapes(model)[n.input[0]]) for n in model.graph.node
             if n.op_type == "LayerNormalization"}
    changed = layernorm_on_tokens(model)
    onnx.checker.check_model(model, full_check=True)
    assert changed == sum(r == 4 for r in ranks.values()) > 0
    shapes = tensor_shapes(model)
    assert all(len(shapes[n.input[0]]) == 3 for n in model.graph.node if n.op_type == "LayerNormalization")
    np.testing.assert_allclose(_run(model, x), reference, rtol=0, atol=1e-6)
    assert layernorm_on_tokens(model) == 0


def test_gemms_on_flattened_views_become_nd_matmuls(tiny_fp32, x, reference):
    model = _copy(tiny_fp32)
    gemms = sum(n.op_type == "Gemm" for n in model.graph.node)
    aliases: dict[str, str] = {}
    changed = gemm_as_matmul(model, aliases)
    onnx.checker.check_model(model, full_check=True)
    left = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert changed > 0 and len(left) == gemms - changed and len(aliases) == changed
    index, shapes = GraphIndex(model), tensor_shapes(model)
    for view, old in aliases.items():
        assert old not in index.consumers  # the 2-D view is gone; its values live on under the new name
        assert len(shapes[view]) >= 3
    np.testing.assert_allclose(_run(model, x), reference, rtol=0, atol=1e-6)
    assert gemm_as_matmul(model) == 0


def test_named_gemms_become_matmuls_on_3d_views(tiny_fp32, x, reference):
    model = _copy(tiny_fp32)
    gemms = [n.name for n in model.graph.node if n.op_type == "Gemm"]
    aliases: dict[str, str] = {}
    changed = gemm_as_matmul(model, aliases, view="3d", nodes=gemms[1:])  # the first stays a Gemm
    onnx.checker.check_model(model, full_check=True)
    by_name = {n.name: n for n in model.graph.node}
    assert changed == len(gemms) - 1 > 0 and len(aliases) == changed and by_name[gemms[0]].op_type == "Gemm"
    index, shapes = GraphIndex(model), tensor_shapes(model)
    for name in gemms[1:]:
        matmul = by_name[name]  # Unsqueeze -> MatMul (the Gemm's name, a [K, N] weight) -> Add -> Squeeze
        view, weight = matmul.input[0], index.constant(matmul.input[1])
        assert matmul.op_type == "MatMul" and aliases[view] == index.producer[view].input[0]
        assert shapes[view][0] == 1 and len(shapes[view]) == 3 and weight.shape[0] == shapes[view][-1]
        assert index.only_consumer(matmul.output[0]).op_type == "Add"
    np.testing.assert_allclose(_run(model, x), reference, rtol=0, atol=1e-6)
    assert gemm_as_matmul(model, view="3d") == 1  # the one left
    with pytest.raises(ValueError, match="view must be one of"):
        gemm_as_matmul(model, view="2d")


def test_fused_projections_split_into_one_matmul_per_part(tiny_fp32, x, reference):
    model = _copy(tiny_fp32)
    before = Counter(n.op_type for n in model.graph.node)
    origins: dict[str, str] = {}
    changed = split_heads(model, origins)
    onnx.checker.check_model(model, full_check=True)
    after = Counter(n.op_type for n in model.graph.node)
    fused = set(origins.values())
    # the tiny model: qkv of every transformer block (3 parts), kv of every class-attention block (2)
    assert changed == len(fused) > 0 and len(origins) == after["MatMul"] - before["MatMul"] + changed
    assert after["Slice"] == before["Slice"] - len(origins) and after["Squeeze"] == before["Squeeze"] - len(origins)
    index, shapes = GraphIndex(model), tensor_shapes(model)
    for part, whole in origins.items():
        assert whole not in {n.name for n in model.graph.node}
        heads = index.only_consumer(f"{part}_output")  # Reshape (B, N, heads, d) -> Transpose (B, heads, N, d)
        transpose = index.only_consumer(heads.output[0])
        assert heads.op_type == "Reshape" and transpose.op_type == "Transpose" and len(shapes[transpose.output[0]]) == 4
    np.testing.assert_array_equal(_run(model, x), reference)  # the same dot products: the same numbers
    assert split_heads(model) == 0


def test_casts_of_weights_to_their_own_type_go(tiny_fp32, x, reference):
    from onnx import TensorProto, helper

    model = _copy(tiny_fp32)
    index = GraphIndex(model)
    first, second = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in index.initializers][:2]
    casts = [helper.make_node("Cast", [first.input[1]], ["noop"], name="noop", to=TensorProto.FLOAT),  # goes
             helper.make_node("Cast", [second.input[1]], ["half"], name="to_half", to=TensorProto.FLOAT16),  # stays
             helper.make_node("Cast", ["half"], ["back"], name="to_float", to=TensorProto.FLOAT)]  # stays: computed
    weight, name = first.input[1], first.name
    first.input[1], second.input[1] = "noop", "back"
    for i, cast in enumerate(casts):
        model.graph.node.insert(i, cast)
    with_casts = _run(model, x)
    assert drop_noop_casts(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.name for n in model.graph.node if n.op_type == "Cast"] == ["to_half", "to_float"]
    assert next(n for n in model.graph.node if n.name == name).input[1] == weight
    np.testing.assert_array_equal(_run(model, x), with_casts)
    assert np.abs(with_casts - reference).max() > 0  # the float16 round trip of one weight is really there
    assert drop_noop_casts(model) == 0


def test_qdq_pairs_climb_over_shape_ops_exactly(tiny_fp32, x):
    from volo_export.precision.int8 import find_targets, quantize_qdq
    from volo_export.calibration.methods import Range

    targets = find_targets(tiny_fp32)
    ranges = {t: Range(-4.0, 4.0) for q in targets for t in q.activations}
    quantized = quantize_qdq(tiny_fp32, targets, ranges)
    moved = _copy(quantized)
    count = hoist_qdq(moved)
    onnx.checker.check_model(moved, full_check=True)
    assert count > 0
    index = GraphIndex(moved)
    from volo_export.passes.qdq import SAFE_PRODUCERS, SHAPE_OPS

    for q in (n for n in moved.graph.node if n.op_type == "QuantizeLinear"):
        producer = index.producer.get(q.input[0])
        if producer is not None and producer.op_type in SHAPE_OPS:  # what stayed below a shape op: not a safe origin
            origin = producer
            while origin is not None and origin.op_type in SHAPE_OPS:
                origin = index.producer.get(origin.input[0])
            assert origin is None or origin.op_type not in SAFE_PRODUCERS or len(index.consumers[q.input[0]]) > 1 \
                or len(index.consumers[producer.input[0]]) > 1
    # Per-tensor quantisation commutes with moving elements: the very same numbers.
    np.testing.assert_array_equal(_run(moved, x), _run(quantized, x))


def test_qdq_pairs_stay_below_residual_adds(tiny_fp32):
    """OpenVINO computed Add -> FakeQuantize -> Transpose -> int8 Conv wrong: Add is not a safe producer."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Transpose", ["s"], ["t"], perm=[1, 0]),
             helper.make_node("QuantizeLinear", ["t", "sc", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "sc", "zp"], ["d"]),
             helper.make_node("Relu", ["d"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])],
                              [numpy_helper.from_array(np.array(0.1, np.float32), "sc"),
                               numpy_helper.from_array(np.array(0, np.int8), "zp")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    assert hoist_qdq(_copy(model)) == 0
    assert hoist_qdq(model, producers=("Add",)) == 1
