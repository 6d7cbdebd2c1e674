"""The offline TensorRT check: real exports pass, the naive Col2Im export and QOperator graphs fail,
and each parser rule fires on a hand-built graph that breaks it (and only then)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from parser_corpus import qdq
from volo_export.cli import app
from volo_export.trt.check import check_model, first_violation, fp8_nodes

RNG = np.random.default_rng(0)


def errors(result, rule=None):
    return [f for f in result.errors if rule is None or f.rule == rule]


def rules(result, severity=None):
    return sorted({f.rule for f in result.findings if severity is None or f.severity == severity})


# ------------------------------------------------------------------ real exports


@pytest.mark.parametrize("trt", [10, 11])
def test_project_fp32_export_passes(tiny_onnx, trt):
    result = check_model(tiny_onnx, trt=trt)
    assert result.passed, result.summary()
    assert rules(result, "warning") == [] and result.plugins == []
    assert result.opset == 20 and result.nodes > 200
    assert {"Conv", "LayerNormalization", "Softmax", "MatMul"} <= set(result.op_types)
    assert "Col2Im" not in result.op_types
    dims = result.inputs["input"]
    assert isinstance(dims[0], str) and dims[1:] == [3, 64, 64]  # dynamic batch, static image
    assert [f.rule for f in result.of("info")] == ["dynamic-shape"]


def test_onnx_command_reports_the_check(tiny_onnx_export):
    _, output = tiny_onnx_export
    line = next(ln for ln in output.splitlines() if ln.startswith("TensorRT check:"))
    assert "passes TensorRT 10 ONNX parser rules" in line and "opset 20" in line


def test_fp16_conversion_passes(tiny_fp16_onnx):
    result = check_model(tiny_fp16_onnx)
    assert result.passed, result.summary()
    assert result.op_types.get("Cast", 0) >= 2  # float32 I/O kept, cast at the edges


def test_naive_col2im_export_fails(tiny_naive_onnx):
    result = check_model(tiny_naive_onnx)
    assert not result.passed
    (col2im,) = errors(result)
    assert (col2im.rule, col2im.op_type) == ("col2im", "Col2Im")
    assert col2im.node and "rejects outright" in col2im.message
    assert "1 TensorRT 10 violation(s) (Col2Im x1)" in result.summary()


def test_cli_check_exit_codes_and_json(tiny_onnx, tiny_naive_onnx):
    runner = CliRunner()
    ok = runner.invoke(app, ["check", str(tiny_onnx), "--trt", "11", "--trtexec"])
    assert ok.exit_code == 0, ok.output
    assert "passes TensorRT 11" in ok.output
    assert "trtexec --onnx=" in ok.output and "--stronglyTyped" not in ok.output  # 11: strongly typed by default
    bad = runner.invoke(app, ["check", str(tiny_naive_onnx), "--json"])
    assert bad.exit_code == 4
    payload = json.loads(bad.stdout)
    assert payload["passed"] is False and payload["counts"]["error"] == 1
    assert payload["findings"][0]["rule"] == "col2im"
    assert bad.stderr.strip().startswith("error:") and "Col2Im" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_cli_check_bad_inputs(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["check", str(tmp_path / "none.onnx")])
    assert missing.exit_code != 0 and "model not found" in missing.stderr
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xffnot protobuf" * 10)
    res = runner.invoke(app, ["check", str(junk)])
    assert res.exit_code != 0 and "is not an ONNX model" in res.stderr and "Traceback" not in res.output
    res = runner.invoke(app, ["check", str(junk), "--trt", "9"])
    assert res.exit_code == 2 and "--trt 9 unsupported" in res.stderr


# ------------------------------------------------------------------ QOperator


def _small_float_model(path):
    """Conv -> Relu -> MaxPool -> Reshape -> MatMul, dynamic batch, 8x8 input."""
    inits = [numpy_helper.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(np.zeros(4, np.float32), "B"),
             numpy_helper.from_array(RNG.standard_normal((64, 5)).astype(np.float32), "M"),
             numpy_helper.from_array(np.array([0, -1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["input", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Reshape", ["p", "shape"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "M"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "small",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


class _Reader:
    def __init__(self):
        self.batches = iter([{"input": RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.batches, None)


def _quantize(tmp_path, name, **kwargs):
    from onnxruntime.quantization import quantize_static

    src = _small_float_model(tmp_path / "small.onnx")
    out = tmp_path / name
    quantize_static(str(src), str(out), _Reader(), **kwargs)
    return out


def test_qoperator_graph_fails(tmp_path):
    from onnxruntime.quantization import QuantFormat

    result = check_model(_quantize(tmp_path, "qop.onnx", quant_format=QuantFormat.QOperator))
    qop = {(f.op_type, f.node) for f in errors(result, "qoperator")}
    assert qop == {("QLinearConv", "conv_quant"), ("QLinearMatMul", "fc_quant")}
    assert not result.passed
    assert first_violation(result).startswith("conv_quant: QLinearConv: QOperator-format")  # the telling one


def test_ort_symmetric_qdq_passes_and_default_qdq_fails(tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType

    good = _quantize(tmp_path, "qdq.onnx", quant_format=QuantFormat.QDQ, per_channel=True,
                     activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                     extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
    result = check_model(good)
    assert result.passed, result.summary()
    assert result.op_types["DequantizeLinear"] >= 4
    bad = check_model(_quantize(tmp_path, "qdq_default.onnx", quant_format=QuantFormat.QDQ))
    assert errors(bad, "qdq-int32-bias")[0].node == "B_DequantizeLinear"
    assert errors(bad, "qdq-zero-point")  # asymmetric activations


# ------------------------------------------------------------- hand-built Q/DQ


def _qdq_conv(zero=0, zero_type=np.int8, w_type=np.int8, axis=0, n_scales=4, act_scales=1, bias_int32=False,
              q_zero_point=True):
    """input -Q/DQ-> Conv(DQ(int8 weights, per-channel on axis 0)) -> output; 3 -> 4 channels."""
    per_channel_act = act_scales > 1
    inits = [numpy_helper.from_array(RNG.integers(-100, 100, (4, 3, 3, 3)).astype(w_type), "w_q"),
             numpy_helper.from_array(np.full(n_scales, 0.01, np.float32), "w_scale"),
             numpy_helper.from_array(np.full(n_scales, zero, zero_type), "w_zero"),
             numpy_helper.from_array(np.full(act_scales, 0.05, np.float32) if per_channel_act
                                     else np.array(0.05, np.float32), "x_scale"),
             numpy_helper.from_array(np.zeros(act_scales, np.int8) if per_channel_act else np.array(0, np.int8),
                                     "x_zero")]
    q_in = ["input", "x_scale"] + (["x_zero"] if q_zero_point else [])
    nodes = [helper.make_node("QuantizeLinear", q_in, ["x_q"], name="q_input", axis=1),
             helper.make_node("DequantizeLinear", ["x_q"] + q_in[1:], ["x_dq"], name="dq_input", axis=1),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="dq_weight", axis=axis)]
    conv_inputs = ["x_dq", "w"]
    if bias_int32:
        inits += [numpy_helper.from_array(np.arange(4, dtype=np.int32), "b_q"),
                  numpy_helper.from_array(np.array(0.0005, np.float32), "b_scale")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale"], ["b"], name="dq_bias"))
        conv_inputs.append("b")
    nodes.append(helper.make_node("Conv", conv_inputs, ["output"], name="conv", pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_symmetric_per_channel_qdq_passes():
    model = _qdq_conv()
    onnx.checker.check_model(model, full_check=True)
    result = check_model(model, name="qdq")
    assert result.passed and rules(result, "warning") == []


@pytest.mark.parametrize("variant,rule,node", [
    (dict(zero=3), "qdq-zero-point", "dq_weight"),
    (dict(zero_type=np.uint8, w_type=np.uint8), "uint8-internal", "initializer"),  # RTX: "unsupported input type"
    (dict(bias_int32=True), "qdq-int32-bias", "dq_bias"),
    (dict(axis=1, n_scales=3), "qdq-axis", "dq_weight"),  # per-channel on input channels: not for TensorRT
    (dict(n_scales=5), "qdq-axis", "dq_weight"),  # 5 scales for 4 output channels
    (dict(act_scales=3), "qdq-per-channel-activation", "q_input"),
])
def test_qdq_rule_violations(variant, rule, node):
    result = check_model(_qdq_conv(**variant), name="qdq")
    assert node in {f.node for f in errors(result, rule)}, result.findings
    assert not result.passed


def test_quantize_without_zero_point_warns_about_uint8_semantics():
    result = check_model(_qdq_conv(q_zero_point=False), name="qdq")
    assert result.passed
    assert [f.node for f in result.of("warning") if f.rule == "qdq-implicit-uint8"] == ["q_input"]


# ------------------------------------------------ FP8 (E4M3) and float16 scales (parser_corpus.qdq graphs)


@pytest.mark.parametrize("kwargs", [
    dict(dtype="fp8"), dict(dtype="fp8", op="Conv"), dict(dtype="fp8", per_tensor_weights=True),
    dict(dtype="fp8", zp_given=False, output_dtype=True, opset=21),  # the type named by output_dtype alone
    dict(dtype="fp8", scale=np.float16, tensor=np.float16), dict(dtype="fp8", op="Conv", scale=np.float16,
                                                                 tensor=np.float16),
    dict(dtype="int8", scale=np.float16, tensor=np.float16), dict(dtype="int8", op="Conv", scale=np.float16,
                                                                  tensor=np.float16),
    dict(dtype="fp8", tensor=np.float16, opset=23),  # a float32 scale on a float16 tensor (ONNX >= 23)
])
def test_fp8_and_float16_scale_qdq_pass_clean(kwargs):
    model = qdq(**kwargs)()
    onnx.checker.check_model(model, full_check=True)
    result = check_model(model, name="qdq")
    assert result.passed and rules(result, "warning") == [], result.findings
    assert result.op_types["DequantizeLinear"] == 2


def test_a_float16_scale_makes_the_dequantized_tensor_float16():
    """A DequantizeLinear outputs its scale's type: float16 scales keep a float16 graph float16, and float16 meeting
    float32 at a MatMul is an error the real parser also gives ("IMatrixMultiplyLayer must have same input types")."""
    same = check_model(qdq("fp8", scale=np.float16, tensor=np.float16)(), name="qdq")
    assert same.passed
    mixed = check_model(qdq("fp8", scale=np.float16, tensor=np.float16, weight_scale=np.float32)(), name="qdq")
    (error,) = mixed.errors
    assert (error.rule, error.node, error.op_type) == ("mixed-types", "matmul", "MatMul")
    assert error.message.startswith("MatMul reads float16 'xd' and float32 'wd'")
    assert "a DequantizeLinear outputs its scale's type" in error.message


@pytest.mark.parametrize("kwargs,severity,rule,nodes,fragment", [
    (dict(dtype="e5m2"), "error", "qdq-type", ["q_x", "dq_w"], "TensorRT quantizes to INT8, FP8 E4M3 (float8e4m3fn)"),
    (dict(dtype="e5m2", weights="fp8"), "error", "qdq-type", ["q_x"], "QuantizeLinear to FLOAT8E5M2"),
    (dict(dtype="fp8", weights="e5m2"), "error", "qdq-type", ["dq_w"], "'wq' is FLOAT8E5M2; TensorRT dequantizes"),
    (dict(dtype="e4m3fnuz"), "error", "qdq-type", ["q_x", "dq_w"], "FLOAT8E4M3FNUZ"),
    (dict(dtype="e5m2", zp_given=False, output_dtype=True, weights="fp8", opset=21), "error", "qdq-type", ["q_x"],
     "QuantizeLinear to FLOAT8E5M2"),
    (dict(dtype="fp8", zero=1.0), "error", "qdq-zero-point", ["q_x", "dq_x"],
     "'xz' is not 0 (e.g. 1): TensorRT's parser ignores an FP8 zero point"),
    (dict(dtype="fp8", act_axis=1), "error", "qdq-per-channel-activation", ["q_x", "dq_x"], "per tensor only"),
    (dict(dtype="fp8", op="Conv", weight_axis=1), "error", "qdq-axis", ["dq_w"], "output-channel axis 0"),
    (dict(dtype="fp8", weight_axis=0), "warning", "qdq-axis", ["dq_w"], "output-channel axis 1"),
    (dict(dtype="fp8", scale=np.float16, opset=23), "error", "qdq-scale-type", ["q_x"],
     "'xs' is float16 but input 'x' is float32: TensorRT cannot build an FP8 quantize"),
    (dict(dtype="int8", scale=np.float16, opset=23), "warning", "qdq-scale-type", ["q_x"], "fused cast kernel"),
    (dict(dtype="fp8", opset=18), "warning", "qdq-opset", ["q_x", "dq_w"], "from opset 19"),  # dq_x: said at q_x
])
def test_fp8_qdq_rules(kwargs, severity, rule, nodes, fragment):
    result = check_model(qdq(**kwargs)(), name="qdq")
    found = [f for f in result.of(severity) if f.rule == rule]
    assert sorted(f.node for f in found) == sorted(nodes), result.findings
    assert fragment in found[0].message
    assert result.passed == (severity == "warning")


def test_fp8_nodes_find_the_graphs_that_need_an_fp8_gpu():
    """`engine` refuses targets below compute capability 8.9 for a graph with any of these."""
    assert fp8_nodes(qdq("fp8")()) == ["q_x", "dq_x", "dq_w"]
    assert fp8_nodes(qdq("int8", weights="fp8")()) == ["dq_w"]  # FP8 weights alone
    assert fp8_nodes(qdq("fp8", zp_given=False, output_dtype=True, opset=21)()) == ["q_x", "dq_w"]
    assert fp8_nodes(qdq("int8")()) == [] and fp8_nodes(qdq("int8", scale=np.float16, tensor=np.float16)()) == []
    custom = helper.make_node("TRT_FP8QuantizeLinear", ["x", "s"], ["y"], domain="trt")  # ONNX-TensorRT's own op
    model = _model([custom], [_vi("x")], [_vi("y")], [numpy_helper.from_array(np.float32(0.1), "s")],
                   extra_opsets=[helper.make_opsetid("trt", 1)])
    assert fp8_nodes(model) == ["TRT_FP8QuantizeLinear#0"]


def test_other_float8_tensors_are_refused_anywhere():
    """The parser cannot import a float8e5m2 tensor at all ("Failed to import initializer"), Q/DQ or not."""
    nodes = [helper.make_node("Cast", ["x"], ["x8"], name="to_e5m2", to=TensorProto.FLOAT8E5M2),
             helper.make_node("Cast", ["x8"], ["y"], name="back", to=TensorProto.FLOAT)]
    result = check_model(_model(nodes, [_vi("x")], [_vi("y")]))
    (error,) = result.errors
    assert (error.rule, error.node) == ("unsupported-type", "to_e5m2") and "float8e5m2 tensor 'x8'" in error.message
    fp8 = [helper.make_node("Cast", ["x"], ["x8"], name="to_e4m3", to=TensorProto.FLOAT8E4M3FN),
           helper.make_node("Cast", ["x8"], ["y"], name="back", to=TensorProto.FLOAT)]
    assert check_model(_model(fp8, [_vi("x")], [_vi("y")])).passed  # Cast reads FP8 like INT8


# --------------------------------------------------------------- other rules


def _model(nodes, inputs, outputs, inits=(), opset=20, functions=(), extra_opsets=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets],
                             functions=list(functions))


def _vi(name, elem=TensorProto.FLOAT, shape=("N", 4)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def test_opset_outside_the_documented_range_is_a_warning():
    """The parser has no opset bound (it only warns below 7); 10 documents 9..24, 11 9..25."""
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [_vi("x")], [_vi("y")], opset=25)
    result = check_model(model, trt=10)
    assert result.passed and [f.rule for f in result.of("warning")] == ["opset"]
    assert "outside the 9..24 TensorRT 10 documents" in result.of("warning")[0].message
    assert check_model(model, trt=11).of("warning") == []
    too_new = _model([helper.make_node("Relu", ["x"], ["y"])], [_vi("x")], [_vi("y")], opset=26)
    assert "outside the 9..25 TensorRT 11 documents" in check_model(too_new, trt=11).of("warning")[0].message


def test_non_constant_weights_and_axes():
    nodes = [helper.make_node("Conv", ["x", "w_in"], ["c"], name="conv_dynamic_w"),
             helper.make_node("Shape", ["c"], ["s"], name="shape"),
             helper.make_node("Slice", ["s", "zero", "one"], ["ax"], name="slice"),
             helper.make_node("Unsqueeze", ["c", "ax"], ["u"], name="unsqueeze_dynamic"),
             helper.make_node("ReduceMean", ["u", "ax"], ["y"], name="reduce_dynamic")]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    model = _model(nodes, [_vi("x", shape=("N", 3, 8, 8)), _vi("w_in", shape=(4, 3, 3, 3))], [_vi("y", shape=())],
                   inits)
    result = check_model(model)
    # Conv takes tensor weights (a multi-input convolution): a warning, not an error
    assert [(f.severity, f.node) for f in result.findings if f.rule == "tensor-weights"] == [("warning",
                                                                                            "conv_dynamic_w")]
    assert {f.node for f in errors(result, "constant-axes")} == {"unsqueeze_dynamic", "reduce_dynamic"}


def test_constant_axes_through_constant_nodes_pass():
    axes = helper.make_node("Constant", [], ["axes"], name="axes",
                            value=numpy_helper.from_array(np.array([1], np.int64)))
    nodes = [axes, helper.make_node("Unsqueeze", ["x", "axes"], ["u"], name="unsqueeze"),
             helper.make_node("ReduceSum", ["u", "axes"], ["y"], name="reduce")]
    assert check_model(_model(nodes, [_vi("x")], [_vi("y", shape=("N", 4))])).passed


def test_layernorm_extra_outputs():
    ln_inits = [numpy_helper.from_array(np.ones(4, np.float32), "g"),
                numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    used = _model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean"], name="ln")],
                  [_vi("x")], [_vi("y"), _vi("mean", shape=("N", 1))], ln_inits)
    assert [f.node for f in errors(check_model(used), "extra-outputs")] == ["ln"]
    # declared but unused: the real parser rejects it too ("doesn't support more than 1 outputs")
    declared = _model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", "mean"], name="ln")],
                      [_vi("x")], [_vi("y")], ln_inits)
    assert "'mean' is declared" in errors(check_model(declared), "extra-outputs")[0].message
    empty = _model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y", ""], name="ln")],
                   [_vi("x")], [_vi("y")], ln_inits)
    result = check_model(empty)
    assert result.passed and [f.rule for f in result.of("warning")] == ["extra-outputs"]


def test_contrib_ops_fail_and_custom_domain_needs_plugin():
    nodes = [helper.make_node("FusedMatMul", ["x", "x"], ["m"], name="ort_fused", domain="com.microsoft"),
             helper.make_node("OutlookAttention", ["m"], ["y"], name="outlook", domain="volo", plugin_version="2")]
    model = _model(nodes, [_vi("x", shape=(4, 4))], [_vi("y", shape=(4, 4))],
                   extra_opsets=[helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("volo", 1)])
    result = check_model(model)
    assert [(f.rule, f.node) for f in result.errors] == [("contrib-op", "ort_fused")]
    (plugin,) = result.of("plugin")
    assert plugin.node == "outlook" and "needs plugin OutlookAttention" in plugin.message
    assert "version '2'" in plugin.message and "'volo'" in plugin.message
    assert result.plugins == ["OutlookAttention"] and "needs plugin(s) OutlookAttention" in result.summary()
    only_plugin = _model([nodes[1]], [_vi("x", shape=(4, 4))], [_vi("y", shape=(4, 4))],
                         extra_opsets=[helper.make_opsetid("volo", 1)])
    assert check_model(only_plugin).passed  # a plugin is not a violation: `engine --plugins` supplies it


def test_uint8_only_at_network_io():
    io_ok = _model([helper.make_node("Cast", ["x"], ["y"], name="to_float", to=TensorProto.FLOAT)],
                   [_vi("x", TensorProto.UINT8)], [_vi("y")])
    assert check_model(io_ok).passed
    inside = _model([helper.make_node("Cast", ["x"], ["u8"], name="to_u8", to=TensorProto.UINT8),
                     helper.make_node("Cast", ["u8"], ["y"], name="back", to=TensorProto.FLOAT)],
                    [_vi("x")], [_vi("y")])
    assert [f.node for f in errors(check_model(inside), "uint8-internal")] == ["to_u8"]


def test_unsupported_ops_resize_mode_and_subgraphs():
    then_graph = helper.make_graph([helper.make_node("Unique", ["x"], ["t"], name="unique")], "then", [],
                                   [_vi("t", shape=("?",))])
    else_graph = helper.make_graph([helper.make_node("Identity", ["x"], ["e"], name="ident")], "else", [],
                                   [_vi("e", shape=("?",))])
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["r"], name="resize_cubic", mode="cubic"),
             helper.make_node("Resize", ["x", "", "scales3"], ["r3"], name="resize_cubic_3d", mode="cubic"),
             helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_graph, else_branch=else_graph)]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
             numpy_helper.from_array(np.array([1, 2, 2, 2], np.float32), "scales3")]
    model = _model(nodes, [_vi("x", shape=("N", 3, 4, 4)), _vi("cond", TensorProto.BOOL, shape=())],
                   [_vi("y", shape=("?",)), _vi("r", shape=("N", 3, 8, 8)), _vi("r3", shape=("N", 6, 8, 8))], inits)
    result = check_model(model)
    # cubic is fine on the 2 innermost dims (importResize), not on 3
    assert [f.node for f in errors(result, "op-restriction")] == ["resize_cubic_3d"]
    assert [f.node for f in errors(result, "unsupported-op")] == ["branch/then_branch/unique"]


def test_local_functions_are_checked_through():
    body = [helper.make_node("Relu", ["a"], ["b"], name="relu"), helper.make_node("Col2Im", ["b", "s", "k"], ["c"],
                                                                                   name="inner_col2im")]
    fn = helper.make_function("local", "Block", ["a", "s", "k"], ["c"], body,
                              opset_imports=[helper.make_opsetid("", 20)])
    inits = [numpy_helper.from_array(np.array([4, 4], np.int64), "s"),
             numpy_helper.from_array(np.array([2, 2], np.int64), "k")]
    model = _model([helper.make_node("Block", ["x", "s", "k"], ["y"], name="block", domain="local")],
                   [_vi("x", shape=("N", 12, 9))], [_vi("y", shape=("N", 3, 4, 4))], inits,
                   functions=[fn], extra_opsets=[helper.make_opsetid("local", 1)])
    result = check_model(model)
    assert [(f.rule, f.node) for f in result.errors] == [("col2im", "block/inner_col2im")]
    assert result.op_types == {"Block": 1, "Col2Im": 1, "Relu": 1}


@pytest.mark.slow
def test_d1_export_passes_for_10_and_11_and_predicts_imagenet_names(d1_onnx_with_checkpoint):
    from volo_export.labels import imagenet_class_names
    from volo_export.predict import predict_files
    from volo_export.preprocess import sample_photos
    from volo_export.runtime import open_runner

    onnx_path, _ = d1_onnx_with_checkpoint
    for trt in (10, 11):
        result = check_model(onnx_path, trt=trt)
        assert result.passed and result.nodes > 800 and result.inputs["input"][1:] == [3, 224, 224]
    photos = sample_photos()[:4]
    preds = predict_files(open_runner(onnx_path), photos, k=5)
    names = imagenet_class_names()
    assert [len(p.top) for p in preds] == [5] * len(photos)
    assert all(c.label == names[c.index] for p in preds for c in p.top)


def test_matmul_weight_axis_is_a_warning():
    inits = [numpy_helper.from_array(RNG.integers(-9, 9, (6, 5)).astype(np.int8), "w_q"),
             numpy_helper.from_array(np.full(6, 0.1, np.float32), "w_scale"),
             numpy_helper.from_array(np.zeros(6, np.int8), "w_zero")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], name="dq_w", axis=0),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")]
    result = check_model(_model(nodes, [_vi("x", shape=("N", 6))], [_vi("y", shape=("N", 5))], inits))
    assert result.passed
    (warning,) = result.of("warning")
    assert warning.rule == "qdq-axis" and "output-channel axis 1" in warning.message
