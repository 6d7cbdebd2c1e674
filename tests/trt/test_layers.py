"""The builder's DETAILED layer table -> layers, precisions and the per-node report. The lines are real
TensorRT-RTX 1.7.1 output for the tiny INT8 graph before the qkv split (trimmed to the fields that matter); the
mix lines follow the fused attention kernel and batched GEMMs of the tiny FP16 and FP32 builds. The real builds at
the end (TensorRT-RTX, no GPU) hold the mix to what the builder does with the tiny FP32 and FP16 graphs."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from volo_export.trt.layers import (NO_MATH, Layer, LayerReport, Tensor, WeightedNode, attention_matmuls,
                                    layer_report, parse_layer_table, weighted_nodes)
from volo_export.trt.products import find_library


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
    fp8 = _graph()
    fp8.graph.initializer[0].CopyFrom(helper.make_tensor("wq", TensorProto.FLOAT8E4M3FN, [4, 3, 1, 1], [0.5] * 12))
    assert weighted_nodes(fp8)["conv"] == WeightedNode("Conv", "fp8")  # the stored type behind the DQ


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


# ----------------------------------------------------------------------------------- the mix

# One line per kind the mix tells apart (shapes of a D1-like block, dynamic batch counted as 1):
MIX_TABLE = "\n".join([
    "Layers:",
    # TensorRT-RTX's fused multi-head attention: q, kᵀ, v in, attention output out, all half (4 x 100352 x 2 bytes)
    _line("_gemm_mha_v2_myl0_31", "kgen", [_t("q", [-1, 8, 196, 64], "Half"), _t("k", [-1, 8, 64, 196], "Half"),
                                           _t("v", [-1, 8, 196, 64], "Half")], [], [_t("o", [-1, 8, 196, 64], "Half")],
          ["attn_qk", "attn_softmax", "attn_v"]),
    # a class-attention q·kᵀ left as a float32 batched GEMM: (512 + 100864 + 1576) x 4 bytes
    _line("node_matmul_7_myl0_60", "gemm", [_t("q", [-1, 8, 1, 64], "Float"), _t("kt", [-1, 8, 64, 197], "Float")], [],
          [_t("s", [-1, 8, 1, 197], "Float")], ["cls_qk"]),
    # residual add + LayerNorm: a float32 and a half input, half out: 75648 x (4 + 2 + 2) bytes
    _line("__myl_AddCastMulMeanSubMulMeanAddSqrtDivMulAddCast_myl0_10", "runtime_fusion",
          [_t("r", [-1, 197, 384], "Float"), _t("h", [-1, 197, 384], "Half")], [_t("g", [384], "Half")],
          [_t("n", [-1, 197, 384], "Half")], ["add_3", "ln_2"]),
    # an INT8 projection (its weight is a constant, not traffic): 384 x 1 + 1152 x 4 bytes
    _line("node_linear_6_myl0_39", "gemm", [_t("x8", [-1, 384], "Int8")], [_t("w8", [384, 1152], "Int8")],
          [_t("o", [-1, 1152], "Float")], ["node_linear_6"]),
    # an FP8 GEMM writing half: 75648 x (1 + 2) bytes
    _line("node_fc1_myl0_44", "gemm", [_t("x8", [-1, 197, 384], "FP8")], [_t("w8", [384, 384], "FP8")],
          [_t("o", [-1, 197, 384], "Half")], ["node_fc1"]),
    "Name: __mye35292_0_myl0_0, LayerType: shape_call, Inputs: [], Constants: [], Outputs: [], TacticName: , "
    "StreamId: 0, Metadata: ",
    "",
])
MIX_TRAFFIC = 4 * 100352 * 2 + (512 + 100864 + 1576) * 4 + 75648 * 8 + (384 + 1152 * 4) + 75648 * 3


def test_layer_mix_properties():
    mha, cls_qk, norm, int8, fp8, shape = parse_layer_table(MIX_TABLE)
    assert mha.fused_attention and mha.kind() == "GEMM" and mha.precision == "fp16" and not mha.float32_input
    assert mha.traffic == 802816
    assert [la.fused_attention for la in (cls_qk, norm, int8, fp8, shape)] == [False] * 5
    assert (cls_qk.precision, cls_qk.float32_input, cls_qk.traffic) == ("fp32", True, 411808)
    # a float32 input makes the layer count as float32 input even though it computes (and writes) half
    assert (norm.precision, norm.float32_input, norm.traffic, norm.kind()) == ("fp16", True, 605184, "OTHER")
    assert (int8.precision, int8.float32_input, int8.traffic) == ("int8", False, 4992)  # Float output: not input
    assert (fp8.precision, fp8.traffic, fp8.kind()) == ("fp8", 226944, "GEMM")
    assert (shape.precision, shape.traffic) == (NO_MATH, 0)
    # an unknown data type counts 4 bytes, a dynamic dimension counts 1
    assert Layer("x", "kgen", (Tensor("a", (-1, 10), "Bogus"),), (), (Tensor("b", (-1, -1, 3), "Half"),)).traffic == 46


def test_layer_report_mix_and_attention():
    weighted = {"node_linear_6": WeightedNode("MatMul", "int8"), "node_fc1": WeightedNode("MatMul", "fp8")}
    attention = ("attn_qk", "attn_v", "cls_qk", "cls_v")  # cls_v: no layer names it
    report = layer_report(parse_layer_table(MIX_TABLE), weighted, {"add_3": "Add", "ln_2": "LayerNormalization",
                                                                   "cls_qk": "MatMul"}, attention)
    assert report.layers == 6
    assert report.by_precision == {"fp16": 2, "fp32": 1, "int8": 1, "fp8": 1, NO_MATH: 1}
    assert (report.float32_input, report.fused, report.fused_attention) == (2, 1, 1)
    assert report.traffic_bytes == MIX_TRAFFIC == 2051744
    assert report.attention == {"attn_qk": "fp16", "attn_v": "fp16", "cls_qk": "fp32", "cls_v": NO_MATH}
    assert report.float32_attention() == ["cls_qk", "cls_v"]
    assert report.float32_input_fraction == 2 / 6
    assert report.counts("fp8") == (1, 1) and report.wider_than_graph() == []
    assert report.mix() == ("fp8 1, int8 1, fp16 2, fp32 1; float32 input 2 of 6 (33.3 %); 1 fused, 1 attention "
                            "kernels; attention GEMMs fp16 2, fp32 1, n/a 1; activation traffic 2.1 MB/image")
    assert LayerReport.from_dict(report.to_dict()) == report
    no_attention = layer_report(parse_layer_table(MIX_TABLE), weighted, {})
    assert no_attention.attention == {} and "attention GEMMs" not in no_attention.mix()


def test_a_sidecar_written_before_the_mix_reads_with_it_empty():
    old = {"layers": 124, "by_kind": {"GEMM": {"int8": 24, "fp32": 16}, "OTHER": {"fp32": 84}},
           "nodes": {"fc": {"op_type": "MatMul", "graph": "int8", "engine": "int8"}}, "float_ops": {"Add": 3}}
    report = LayerReport.from_dict(old)
    assert (report.layers, report.by_kind["GEMM"], report.counts("int8")) == (124, {"int8": 24, "fp32": 16}, (1, 1))
    assert (report.by_precision, report.float32_input, report.fused, report.fused_attention) == ({}, 0, 0, 0)
    assert (report.traffic_bytes, report.attention, report.float32_attention()) == (0.0, {}, [])
    assert report.mix() == "not recorded (the sidecar predates the layer mix)"
    assert LayerReport.from_dict(report.to_dict()) == report


def test_attention_matmuls_are_the_products_of_two_activations():
    model = _graph()
    assert attention_matmuls(model) == ["attn"]
    assert attention_matmuls(model, weighted_nodes(model)) == ["attn"]
    assert attention_matmuls(model, {}) == ["fc", "head", "attn"]  # told that nothing is weighted


# ----------------------------------------------------------------- the real builder's mix

RTX = find_library("rtx")


@pytest.fixture(scope="module")
def sm89_mix(tmp_path_factory, tiny_onnx, tiny_fp16_onnx):
    """`volo-export engine --runtime rtx --compute-capability sm89` on the tiny FP32 and FP16 graphs: {precision:
    (LayerReport from the sidecar, CLI output)}."""
    from volo_export.cli import app
    from volo_export.trt.provenance import read_sidecar

    folder, out = tmp_path_factory.mktemp("mix"), {}
    for precision, onnx_path in (("fp32", tiny_onnx), ("fp16", tiny_fp16_onnx)):
        engine = folder / f"{precision}.engine"
        result = CliRunner().invoke(app, ["engine", str(onnx_path), "-o", str(engine), "--runtime", "rtx",
                                          "--compute-capability", "sm89"])
        assert result.exit_code == 0, result.output
        out[precision] = LayerReport.from_dict(read_sidecar(engine).layers), result.stdout
    return out


@pytest.mark.skipif(RTX is None, reason="TensorRT-RTX is not installed (pip install -e \".[rtx]\")")
def test_fp16_engine_fuses_attention_and_halves_the_traffic(sm89_mix):
    """Measured with TensorRT-RTX 1.7.1 (SM89): the tiny FP16 graph gets 5 `_gemm_mha_v2` kernels (3 transformer +
    2 class-attention blocks) and runs its 11 attention GEMMs in half; FP32 fuses none, and moves 1.90x the bytes
    (1.10 MB vs 0.58 MB per image; not 2x: the float32 input, output and casts stay)."""
    fp32, fp16 = sm89_mix["fp32"][0], sm89_mix["fp16"][0]
    for precision, (report, output) in sm89_mix.items():
        assert f"layer mix: {report.mix()}" in " ".join(output.split())
        assert len(report.attention) == 11, report.attention
    assert fp16.fused_attention == 5 and set(fp16.attention.values()) == {"fp16"} and fp16.float32_attention() == []
    assert fp32.fused_attention == 0 and set(fp32.attention.values()) == {"fp32"}
    assert len(fp32.float32_attention()) == 11
    assert fp16.by_precision["fp16"] > 10 * fp16.by_precision.get("fp32", 0)
    assert fp16.float32_input_fraction < 0.10 < 0.8 < fp32.float32_input_fraction
    assert 1.8 <= fp32.traffic_bytes / fp16.traffic_bytes <= 2.0, (fp32.traffic_bytes, fp16.traffic_bytes)
