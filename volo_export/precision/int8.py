"""INT8 and FP8 by explicit Q/DQ: which nodes to quantise, and the quantised graph.

`find_targets` lists the MatMul/Gemm/Conv/ConvTranspose nodes to quantise and the
activation tensors they read; calibration supplies a `Range` per activation;
`quantize_qdq` inserts QuantizeLinear -> DequantizeLinear on every activation input
and stores every weight as INT8 (or FP8 E4M3, `qtype=FP8_E4M3`) + DequantizeLinear.
Scales are float32; `precision.fp16.to_fp16` turns them into float16 with the rest of a
graph whose unquantised part runs in float16 (a DequantizeLinear returns its scale's type).

TensorRT style (target "tensorrt", `volo_export.trt.check` passes): symmetric INT8, zero point
0, activations per tensor, weights per output channel (Conv axis 0, ConvTranspose
1, MatMul [K, N] 1, Gemm per transB), float bias, no QOperator ops. ONNX Runtime
runs the same file on CPU (fusing DQ -> MatMul into integer kernels).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from volo_export.calibration.methods import Range
from volo_export.errors import ExportError, UsageError

INT8_MAX = 127
WEIGHTED_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


@dataclass(frozen=True)
class QuantType:
    """The element type Q/DQ quantise to: its ONNX type and the largest magnitude it holds. Scales map a
    tensor's amax onto `max`; int8 rounds to integers, float8 E4M3 to its 3-bit mantissa (nearest even)."""

    name: str  # as onnx.TensorProto spells the data type
    onnx_type: int  # onnx.TensorProto data type
    max: float

    def quantize(self, scaled: np.ndarray) -> np.ndarray:
        """`x / scale` -> the stored values (saturating), as this type's numpy dtype."""
        clipped = np.clip(scaled, -self.max, self.max)
        if self is INT8:
            return np.round(clipped).astype(np.int8)
        import ml_dtypes

        return clipped.astype(np.float32).astype(ml_dtypes.float8_e4m3fn)

    def zeros(self, shape) -> np.ndarray:
        return self.quantize(np.zeros(shape, np.float32))


INT8 = QuantType("INT8", 3, INT8_MAX)  # TensorProto.INT8
FP8_E4M3 = QuantType("FLOAT8E4M3FN", 17, 448.0)  # TensorProto.FLOAT8E4M3FN: 4-bit exponent, 3-bit mantissa
QUANT_TYPES = {q.name: q for q in (INT8, FP8_E4M3)}


def weight_axis(node) -> int:
    """The output-channel axis of a weighted op's weight (input 1): where per-channel scales go.
    (`volo_export.trt.check` holds TensorRT to the same axes.)"""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return 1  # MatMul weight [K, N]


@dataclass(frozen=True)
class QuantTarget:
    """One node to quantise: its activation inputs (per-tensor Q/DQ) and its constant weight (per channel)."""

    node: str
    op_type: str
    activations: tuple[str, ...]
    weight: str | None
    axis: int


@dataclass(frozen=True)
class Selection:
    """Which nodes to quantise: op types, minus excluded node names and op types."""

    op_types: tuple[str, ...] = WEIGHTED_OPS
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    # MatMuls whose inputs are both activations (attention scores, attention x values).
    activation_matmuls: bool = False


def node_names(model) -> list[str]:
    return [n.name for n in model.graph.node]


def find_targets(model, selection: Selection = Selection()) -> list[QuantTarget]:
    """Quantisable nodes of `model` under `selection`, in graph order.

    Raises UsageError for an excluded node or op type that does not exist, so a typo
    is not silently ignored.
    """
    graph = model.graph
    names = set(node_names(model))
    unknown = [n for n in selection.exclude_nodes if n not in names]
    if unknown:
        candidates = [n.name for n in graph.node if n.op_type in WEIGHTED_OPS][:3]
        raise UsageError(f"--exclude-nodes: no node named {unknown[0]!r} in the graph "
                         f"(quantisable nodes are named like {', '.join(candidates)})")
    bad_types = [t for t in selection.exclude_op_types if t not in WEIGHTED_OPS]
    if bad_types:
        raise UsageError(f"--exclude-op-types: {bad_types[0]!r} is not quantised anyway; "
                         f"choose from {', '.join(WEIGHTED_OPS)}")
    inits = {t.name for t in graph.initializer}
    excluded = set(selection.exclude_nodes)
    targets = []
    for n in graph.node:
        if n.op_type not in selection.op_types or n.op_type in selection.exclude_op_types or n.name in excluded:
            continue
        data, weight = n.input[0], n.input[1]
        if data in inits:
            continue
        if weight in inits:
            targets.append(QuantTarget(n.name, n.op_type, (data,), weight, weight_axis(n)))
        elif selection.activation_matmuls and n.op_type == "MatMul":
            targets.append(QuantTarget(n.name, n.op_type, (data, weight), None, 0))
    return targets


