"""The builder's DETAILED layer table -> layers, precisions and the per-node report. The lines are real
TensorRT-RTX 1.7.1 output for the tiny INT8 graph before the qkv split (trimmed to the fields that matter)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from volo_export.trt.layers import (NO_MATH, Layer, LayerReport, Tensor, WeightedNode, layer_report,
                                    parse_layer_table, weighted_nodes)


def _t(name, dims, dtype, fmt="(Linear) Row major linear format"):
    return (f"{{ Name: {name}, Dimensions: [{','.join(map(str, dims))}], Strides: [1], StrideOrder: [0], "
            f"Datatype: {dtype}, Format: {fmt} }}")


def _line(name, kind, inputs=(), constants=(), outputs=(), nodes=()):
    return (f"Name: {name}, LayerType: {kind}, Inputs: [ {', '.join(inputs)}], Constants: [ {', '.join(constants)}], "
            f"Outputs: [ {', '.join(outputs)}], TacticName: __myelin_CASK_STUB, StreamId: 0, Metadata: "
            + "".join(f"[ONNX Layer: {n}]" for n in nodes))


TABLE = "\n".join([
    "Layers:",
    "Name: __mye35292_0_myl0_0, LayerType: shape_call, Inputs: [], Constants: [], Outputs: [], TacticName: , "
    "StreamId: 0, Metadata: ",
    _line("node_Conv_958_myl0_2", "correlation", [_t("x8", [-1, 4, 64, 64], "Int8", "(NHWC) Channel major format")],
          [_t("w", [16, 4, 7, 7], "Int8"), _t("bias", [1, 16, 1, 1], "Float")], [_t("y", [-1, 16, 32, 32], "Float")],
          ["node_Conv_958", "input_DequantizeLinear"]),
    # the qkv projection as a float32 batched GEMM: its [3, 64, 64] weight is a run-time input
    _line("__mye127840+__mye127828+__mye127816_myl0_30", "gemm",
          [_t("a", [-1, 64], "Float"), _t("w3", [3, 64, 64], "Float")],
          [_t("alpha", [1], "Float"), _t("beta", [1], "Float")], [_t("o", [3, -1, 64], "Float")], ["node_linear_5"]),
    _line("node_linear_6_myl0_39", "gemm", [_t("q8", [-1, 64], "Int8")],
          [_t("w8", [64, 64], "Int8", "(Transposed) Transposed format"), _t("alpha", [1], "Float")],
          [_t("o", [-1, 64], "Float")], ["node_linear_6", "view_18_DequantizeLinear"]),
    _line("__myl_FcAdd_myl0_8", "runtime_fusion", [_t("h", [-1, 64], "Half")], [_t("wh", [64, 10], "Half")],
          [_t("o", [-1, 10], "Half")], ["node_head"]),
    _line("__myl_MulAddReluMulMinMaxRounCast_myl0_3", "kgen", [_t("k", [-1, 16, 32, 32], "Float")], [],
          [_t("k8", [-1, 16, 32, 32], "Int8")], ["node_Conv_958", "node_relu", "ln"]),
    "",
    "I/O Tensors:",
    " Name: input, IOMode: Input, DataType: Float, Dimensions: [-1,3,64,64], Location: Device",
])


def test_parse_the_real_table_layout():
    layers = parse_layer_table(TABLE)
    assert [(la.type, la.precision) for la in layers] == [
        ("shape_call", NO_MATH), ("correlation", "int8"), ("gemm", "fp32"), ("gemm", "int8"),
        ("runtime_fusion", "fp16"), ("kgen", "fp32")]
    conv = layers[1]
    assert conv.inputs == (Tensor("x8", (-1, 4, 64, 64), "Int8"),)  # commas inside Format did not split it
    assert [c.dtype for c in conv.constants] == ["Int8", "Float"] and conv.onnx_nodes == ("node_Conv_958",
                                                                                           "input_DequantizeLinear")
    assert [la.kind() for la in layers] == ["OTHER", "CONV", "GEMM", "GEMM", "GEMM", "OTHER"]
    assert Layer("__myl_AddMul", "runtime_fusion", onnx_nodes=("fc",)).kind(frozenset({"fc"})) == "GEMM"
    assert Layer("__myl_AddMul", "runtime_fusion").kind() == "OTHER"


def test_a_changed_format_degrades_instead_of_raising():
    assert parse_layer_table("no table here") == []
    odd = parse_layer_table("Layers:\nName: x, LayerType: gemm, Inputs: [ { Name: a, Datatype: Bogus }], Extra: 1\n")
    assert len(odd) == 1 and odd[0].precision == NO_MATH and odd[0].onnx_nodes == ()


def _graph():
    """conv (int8 weight behind a DQ), fc (float16 weight), head (float32 weight), attn (two activations)."""
    inits = [numpy_helper.from_array(np.zeros((4, 3, 1, 1), np.int8), "wq"),
             numpy_helper.from_array(np.ones(4, np.float32), "ws"),
             numpy_helper.from_array(np.zeros((4, 4), np.float16), "wh"),
             numpy_helper.from_array(np.zeros((4, 4), np.float32), "wf")]
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], name="dq", axis=0),
             helper.make_node("Conv", ["x", "wd"], ["c"], name="conv"),
             helper.make_node("MatMul", ["m", "wh"], ["f"], name="fc"),
             helper.make_node("Transpose", ["wf"], ["wt"], name="t"),
             helper.make_node("MatMul", ["f", "wt"], ["h"], name="head"),
             helper.make_node("MatMul", ["f", "h"], ["a"], name="attn")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4]),
                                           helper.make_tensor_value_info("m", TensorProto.FLOAT16, [4, 4])],
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [4, 4])], inits)
    return helper.make_model(graph)


def test_weighted_nodes_and_their_graph_precision():
    assert weighted_nodes(_graph()) == {"conv": WeightedNode("Conv", "int8"), "fc": WeightedNode("MatMul", "fp16"),
                                        "head": WeightedNode("MatMul", "fp32")}


def test_weights_quantised_at_run_time_as_modelopt_writes_them():
    """ModelOpt keeps float16 weights and quantises them with a QuantizeLinear (int8, or fp8 by its zero
    point's type); they are weighted nodes, not attention products."""
    from volo_export.trt.layers import attention_matmuls

    inits = [numpy_helper.from_array(np.zeros((4, 4), np.float16), w) for w in ("w8", "wf8")]
    inits += [numpy_helper.from_array(np.array(0.1, np.float16), "s"),
              numpy_helper.from_array(np.array(0, np.int8), "z8"),
              helper.make_tensor("zf8", TensorProto.FLOAT8E4M3FN, [], [0])]
    nodes = [helper.make_node("QuantizeLinear", ["w8", "s", "z8"], ["q8"]),
             helper.make_node("DequantizeLinear", ["q8", "s", "z8"], ["d8"]),
             helper.make_node("MatMul", ["x", "d8"], ["y8"], name="fc_int8"),
             helper.make_node("QuantizeLinear", ["wf8", "s", "zf8"], ["qf8"]),
             helper.make_node("DequantizeLinear", ["qf8", "s", "zf8"], ["df8"]),
             helper.make_node("MatMul", ["y8", "df8"], ["yf8"], name="fc_fp8"),
             helper.make_node("MatMul", ["y8", "yf8"], ["a"], name="attn")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4, 4])],
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT16, [4, 4])], inits)
    model = helper.make_model(graph)
    assert weighted_nodes(model) == {"fc_int8": WeightedNode("MatMul", "int8"), "fc_fp8": WeightedNode("MatMul", "fp8")}
    assert attention_matmuls(model) == ["attn"]


