"""One small ONNX graph per TensorRT ONNX-parser rule, with the verdict of volo-export's offline check
and of the real parser + ahead-of-time build (TensorRT-RTX 1.7.1) that each must get.

`CASES[name] = Case(build, check, real, why)`:

- `check`: "pass" (no error), "fail" (an error), "plugin" (needs a plugin library);
- `real`: "ok" (parses and builds), "parse" (the parser rejects it), "build" (parses, the builder fails);
- `why`: for every case where the two differ, the reason and the source that says so. There are two
  kinds: TensorRT 10.1 rejects what the newer RTX parser accepts (onnx-tensorrt branch 10.1-GA, commit
  96e7811, `onnxOpImporters.cpp` unless noted), and rules stricter on purpose. A case that check passes
  and the real parser rejects is not allowed here: that is a bug in check.

Graphs have static shapes (no optimization profile needed) except where `shape_inputs` gives the values
of a graph input TensorRT treats as a shape tensor. The IR version follows the opset, so old opsets get
an IR version old parsers accept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

F = TP.FLOAT


def _vi(name, shape, dtype=F):
    return helper.make_tensor_value_info(name, dtype, shape)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _model(nodes, inputs, outputs, inits=(), opset=20, extra_opsets=()):
    graph = helper.make_graph(nodes, "case", inputs, outputs, initializer=list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    return helper.make_model(graph, opset_imports=opsets, producer_name="volo-export-corpus",
                             ir_version=helper.find_min_ir_version_for([opsets[0]]))


# ------------------------------------------------------------------------------------------ builders


def resize(mode="nearest", opset=20, scales=(1, 1, 2, 2), **attrs):
    def build():
        out = [int(d * s) for d, s in zip((1, 3, 8, 8), scales)]
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode=mode, **attrs)
        return _model([node], [_vi("x", [1, 3, 8, 8])], [_vi("y", out)],
                      [_init("scales", np.array(scales, np.float32))], opset)
    return build


def resize_axes():
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode="linear", axes=[2, 3])
    return _model([node], [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 3, 16, 16])],
                  [_init("scales", np.array([2, 2], np.float32))], 19)


def resize_sizes_runtime():
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="resize", mode="nearest")
    return _model([node], [_vi("x", [1, 3, 8, 8]), _vi("sizes", [4], TP.INT64)], [_vi("y", None)])


def conv(weight="initializer"):
    def build():
        w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
        inputs, inits, nodes = [_vi("x", [1, 3, 8, 8])], [], []
        if weight == "initializer":
            inits.append(_init("w", w))
        elif weight == "input":
            inputs.append(_vi("w", [4, 3, 3, 3]))
        elif weight == "computed":  # w0 * s, s a graph input: not a build-time constant
            inits.append(_init("w0", w))
            inputs.append(_vi("s", [1]))
            nodes.append(helper.make_node("Mul", ["w0", "s"], ["w"], name="scale_w"))
        else:  # Transpose(initializer): foldable
            inits.append(_init("w0", w.transpose(1, 0, 2, 3).copy()))
            nodes.append(helper.make_node("Transpose", ["w0"], ["w"], name="t_w", perm=[1, 0, 2, 3]))
        nodes.append(helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]))
        return _model(nodes, inputs, [_vi("y", [1, 4, 8, 8])], inits)
    return build


def _axes_source(source, inputs, inits, nodes, rank, value):
    """axes as an initializer, a graph input, or Shape(Shape(x)) - c (foldable, but not an initializer)."""
    if source == "initializer":
        inits.append(_init("axes", np.array([value], np.int64)))
    elif source == "input":
        inputs.append(_vi("axes", [1], TP.INT64))
    else:
        inits.append(_init("c", np.array([rank - value], np.int64)))
        nodes += [helper.make_node("Shape", ["x"], ["s"], name="shape"),
                  helper.make_node("Shape", ["s"], ["rank"], name="rank"),
                  helper.make_node("Sub", ["rank", "c"], ["axes"], name="axis_value")]


def reduce_axes(source="initializer"):
    def build():
        inputs, inits, nodes = [_vi("x", [2, 3, 4])], [], []
        _axes_source(source, inputs, inits, nodes, 3, 2)
        nodes.append(helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="reduce", keepdims=1))
        return _model(nodes, inputs, [_vi("y", [2, 3, 1])], inits, 18)
    return build


def squeeze_axes(op="Squeeze", source="initializer"):
    def build():
        shape_in, shape_out = ([1, 3, 4], [3, 4]) if op == "Squeeze" else ([3, 4], [1, 3, 4])
        inputs, inits, nodes = [_vi("x", shape_in)], [], []
        _axes_source(source, inputs, inits, nodes, len(shape_in), 0)
        nodes.append(helper.make_node(op, ["x", "axes"], ["y"], name=op.lower()))
        return _model(nodes, inputs, [_vi("y", shape_out)], inits)
    return build


def cumsum_axis(source="initializer"):
    def build():
        inputs, inits = [_vi("x", [2, 8])], []
        if source == "initializer":
            inits.append(_init("axis", np.array(1, np.int64)))
        else:
            inputs.append(_vi("axis", [], TP.INT64))
        node = helper.make_node("CumSum", ["x", "axis"], ["y"], name="cumsum")
        return _model([node], inputs, [_vi("y", [2, 8])], inits)
    return build


def layernorm(outputs="y"):
    def build():
        outs = {"y": ["y"], "declared": ["y", "mean", "inv_std"], "used": ["y", "mean", "inv_std"],
                "empty": ["y", "", ""]}[outputs]
        node = helper.make_node("LayerNormalization", ["x", "g", "b"], outs, name="ln", axis=-1)
        graph_out = [_vi("y", [2, 8])] + ([_vi("mean", [2, 1])] if outputs == "used" else [])
        return _model([node], [_vi("x", [2, 8])], graph_out,
                      [_init("g", np.ones(8, np.float32)), _init("b", np.zeros(8, np.float32))])
    return build


def pool(op="MaxPool", outputs=("y",), dilations=None):
    def build():
        attrs = {"kernel_shape": [2, 2], "strides": [2, 2], **({"dilations": dilations} if dilations else {})}
        side = 3 if dilations else 4
        node = helper.make_node(op, ["x"], list(outputs), name="pool", **attrs)
        graph_out = [_vi("y", [1, 3, side, side])]
        if len(outputs) > 1 and outputs[1]:
            graph_out.append(_vi(outputs[1], [1, 3, side, side], TP.INT64))
        return _model([node], [_vi("x", [1, 3, 8, 8])], graph_out, opset=22 if op == "AveragePool" else 20)
    return build


def topk(k=3, sorted_=1, k_source="initializer", n=16):
    def build():
        inputs, inits = [_vi("x", [1, n])], []
        if k_source == "initializer":
            inits.append(_init("k", np.array([k], np.int64)))
        else:
            inputs.append(_vi("k", [1], TP.INT64))
        node = helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk", axis=-1, sorted=sorted_)
        return _model([node], inputs, [_vi("v", [1, k]), _vi("i", [1, k], TP.INT64)], inits)
    return build


def scatternd(reduction="none"):
    def build():
        node = helper.make_node("ScatterND", ["x", "idx", "u"], ["y"], name="scatter", reduction=reduction)
        return _model([node], [_vi("x", [4, 3]), _vi("u", [2, 3])], [_vi("y", [4, 3])],
                      [_init("idx", np.array([[0], [2]], np.int64))], 18)
    return build


def uint8(where="internal"):
    def build():
        if where == "internal":
            nodes = [helper.make_node("Cast", ["x"], ["u"], name="to_u8", to=TP.UINT8),
                     helper.make_node("Cast", ["u"], ["y"], name="to_f", to=F)]
            return _model(nodes, [_vi("x", [1, 3, 4, 4])], [_vi("y", [1, 3, 4, 4])])
        nodes = [helper.make_node("Cast", ["x"], ["y"], name="to_f", to=F)]
        return _model(nodes, [_vi("x", [1, 3, 4, 4], TP.UINT8)], [_vi("y", [1, 3, 4, 4])])
    return build


def dropout(mode="false"):
    def build():
        inputs, inits = [_vi("x", [2, 8])], [_init("ratio", np.array(0.5, np.float32))]
        if mode == "input":
            inputs.append(_vi("training", [], TP.BOOL))
        else:
            inits.append(_init("training", np.array(mode == "true")))
        node = helper.make_node("Dropout", ["x", "ratio", "training"], ["y"], name="dropout")
        return _model([node], inputs, [_vi("y", [2, 8])], inits)
    return build


def opset(version):
    def build():
        return _model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [_vi("x", [1, 8])], [_vi("y", [1, 8])],
                      opset=version)
    return build


def contrib(op="FusedMatMul"):
    def build():
        if op == "FusedMatMul":
            node = helper.make_node("FusedMatMul", ["x", "w"], ["y"], name="fused", domain="com.microsoft", alpha=1.0)
            return _model([node], [_vi("x", [2, 8])], [_vi("y", [2, 4])], [_init("w", np.ones((8, 4), np.float32))],
                          extra_opsets=[("com.microsoft", 1)])
        node = helper.make_node("Gelu", ["x"], ["y"], name="gelu", domain="com.microsoft")
        return _model([node], [_vi("x", [2, 8])], [_vi("y", [2, 8])], extra_opsets=[("com.microsoft", 1)])
    return build


def custom_domain(op="MyOp"):
    def build():
        node = helper.make_node(op, ["x"], ["y"], name="myop", domain="volo")
        return _model([node], [_vi("x", [2, 8])], [_vi("y", [2, 8])], extra_opsets=[("volo", 1)])
    return build


# Quantized element types by name (ml_dtypes comes with onnx): INT8, UINT8 and the float8 kinds.
QTYPES = {"int8": np.int8, "uint8": np.uint8, "fp8": ml_dtypes.float8_e4m3fn, "e5m2": ml_dtypes.float8_e5m2,
          "e4m3fnuz": ml_dtypes.float8_e4m3fnuz}
_FLOAT = {np.float32: F, np.float16: TP.FLOAT16}


def qdq(dtype="int8", zero=0, zp_given=True, act_axis=None, weight_axis=None, op="MatMul", scale_const=True,
        weights=None, scale=np.float32, weight_scale=None, tensor=np.float32, per_tensor_weights=False, opset=20,
        output_dtype=False):
    """x -> Q -> DQ -> op(DQ(weight initializer)), with one thing changed. `dtype`: the activations' quantized type,
    `weights` the weights' (default: int8 for int8/uint8, else `dtype`); `scale` / `weight_scale`: the scales' float
    type (a DQ outputs it); `tensor`: the type of the quantized activation (x is cast to it); `output_dtype`: the Q
    names its type by the attribute too (opset >= 21)."""
    def build():
        npd, wnp = QTYPES[dtype], QTYPES[weights or ("int8" if dtype in ("int8", "uint8") else dtype)]
        rng = np.random.default_rng(0)
        inputs, inits, nodes = [_vi("x", [2, 8] if op == "MatMul" else [1, 8, 4, 4])], [], []
        per_channel = act_axis is not None
        if tensor is not np.float32:
            nodes.append(helper.make_node("Cast", ["x"], ["xt"], name="cast_x", to=_FLOAT[tensor]))
        if scale_const:
            inits.append(_init("xs", np.full(8, 0.05, scale) if per_channel else np.array(0.05, scale)))
        else:
            inputs.append(_vi("xs_in", []))
            nodes.append(helper.make_node("Identity", ["xs_in"], ["xs"], name="scale_rt"))
        qin = ["x" if tensor is np.float32 else "xt", "xs"] + (["xz"] if zp_given else [])
        if zp_given:
            inits.append(_init("xz", (np.full(8, zero) if per_channel else np.array(zero)).astype(npd)))
        attrs = {"axis": act_axis} if per_channel else {}
        q_attrs = {**attrs, **({"output_dtype": helper.np_dtype_to_tensor_dtype(np.dtype(npd))} if output_dtype else {})}
        nodes += [helper.make_node("QuantizeLinear", qin, ["xq"], name="q_x", **q_attrs),
                  helper.make_node("DequantizeLinear", ["xq"] + qin[1:], ["xd"], name="dq_x", **attrs)]
        shape, axis = ((8, 4), 1) if op == "MatMul" else ((6, 8, 3, 3), 0)
        axis = axis if weight_axis is None else weight_axis
        n = shape[axis]
        w = rng.integers(-127, 128, shape) if wnp in (np.int8, np.uint8) else rng.standard_normal(shape) * 4
        ws = np.array(0.01, weight_scale or scale) if per_tensor_weights else np.full(n, 0.01, weight_scale or scale)
        inits += [_init("wq", w.astype(wnp)), _init("ws", ws), _init("wz", np.zeros(ws.shape).astype(wnp))]
        nodes.append(helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w",
                                      **({} if per_tensor_weights else {"axis": axis})))
        y = "y" if scale is np.float32 else "yh"
        if op == "MatMul":
            nodes.append(helper.make_node("MatMul", ["xd", "wd"], [y], name="matmul"))
        else:
            nodes.append(helper.make_node("Conv", ["xd", "wd"], [y], name="conv", pads=[1, 1, 1, 1]))
        if y != "y":
            nodes.append(helper.make_node("Cast", [y], ["y"], name="cast_y", to=F))
        return _model(nodes, inputs, [_vi("y", [2, 4] if op == "MatMul" else [1, 6, 4, 4])], inits, opset)
    return build


def qdq_uint8_weights():
    """A uint8 weight behind its DequantizeLinear (zero point 0)."""
    inits = [_init("wq", np.random.default_rng(0).integers(0, 255, (8, 4)).astype(np.uint8)),
             _init("ws", np.full(4, 0.01, np.float32)), _init("wz", np.zeros(4, np.uint8))]
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w", axis=1),
             helper.make_node("MatMul", ["x", "wd"], ["y"], name="matmul")]
    return _model(nodes, [_vi("x", [2, 8])], [_vi("y", [2, 4])], inits)


def qdq_int32_bias():
    rng = np.random.default_rng(0)
    inits = [_init("xs", np.array(0.05, np.float32)), _init("xz", np.array(0, np.int8)),
             _init("wq", rng.integers(-127, 128, (4, 8)).astype(np.int8)), _init("ws", np.full(4, 0.01, np.float32)),
             _init("wz", np.zeros(4, np.int8)), _init("bq", np.arange(4, dtype=np.int32)),
             _init("bs", np.full(4, 0.0005, np.float32)), _init("bz", np.zeros(4, np.int32))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w", axis=0),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], name="dq_b", axis=0),
             helper.make_node("Gemm", ["xd", "wd", "bd"], ["y"], name="gemm", transB=1)]
    return _model(nodes, [_vi("x", [2, 8])], [_vi("y", [2, 4])], inits)


def qdq_into_cast():
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
             helper.make_node("Cast", ["xq"], ["y"], name="cast_int8", to=F)]
    return _model(nodes, [_vi("x", [2, 8])], [_vi("y", [2, 8])],
                  [_init("xs", np.array(0.05, np.float32)), _init("xz", np.array(0, np.int8))])


def col2im():
    node = helper.make_node("Col2Im", ["x", "image_shape", "block_shape"], ["y"], name="col2im")
    return _model([node], [_vi("x", [1, 12, 9])], [_vi("y", [1, 3, 4, 4])],
                  [_init("image_shape", np.array([4, 4], np.int64)), _init("block_shape", np.array([2, 2], np.int64))])


def constant_strings():
    nodes = [helper.make_node("Constant", [], ["c"], name="const_str", value_strings=["a", "b"]),
             helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return _model(nodes, [_vi("x", [2, 8])], [_vi("y", [2, 8])])


def double_tensor():
    nodes = [helper.make_node("Cast", ["x"], ["d"], name="to_double", to=TP.DOUBLE),
             helper.make_node("Cast", ["d"], ["y"], name="to_float", to=F)]
    return _model(nodes, [_vi("x", [2, 8])], [_vi("y", [2, 8])])


# ------------------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    build: Callable
    check: str  # pass | fail | plugin
    real: str  # ok | parse | build
    why: str = ""  # required where check and real differ
    shape_inputs: dict = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        return (self.check == "pass") == (self.real == "ok") if self.check != "plugin" else self.real == "parse"


_TRT101_SQUEEZE = ("TensorRT 10.1 rejects, RTX accepts: importSqueeze assertIsWeights(inputs.at(1), \"Squeeze axes "
                   "input must be an initializer!\"); importUnsqueeze ASSERT_NODE(axesInput.allValuesKnown(), \"Axes "
                   "input for unsqueeze operation should be a constant tensor.\") (a Shape output's values are not "
                   "known); newer parsers add the axes as a build-time tensor")
_STRICT_QDQ = ("stricter on purpose: the parser only checks the scale count, the graph builds, but the layer loses "
               "INT8 (RTX: a float Conv / a fake-quant kernel); the layer report would show it")

# onnx-tensorrt `QuantDequantLinearHelper` checks `shiftIsAllZeros(zeroPoint)` only when the type is not FP8 and
# never passes an FP8 zero point on to the layer: the graph builds and the engine computes without it.
_FP8_ZERO_POINT = ("stricter on purpose: the parser ignores an FP8 zero point (it checks zero points only when the type "
                   "is not FP8), so the engine would silently compute without the shift ONNX Runtime applies")

CASES: dict[str, Case] = {
    # Resize
    "resize_nearest": Case(resize("nearest"), "pass", "ok"),
    "resize_linear": Case(resize("linear"), "pass", "ok"),
    "resize_cubic": Case(resize("cubic"), "pass", "ok"),
    "resize_cubic_coeff_exclude": Case(resize("cubic", cubic_coeff_a=-0.5, exclude_outside=1), "pass", "ok"),
    "resize_cubic_three_dims": Case(resize("cubic", scales=(1, 2, 2, 2)), "fail", "parse"),
    "resize_nearest_mode_floor": Case(resize("nearest", nearest_mode="floor"), "pass", "ok"),
    "resize_coord_align_corners": Case(resize("linear", coordinate_transformation_mode="align_corners"), "pass", "ok"),
    "resize_coord_tf_crop_and_resize": Case(resize("linear", coordinate_transformation_mode="tf_crop_and_resize"),
                                            "fail", "parse"),
    "resize_coord_half_pixel_symmetric": Case(
        resize("linear", 19, coordinate_transformation_mode="half_pixel_symmetric"), "fail", "parse"),
    "resize_antialias": Case(resize("linear", 18, antialias=1), "fail", "parse"),
    "resize_keep_aspect_not_larger": Case(resize("linear", 18, keep_aspect_ratio_policy="not_larger"), "fail", "parse"),
    "resize_axes_attr": Case(resize_axes, "pass", "ok"),
    "resize_sizes_runtime": Case(resize_sizes_runtime, "pass", "ok", shape_inputs={"sizes": [1, 3, 16, 16]}),
    # Conv weights
    "conv_weight_initializer": Case(conv("initializer"), "pass", "ok"),
    "conv_weight_foldable": Case(conv("foldable"), "pass", "ok"),
    "conv_weight_graph_input": Case(conv("input"), "pass", "ok"),
    "conv_weight_computed": Case(conv("computed"), "pass", "ok"),
    # axes
    "reduce_axes_initializer": Case(reduce_axes("initializer"), "pass", "ok"),
    "reduce_axes_graph_input": Case(reduce_axes("input"), "fail", "parse"),
    "reduce_axes_shape_subgraph": Case(reduce_axes("shape"), "fail", "parse"),
    "squeeze_axes_initializer": Case(squeeze_axes("Squeeze", "initializer"), "pass", "ok"),
    "squeeze_axes_graph_input": Case(squeeze_axes("Squeeze", "input"), "fail", "parse"),
    "squeeze_axes_shape_subgraph": Case(squeeze_axes("Squeeze", "shape"), "fail", "ok", _TRT101_SQUEEZE),
    "unsqueeze_axes_graph_input": Case(squeeze_axes("Unsqueeze", "input"), "fail", "parse"),
    "unsqueeze_axes_shape_subgraph": Case(squeeze_axes("Unsqueeze", "shape"), "fail", "ok", _TRT101_SQUEEZE),
    "cumsum_axis_initializer": Case(cumsum_axis("initializer"), "pass", "ok"),
    "cumsum_axis_graph_input": Case(cumsum_axis("input"), "fail", "ok",
                                    "TensorRT 10.1 rejects, RTX accepts: importCumSum assertIsWeights(inputs.at(1), "
                                    "\"Axis input for CumSum must be an initializer!\"); newer parsers take a tensor "
                                    "axis (addCumulative)", shape_inputs={"axis": [1]}),
    # extra outputs
    "layernorm_one_output": Case(layernorm("y"), "pass", "ok"),
    "layernorm_extra_outputs_declared": Case(layernorm("declared"), "fail", "parse"),
    "layernorm_extra_output_used": Case(layernorm("used"), "fail", "parse"),
    "layernorm_extra_outputs_empty": Case(layernorm("empty"), "pass", "ok"),  # a warning: 10.1 would reject
    "maxpool_plain": Case(pool(), "pass", "ok"),
    "maxpool_indices": Case(pool(outputs=("y", "idx")), "fail", "parse"),
    "maxpool_indices_empty": Case(pool(outputs=("y", "")), "pass", "ok"),  # a warning: 10.1 would reject
    "maxpool_dilations": Case(pool(dilations=[2, 2]), "fail", "parse"),
    "averagepool_dilations": Case(pool("AveragePool", dilations=[2, 2]), "fail", "parse"),
    # TopK
    "topk_k3": Case(topk(3), "pass", "ok"),
    "topk_unsorted": Case(topk(3, sorted_=0), "pass", "ok"),
    "topk_k3840": Case(topk(3840, n=5000), "pass", "ok"),
    "topk_k3841": Case(topk(3841, n=5000), "fail", "build"),
    "topk_k_graph_input": Case(topk(3, k_source="input"), "pass", "ok", shape_inputs={"k": [3]}),
    # ScatterND
    "scatternd_reduction_none": Case(scatternd("none"), "pass", "ok"),  # a warning: 10.1 rejects the attribute
    "scatternd_add": Case(scatternd("add"), "fail", "parse"),
    "scatternd_max": Case(scatternd("max"), "fail", "parse"),
    # types
    "uint8_network_input": Case(uint8("io"), "pass", "ok"),
    "uint8_internal": Case(uint8("internal"), "fail", "parse"),
    "double_tensor": Case(double_tensor, "pass", "ok"),
    "constant_value_strings": Case(constant_strings, "fail", "parse"),
    # Dropout
    "dropout_training_false": Case(dropout("false"), "pass", "ok"),
    "dropout_training_true": Case(dropout("true"), "fail", "parse"),
    "dropout_training_graph_input": Case(dropout("input"), "fail", "parse"),
    # opsets: no bound in the parser (ModelImporter.cpp only warns below 7); outside 9..24 is a warning
    **{f"opset_{v}": Case(opset(v), "pass", "ok") for v in (7, 8, 9, 13, 17, 20, 24, 25, 26, 28)},
    # domains
    "contrib_fusedmatmul": Case(contrib("FusedMatMul"), "fail", "parse"),
    "contrib_gelu": Case(contrib("Gelu"), "fail", "ok",
                         "stricter on purpose: ModelImporter.cpp parseNode dispatches on the op type alone, so "
                         "com.microsoft.Gelu is imported as ONNX Gelu; a contrib op's semantics may differ from the "
                         "builtin of the same name"),
    "custom_domain_op": Case(custom_domain("MyOp"), "plugin", "parse"),
    "custom_domain_builtin_name": Case(custom_domain("Relu"), "pass", "ok"),  # a warning: imported as Relu
    "col2im": Case(col2im, "fail", "parse"),
    # Q/DQ
    "qdq_int8_zp0": Case(qdq("int8", 0), "pass", "ok"),
    "qdq_int8_conv_axis0": Case(qdq("int8", 0, op="Conv"), "pass", "ok"),
    "qdq_int8_zp_nonzero": Case(qdq("int8", 3), "fail", "parse"),
    "qdq_uint8_zp0": Case(qdq("uint8", 0), "pass", "ok"),  # a warning: the parser quantizes to INT8 instead
    "qdq_uint8_zp128": Case(qdq("uint8", 128), "fail", "parse"),
    "qdq_no_zero_point": Case(qdq("int8", zp_given=False), "pass", "ok"),
    "qdq_per_channel_activation": Case(qdq("int8", 0, act_axis=1), "fail", "ok", _STRICT_QDQ),
    "qdq_conv_weight_axis1": Case(qdq("int8", 0, op="Conv", weight_axis=1), "fail", "ok", _STRICT_QDQ),
    "qdq_matmul_weight_axis0": Case(qdq("int8", 0, weight_axis=0), "pass", "ok"),
    "qdq_scale_runtime": Case(qdq("int8", 0, scale_const=False), "pass", "ok"),
    "qdq_uint8_weights": Case(qdq_uint8_weights, "fail", "parse"),
    "qdq_int32_bias": Case(qdq_int32_bias, "fail", "parse"),
    "qdq_into_cast": Case(qdq_into_cast, "pass", "ok"),
    # FP8 (E4M3) Q/DQ and float16 scales (a DequantizeLinear outputs its scale's type)
    "qdq_fp8_matmul": Case(qdq("fp8"), "pass", "ok"),
    "qdq_fp8_conv": Case(qdq("fp8", op="Conv"), "pass", "ok"),
    "qdq_fp8_per_tensor_weights": Case(qdq("fp8", per_tensor_weights=True), "pass", "ok"),
    "qdq_fp8_gemm_output_dtype": Case(qdq("fp8", zp_given=False, output_dtype=True, opset=21), "pass", "ok"),
    "qdq_fp8_fp16_scales": Case(qdq("fp8", scale=np.float16, tensor=np.float16), "pass", "ok"),
    "qdq_fp8_conv_fp16_scales": Case(qdq("fp8", op="Conv", scale=np.float16, tensor=np.float16), "pass", "ok"),
    "qdq_int8_fp16_scales": Case(qdq("int8", scale=np.float16, tensor=np.float16), "pass", "ok"),
    "qdq_fp8_float32_scale_on_fp16": Case(qdq("fp8", tensor=np.float16, opset=23), "pass", "ok"),
    "qdq_fp8_fp16_scale_on_float32": Case(qdq("fp8", scale=np.float16, opset=23), "fail", "build"),
    "qdq_int8_fp16_scale_on_float32": Case(qdq("int8", scale=np.float16, opset=23), "pass", "ok"),  # a warning
    "qdq_fp16_dq_meets_float32": Case(qdq("fp8", scale=np.float16, tensor=np.float16, weight_scale=np.float32),
                                      "fail", "parse"),
    "qdq_fp8_opset18": Case(qdq("fp8", opset=18), "pass", "ok"),  # a warning: ONNX has float8 Q/DQ from opset 19
    "qdq_fp8_matmul_weight_axis0": Case(qdq("fp8", weight_axis=0), "pass", "ok"),  # a warning, as for INT8
    "qdq_fp8_zp_nonzero": Case(qdq("fp8", 1.0), "fail", "ok", _FP8_ZERO_POINT),
    "qdq_fp8_per_channel_activation": Case(qdq("fp8", act_axis=1), "fail", "ok", _STRICT_QDQ),
    "qdq_fp8_conv_weight_axis1": Case(qdq("fp8", op="Conv", weight_axis=1), "fail", "ok", _STRICT_QDQ),
    "qdq_e5m2": Case(qdq("e5m2"), "fail", "parse"),
    "qdq_e5m2_activations": Case(qdq("e5m2", weights="fp8"), "fail", "parse"),
    "qdq_e5m2_weights": Case(qdq("fp8", weights="e5m2"), "fail", "parse"),
    "qdq_e4m3fnuz": Case(qdq("e4m3fnuz"), "fail", "parse"),
    "qdq_e5m2_output_dtype": Case(qdq("e5m2", zp_given=False, output_dtype=True, weights="fp8", opset=21), "fail",
                                  "parse"),
}