def one_row_per_image(model, targets: Iterable[QuantTarget]) -> list[str]:
    """The targets whose activation holds one row per image: every dimension but the last is the graph's batch
    or 1 (by the shapes the export records, else ONNX shape inference). On VOLO: the class-attention blocks' and
    the head's GEMMs, which see the class token alone."""
    from onnx import shape_inference

    graph = model.graph
    if not graph.value_info:
        graph = shape_inference.infer_shapes(model).graph
    shapes = {v.name: v.type.tensor_type.shape.dim for v in (*graph.value_info, *graph.input)}
    batch = graph.input[0].type.tensor_type.shape.dim[0]

    def per_image(d) -> bool:
        if d.dim_param:
            return d.dim_param == batch.dim_param
        return d.dim_value == 1 or (not batch.dim_param and d.dim_value == batch.dim_value)

    return [t.node for t in targets if len(dims := shapes.get(t.activations[0], ())) >= 2
            and all(per_image(d) for d in dims[:-1])]


def calibration_tensors(targets: Iterable[QuantTarget]) -> list[str]:
    """Activation tensors whose ranges the targets need, in first-use order."""
    return list(dict.fromkeys(t for q in targets for t in q.activations))


def symmetric_scale(amax: np.ndarray | float, levels: int = INT8_MAX) -> np.ndarray:
    """Scale mapping [-amax, amax] onto [-levels, levels]; 1 where amax is 0 (all-zero tensor/channel)."""
    amax = np.asarray(amax, dtype=np.float64)
    return np.where(amax > 0, amax / levels, 1.0).astype(np.float32)


def quantize_weight(w: np.ndarray, axis: int, levels: float = INT8_MAX,
                    qtype: QuantType = INT8) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric quantisation along `axis` onto [-levels, levels] (FP8: levels = its max):
    (quantised weights, float32 scales of length w.shape[axis])."""
    axis = axis % w.ndim
    others = tuple(i for i in range(w.ndim) if i != axis)
    scale = symmetric_scale(np.abs(w).max(axis=others), levels)
    shape = [1] * w.ndim
    shape[axis] = -1
    return qtype.quantize(np.clip(w / scale.reshape(shape), -levels, levels)), scale


def fake_quantize(x: np.ndarray, amax: float, qtype: QuantType = INT8) -> np.ndarray:
    """What a symmetric per-tensor Q -> DQ pair does to `x` (for sensitivity measurements)."""
    s = float(symmetric_scale(amax, qtype.max))
    if qtype is INT8:
        return (np.clip(np.round(x / s), -128, INT8_MAX) * s).astype(np.float32)
    return (qtype.quantize(x / s).astype(np.float32) * s).astype(np.float32)


def activation_qparams(r: Range, asymmetric: bool = False, levels: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero point) of one activation: symmetric int8 (zero point 0), or asymmetric uint8
    covering [min(lo, 0), max(hi, 0)] with `levels` steps (ONNX Runtime CPU only)."""
    if not asymmetric:
        return symmetric_scale(r.amax), np.zeros((), np.int8)
    lo, hi = min(r.lo, 0.0), max(r.hi, 0.0)
    scale = (hi - lo) / levels if hi > lo else 1.0
    zero_point = np.clip(np.round(-lo / scale), 0, 255)
    return np.asarray(scale, np.float32), np.asarray(zero_point, np.uint8)