def test_report_compares_engine_with_graph():
    layers = parse_layer_table(TABLE)
    weighted = {"node_Conv_958": WeightedNode("Conv", "int8"), "node_linear_5": WeightedNode("MatMul", "int8"),
                "node_linear_6": WeightedNode("MatMul", "int8"), "node_gone": WeightedNode("MatMul", "int8")}
    report = layer_report(layers, weighted, {"node_Conv_958": "Conv", "node_relu": "Relu", "ln": "LayerNormalization",
                                             "node_linear_5": "MatMul"})
    assert report.by_kind == {"CONV": {"int8": 1}, "GEMM": {"fp32": 1, "int8": 1, "fp16": 1},
                              "OTHER": {NO_MATH: 1, "fp32": 1}}
    assert report.nodes["node_linear_5"] == {"op_type": "MatMul", "graph": "int8", "engine": "fp32"}
    assert report.counts("int8") == (2, 4)
    assert report.wider_than_graph() == ["node_linear_5", "node_gone"]
    assert report.float_ops == {"MatMul": 1, "Conv": 1, "Relu": 1, "LayerNormalization": 1}
    assert report.summary() == ("6 layers: GEMM int8 1 / fp16 1 / fp32 1, CONV int8 1, other 2; MatMul/Gemm/Conv: "
                                "int8 2 of 4 (wider in the engine: node_linear_5, node_gone)")
    assert LayerReport.from_dict(report.to_dict()) == report
