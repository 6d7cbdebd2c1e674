"""Offline check of an ONNX graph's quantisation against TensorRT's explicit-quantisation rules.

Pure: reads the ModelProto only (onnx, no runtime). `check_qdq(model)` returns one
`Violation` per broken rule and node; an empty list means TensorRT 10/11 parses the
Q/DQ as intended (strongly typed INT8). The rules (TensorRT developer guide,
"Explicit quantization"; onnx-tensorrt operators.md):

- `qoperator`      no QOperator / integer ops (QLinearConv, MatMulInteger, ...) and no
                   ONNX Runtime contrib ops (`com.microsoft`): TensorRT parses neither.
- `zero-point`     every Q/DQ zero point is 0 (symmetric quantisation).
- `dtype`          Q/DQ work on INT8 (FP8/INT4/FP4 too); UINT8 only as network I/O;
                   no INT32 DequantizeLinear (quantised bias).
- `scale`          scales are constant, finite and positive.
- `activation-per-tensor`  activations (non-constant inputs) use one scale.
- `weight-axis`    per-channel weight scales run along the output-channel axis:
                   Conv 0, ConvTranspose 1, MatMul weight [K, N] 1, Gemm 0 if transB else 1.
- `partial`        a MatMul/Gemm/Conv/ConvTranspose with a DQ on one data input has DQs
                   on all of them; otherwise TensorRT cannot fuse DQ -> op -> (Q) into INT8.
- `q-without-dq`   every QuantizeLinear output goes to DequantizeLinear nodes.
- `opset`          per-channel Q/DQ needs opset >= 13.
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTED_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
# Data inputs of each weighted op (bias excluded): (activation, weight)
_DATA_INPUTS = {"MatMul": (0, 1), "Gemm": (0, 1), "Conv": (0, 1), "ConvTranspose": (0, 1)}
QOPERATOR_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear",
    "QGemm", "QLinearAdd", "QLinearMul", "QLinearConcat", "QLinearAveragePool", "QLinearGlobalAveragePool",
    "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere",
    "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "QOrderedMatMul",
})
_INT8, _UINT8, _INT32 = 3, 2, 6  # onnx.TensorProto element types
_ALLOWED_Q_TYPES = {_INT8, 17, 18, 19, 20, 22, 23}  # INT8, FLOAT8 (4 kinds), INT4, FLOAT4E2M1
_TYPE_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 6: "INT32", 10: "FLOAT16", 16: "BFLOAT16", 21: "UINT4"}


@dataclass(frozen=True)
class Violation:
    """One broken rule at one node."""

    rule: str
    node: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.node}: {self.message}"


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def check_qdq(model) -> list[Violation]:
    """Every TensorRT Q/DQ rule the graph breaks (main graph; see module docstring)."""
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in graph.node if n.op_type == "Constant" and n.attribute
              and n.attribute[0].name == "value"}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def const(name: str):
        t = inits.get(name) or consts.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def elem_type(name: str) -> int | None:
        t = inits.get(name) or consts.get(name)
        return None if t is None else t.data_type

    out: list[Violation] = []
    has_per_channel = False
    for n in graph.node:
        label = n.name or f"{n.op_type}->{n.output[0]}"
        if n.op_type in QOPERATOR_OPS or n.domain == "com.microsoft":
            out.append(Violation("qoperator", label, f"{n.domain + '.' if n.domain else ''}{n.op_type} is not an "
                                 "ONNX op TensorRT parses (QOperator/contrib op; use Q/DQ)"))
            continue
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = const(n.input[1]) if len(n.input) > 1 else None
        if scale is None:
            out.append(Violation("scale", label, "scale is not a constant"))
        else:
            if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
                out.append(Violation("scale", label, "scale has zero, negative or non-finite entries"))
            if scale.size > 1:
                has_per_channel = True
        zp_name = n.input[2] if len(n.input) > 2 and n.input[2] else None
        if zp_name is not None:
            zp = const(zp_name)
            if zp is None:
                out.append(Violation("zero-point", label, "zero point is not a constant"))
            elif zp.any():
                out.append(Violation("zero-point", label, f"zero point is not 0 (asymmetric; e.g. {zp.flat[0]})"))
        qtype = _quant_type(n, elem_type, producer)
        if qtype == _INT32:
            out.append(Violation("dtype", label, "INT32 DequantizeLinear (quantised bias): TensorRT needs float bias"))
        elif qtype == _UINT8:
            out.append(Violation("dtype", label, "UINT8 Q/DQ: TensorRT takes UINT8 only as network I/O; use INT8"))
        elif qtype is not None and qtype not in _ALLOWED_Q_TYPES:
            out.append(Violation("dtype", label, f"quantised type {_TYPE_NAMES.get(qtype, qtype)} is not INT8"))
        data = n.input[0]
        is_weight = const(data) is not None
        if scale is not None and scale.size > 1 and not is_weight and n.op_type == "QuantizeLinear":
            out.append(Violation("activation-per-tensor", label, "activation quantised per channel; use one scale"))
        if n.op_type == "QuantizeLinear":
            bad = [c for c in consumers.get(n.output[0], []) if c.op_type != "DequantizeLinear"]
            if bad:
                out.append(Violation("q-without-dq", label, f"output feeds {bad[0].op_type} {bad[0].name}, "
                                     "not a DequantizeLinear"))
    for n in graph.node:
        if n.op_type in WEIGHTED_OPS:
            out += _check_weighted(n, producer, const)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if has_per_channel and opset < 13:
        out.append(Violation("opset", "model", f"per-channel Q/DQ needs opset >= 13, model has {opset}"))
    return out


def _quant_type(node, elem_type, producer) -> int | None:
    """Element type of the quantised side of a Q/DQ node, when it can be known statically."""
    if len(node.input) > 2 and node.input[2]:
        t = elem_type(node.input[2])
        if t is not None:
            return t
    out_dtype = _attr(node, "output_dtype", 0)
    if node.op_type == "QuantizeLinear":
        return out_dtype or _UINT8  # ONNX default without zero point or output_dtype
    t = elem_type(node.input[0])
    if t is not None:
        return t
    q = producer.get(node.input[0])
    if q is not None and q.op_type == "QuantizeLinear":
        return _quant_type(q, elem_type, producer)
    return None


def weight_axis(node) -> int:
    """The output-channel axis of a weighted op's weight (input 1)."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if _attr(node, "transB", 0) else 1
    return 1  # MatMul weight [K, N]