def quantize_qdq(model, targets: Sequence[QuantTarget], ranges: dict[str, Range], asymmetric: bool = False,
                 weight_levels: int = INT8_MAX, activation_levels: int = 255, unsigned: Collection[str] = (),
                 qtype: QuantType = INT8):
    """A copy of `model` with Q/DQ on every target's inputs: TensorRT style (see module docstring), or
    with `asymmetric` uint8 activations (faster on ONNX Runtime's x86 kernels, not TensorRT-parseable).
    The activations named in `unsigned` are quantised as asymmetric uint8 either way (zero point 0 and
    scale max/levels for a tensor that is never negative). `qtype=FP8_E4M3`: symmetric float8 E4M3
    activations (per tensor) and weights (per channel), scales amax/448."""
    import onnx
    from onnx import helper, numpy_helper

    if qtype is not INT8 and (asymmetric or unsigned):
        raise ValueError("asymmetric/unsigned activations exist for int8 only")
    if qtype is not INT8:
        weight_levels = qtype.max

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {t.name: t for t in graph.initializer}
    by_name = {n.name: n for n in graph.node}
    new_inits: list = []
    dq_of: dict[str, str] = {}  # float tensor -> its dequantised copy
    inserted: dict[str, list] = {}  # tensor -> Q/DQ nodes to place right after its producer

    def add_init(name: str, array: np.ndarray) -> str:
        if array.dtype.name.startswith("float8"):  # stored raw: onnx's from_array predates ml_dtypes' float8
            new_inits.append(helper.make_tensor(name, qtype.onnx_type, array.shape, array.tobytes(), raw=True))
        else:
            new_inits.append(numpy_helper.from_array(array, name))
        return name

    def activation(name: str) -> str:
        if name not in dq_of:
            if name not in ranges:
                raise ExportError(f"no calibrated range for activation {name!r}: the calibration ranges do not "
                                  "cover this graph (stale --calib-cache?)")
            base = _safe(name)
            if qtype is INT8:
                scale_value, zp_value = activation_qparams(ranges[name], asymmetric or name in unsigned,
                                                              activation_levels)
            else:
                scale_value, zp_value = symmetric_scale(ranges[name].amax, qtype.max), qtype.zeros(())
            scale = add_init(f"{base}_scale", scale_value)
            zp = add_init(f"{base}_zero_point", zp_value)
            q = helper.make_node("QuantizeLinear", [name, scale, zp], [f"{base}_quantized"], name=f"{base}_QuantizeLinear")
            dq = helper.make_node("DequantizeLinear", [q.output[0], scale, zp], [f"{base}_dequantized"],
                                  name=f"{base}_DequantizeLinear")
            inserted[name] = [q, dq]
            dq_of[name] = dq.output[0]
        return dq_of[name]

    def weight(name: str, axis: int) -> str:
        if name not in dq_of:
            w = numpy_helper.to_array(inits[name]).astype(np.float32)
            q, scale = quantize_weight(w, axis, weight_levels, qtype)
            base = _safe(name)
            qname = add_init(f"{base}_quantized", q)
            sname = add_init(f"{base}_scale", scale)
            zname = add_init(f"{base}_zero_point", qtype.zeros(scale.shape))
            dq = helper.make_node("DequantizeLinear", [qname, sname, zname], [f"{base}_dequantized"],
                                  name=f"{base}_DequantizeLinear", axis=axis)
            inserted.setdefault("", []).append(dq)
            dq_of[name] = dq.output[0]
        return dq_of[name]

    for t in targets:
        node = by_name[t.node]
        for i, name in enumerate(node.input):
            if name in t.activations:
                node.input[i] = activation(name)
        if t.weight is not None:
            node.input[1] = weight(t.weight, t.axis)
    # Weights' DQs go first; activation Q/DQ right after the producing node (topological order kept).
    nodes = list(inserted.get("", []))
    graph_inputs = {i.name for i in graph.input}
    for name in graph_inputs:
        nodes += inserted.get(name, [])
    for n in graph.node:
        nodes.append(n)
        for o in n.output:
            nodes += inserted.get(o, [])
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(new_inits)
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return out


def _safe(name: str) -> str:
    return name.replace(":", "_").replace("/", "_")