def _check_weighted(node, producer, const) -> list[Violation]:
    label = node.name or f"{node.op_type}->{node.output[0]}"
    dqs = {i: producer.get(node.input[i]) for i in _DATA_INPUTS[node.op_type] if i < len(node.input)}
    fed = {i: p for i, p in dqs.items() if p is not None and p.op_type == "DequantizeLinear"}
    if not fed:
        return []
    out = []
    for i in dqs:
        if i not in fed:
            out.append(Violation("partial", label, f"input {i} ({node.input[i]}) has no DequantizeLinear while "
                                 f"input {next(iter(fed))} has one: TensorRT cannot run this {node.op_type} in INT8"))
    w = fed.get(1)
    if w is not None and const(w.input[0]) is not None:
        scale = const(w.input[1])
        if scale is not None and scale.size > 1:
            rank = const(w.input[0]).ndim
            axis = _attr(w, "axis", 1)
            axis = axis + rank if axis < 0 else axis
            want = weight_axis(node)
            if node.op_type == "MatMul":
                want = rank - 1
            if axis != want:
                out.append(Violation("weight-axis", w.name or w.output[0], f"per-channel weight scale on axis "
                                     f"{axis}; {node.op_type} needs the output-channel axis {want}"))
    for bias_index in (2,):
        if node.op_type in ("Conv", "Gemm", "ConvTranspose") and len(node.input) > bias_index:
            p = producer.get(node.input[bias_index])
            if p is not None and p.op_type == "DequantizeLinear":
                out.append(Violation("dtype", label, "bias comes from a DequantizeLinear; keep the bias float"))
    return out
