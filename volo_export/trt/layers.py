"""The engine's layers and their precisions, from the builder's DETAILED layer table. Pure: no TensorRT.

With `config.profiling_verbosity = ProfilingVerbosity.DETAILED` the builder logs, at VERBOSE level
and once per build, a message that starts "Layers:" and holds one line per engine layer
(TensorRT-RTX 1.7.1, shortened):

    Name: node_linear_6_myl0_39, LayerType: gemm, Inputs: [ { Name: t, Dimensions: [-1,64], Strides: [64,1],
    StrideOrder: [1,0], Datatype: Int8, Format: (Linear) Row major linear format }], Constants: [ { ...
    Datatype: Int8 ... }], Outputs: [ { ... Datatype: Float ... }], TacticName: __myelin_CASK_STUB,
    StreamId: 0, Metadata: [ONNX Layer: node_linear_6][ONNX Layer: view_18_DequantizeLinear]

then "I/O Tensors:" and "Engine Metadata:" sections. `Metadata` names every ONNX node fused into
the layer. Values hold commas inside brackets, so fields are split at bracket depth 0; a field
that is missing reads as empty, so a format change degrades the report, never raises.

A math layer computes in the narrowest type among its data inputs and its weights (constants of
rank >= 2): a DQ-fused INT8 GEMM reads Int8 activations and Int8 weights and writes Float.
`layer_report` maps the layers back to the graph's MatMul/Gemm/Conv nodes: a node runs in the
precision of the first math layer whose metadata names it, and is compared with the precision
its weight has in the graph (INT8 Q/DQ, float16, float32).

The mix a user reads (and the INT8/FP8 layer-mix bar checks, `tolerances.MAX_FLOAT32_INPUT_FRACTION`):
layers per precision, how many take a float32 input, how many are Myelin `runtime_fusion` kernels,
the precision of every attention GEMM (a MatMul of two activations: `q·kᵀ`, `attn·v`), and the
activation traffic per image: the bytes of every layer's input and output tensors (constants
excluded, a dynamic batch counted as 1), a proxy for the memory-bound part of the engine's time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

_FIELDS = ("Name", "LayerType", "Inputs", "Constants", "Outputs", "TacticName", "StreamId", "Metadata")
_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]*)\]")
_TENSOR_NAME = re.compile(r"Name: ([^,]*)")
_DIMS = re.compile(r"Dimensions: \[([^\]]*)\]")
_DTYPE = re.compile(r"Datatype: ([A-Za-z0-9]+)")

# TensorRT data type names in the table -> short precision names; the order is narrow to wide.
DTYPES = {"Int4": "int4", "FP4": "fp4", "FP8": "fp8", "Int8": "int8", "Half": "fp16", "BFloat16": "bf16",
          "Float": "fp32"}
_WIDTH = {p: i for i, p in enumerate(("int4", "fp4", "fp8", "int8", "fp16", "bf16", "fp32"))}
# Bytes per element of every data type the table spells (sub-byte types as fractions).
BYTES = {"Int4": 0.5, "FP4": 0.5, "FP8": 1, "Int8": 1, "UInt8": 1, "Bool": 1, "Half": 2, "BFloat16": 2,
         "Float": 4, "Int32": 4, "Int64": 8}
NO_MATH = "n/a"  # layers without float/int8 data (shape plumbing) and nodes no math layer carries

WEIGHTED_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
# Layer types that are a GEMM or a convolution (TensorRT-RTX's Myelin names and TensorRT's, lowercased).
_KIND_OF_TYPE = {"gemm": "GEMM", "matrixmultiply": "GEMM", "fullyconnected": "GEMM", "correlation": "CONV",
                 "convolution": "CONV", "deconvolution": "CONV"}


@dataclass(frozen=True)
class Tensor:
    name: str
    dims: tuple[int, ...]
    dtype: str  # as the table spells it: Float, Half, Int8, ...


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    inputs: tuple[Tensor, ...] = ()
    constants: tuple[Tensor, ...] = ()
    outputs: tuple[Tensor, ...] = ()
    onnx_nodes: tuple[str, ...] = ()

    @property
    def precision(self) -> str:
        """The narrowest float/int8 type among data inputs and weights (outputs ignored), short name."""
        types = [DTYPES[t.dtype] for t in self.inputs + tuple(c for c in self.constants if len(c.dims) >= 2)
                 if t.dtype in DTYPES]
        return min(types, key=_WIDTH.__getitem__) if types else NO_MATH

    @property
    def fused_attention(self) -> bool:
        """A multi-head-attention kernel the builder generated from `q·kᵀ`, softmax and `attn·v`
        (TensorRT-RTX names it `_gemm_mha...`)."""
        return "_mha" in self.name

    @property
    def float32_input(self) -> bool:
        """True when any data input is float32 (the layer reads 4-byte floats)."""
        return any(t.dtype == "Float" for t in self.inputs)

    @property
    def traffic(self) -> float:
        """Bytes of the layer's input and output tensors for one image (a dynamic dimension counted as 1)."""
        return sum(BYTES.get(t.dtype, 4) * _elements(t.dims) for t in self.inputs + self.outputs)

    def kind(self, weighted: frozenset[str] = frozenset()) -> str:
        """GEMM, CONV or OTHER. A Myelin `runtime_fusion` is a GEMM when its generated name has an `Fc`
        (fully connected) step or it carries one of the graph's `weighted` MatMul/Gemm nodes; a fused
        attention kernel is a GEMM."""
        kind = _KIND_OF_TYPE.get(self.type.lower())
        if kind:
            return kind
        if self.fused_attention:
            return "GEMM"
        if self.type == "runtime_fusion" and ("Fc" in self.name.removeprefix("__myl_")
                                              or weighted.intersection(self.onnx_nodes)):
            return "GEMM"
        return "OTHER"


def _elements(dims: tuple[int, ...]) -> int:
    count = 1
    for d in dims:
        count *= max(d, 1)
    return count


def _split_fields(line: str) -> dict[str, str]:
    """'Name: a, LayerType: b, Inputs: [ ... ], ...' -> {field: raw value}, commas inside [] {} kept."""
    fields: dict[str, str] = {}
    depth, start, key = 0, 0, None
    for i, ch in enumerate(line + ","):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = line[start:i].strip()
            name, sep, value = part.partition(":")
            if sep and name in _FIELDS:
                key, fields[name] = name, value.strip()
            elif key is not None:
                fields[key] += "," + part
            start = i + 1
    return fields


def _tensors(raw: str) -> tuple[Tensor, ...]:
    """'[ { Name: x, Dimensions: [..], ..., Datatype: Half, ... }, { ... }]' -> Tensors."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(raw):
        if ch == "{":
            depth += 1
            start = i + 1 if depth == 1 else start
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                body = raw[start:i]
                name, dims, dtype = _TENSOR_NAME.search(body), _DIMS.search(body), _DTYPE.search(body)
                out.append(Tensor(name.group(1).strip() if name else "",
                                  tuple(int(d) for d in dims.group(1).split(",") if d.strip().lstrip("-").isdigit())
                                  if dims else (), dtype.group(1) if dtype else "unknown"))
    return tuple(out)


def parse_layer_table(text: str) -> list[Layer]:
    """The builder's "Layers:" message -> one Layer per table line, in engine order."""
    layers, inside = [], False
    for line in text.splitlines():
        if line.strip() == "Layers:":
            inside = True
        elif inside and line.startswith("Name: "):
            f = _split_fields(line)
            layers.append(Layer(f.get("Name", ""), f.get("LayerType", "unknown"), _tensors(f.get("Inputs", "")),
                                _tensors(f.get("Constants", "")), _tensors(f.get("Outputs", "")),
                                tuple(_ONNX_LAYER.findall(f.get("Metadata", "")))))
        elif inside and (not line.strip() or line.startswith("I/O Tensors:")):
            break
    return layers


# ----------------------------------------------------------------------- the graph side


@dataclass(frozen=True)
class WeightedNode:
    """A MatMul/Gemm/Conv whose weight (input 1) is a constant, and that weight's precision in the graph:
    int8 or fp8 (behind a DequantizeLinear: stored quantised, or a float constant through QuantizeLinear
    as NVIDIA ModelOpt writes it), fp16 or fp32."""

    op_type: str
    weight: str


_WEIGHT_PATH = ("DequantizeLinear", "QuantizeLinear", "Cast", "Transpose", "Reshape", "Identity")


def _quantised_type(dq, producer: dict, init_types: dict[str, int]) -> str:
    """The precision a DequantizeLinear's input holds: its initializer's type, or the type its QuantizeLinear
    writes (zero point's type, else `output_dtype`, else ONNX's default uint8)."""
    from onnx import TensorProto

    names = {TensorProto.INT8: "int8", TensorProto.UINT8: "int8", TensorProto.FLOAT8E4M3FN: "fp8",
             TensorProto.FLOAT8E5M2: "fp8", TensorProto.INT4: "int4", TensorProto.UINT4: "int4"}
    source = dq.input[0]
    if source in init_types:
        return names.get(init_types[source], "int8")
    q = producer.get(source)
    if q is not None and q.op_type == "QuantizeLinear":
        if len(q.input) > 2 and q.input[2] in init_types:
            return names.get(init_types[q.input[2]], "int8")
        out = next((a.i for a in q.attribute if a.name == "output_dtype"), 0)
        return names.get(out, "int8")
    return "int8"


def weighted_nodes(model) -> dict[str, WeightedNode]:
    """{node name: WeightedNode} of an ONNX ModelProto's main graph (external data is not needed)."""
    from onnx import TensorProto

    graph = model.graph
    init_types = {t.name: t.data_type for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    short = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}
    out = {}
    for node in graph.node:
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2:
            continue
        name, quantised = node.input[1], None
        for _ in range(5):  # the weight may reach the node through a (Q and) DQ and a Transpose/Reshape
            if name in init_types or name not in producer or producer[name].op_type not in _WEIGHT_PATH:
                break
            if producer[name].op_type == "DequantizeLinear" and quantised is None:
                quantised = _quantised_type(producer[name], producer, init_types)
            name = producer[name].input[0]
        if name in init_types:
            out[node.name] = WeightedNode(node.op_type, quantised or short.get(init_types[name], "fp32"))
    return out


def attention_matmuls(model, weighted: dict[str, WeightedNode] | None = None) -> list[str]:
    """The MatMul nodes of `model` with no constant weight: products of two activations (attention
    `q·kᵀ` and `attn·v`), in graph order. `weighted`: `weighted_nodes(model)` when the caller has it."""
    weighted = weighted_nodes(model) if weighted is None else weighted
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name not in weighted]


# ----------------------------------------------------------------------------- the report


@dataclass
class LayerReport:
    """An engine's layers by kind and precision, every weighted node's precision (in the graph and in the
    engine), every attention GEMM's precision in the engine, and the mix a user reads (module docstring)."""

    layers: int
    by_kind: dict[str, dict[str, int]]  # GEMM / CONV / OTHER -> {precision: layers}
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> {op_type, graph, engine}
    float_ops: dict[str, int] = field(default_factory=dict)  # ONNX op types inside fp32 layers
    by_precision: dict[str, int] = field(default_factory=dict)  # every layer by precision
    float32_input: int = 0  # layers with a float32 data input
    fused: int = 0  # Myelin runtime_fusion layers
    fused_attention: int = 0  # multi-head-attention kernels
    traffic_bytes: float = 0.0  # activation traffic of one image
    attention: dict[str, str] = field(default_factory=dict)  # attention MatMul -> engine precision

    def wider_than_graph(self) -> list[str]:
        """Weighted nodes the engine runs in a wider type than their weight has in the graph (an INT8 node
        that became an fp32 layer), or in no math layer at all."""
        return [n for n, d in self.nodes.items()
                if d["engine"] == NO_MATH or _WIDTH.get(d["engine"], 99) > _WIDTH.get(d["graph"], 99)]

    def counts(self, graph: str) -> tuple[int, int]:
        """(how many of the nodes whose weight is `graph` run in exactly that precision, how many there are)."""
        mine = [d for d in self.nodes.values() if d["graph"] == graph]
        return sum(d["engine"] == graph for d in mine), len(mine)

    @property
    def float32_input_fraction(self) -> float:
        return self.float32_input / self.layers if self.layers else 0.0

    def float32_attention(self) -> list[str]:
        """Attention GEMMs the engine runs in float32 (or in no math layer it names)."""
        return [n for n, p in self.attention.items() if p in ("fp32", NO_MATH)]

    def mix(self) -> str:
        """One line: layers per precision, float32 input, fused kernels, attention GEMMs, traffic, e.g.
        'int8 93, fp16 158, fp32 31; float32 input 31 of 292 (10.6 %); 3 fused, 0 attention kernels;
        attention GEMMs fp16 32; activation traffic 103.0 MB/image'. A sidecar written before the mix was recorded has none to show."""
        if not self.by_precision:
            return "not recorded (the sidecar predates the layer mix)"
        parts = ", ".join(f"{p} {c}" for p, c in _ordered(self.by_precision) if p != NO_MATH)
        line = (f"{parts}; float32 input {self.float32_input} of {self.layers} "
                f"({100 * self.float32_input_fraction:.1f} %); {self.fused} fused, {self.fused_attention} attention kernels")
        if self.attention:
            line += "; attention GEMMs " + ", ".join(f"{p} {c}" for p, c in _ordered(Counter(self.attention.values())))
        return line + f"; activation traffic {self.traffic_bytes / 1e6:.1f} MB/image"

    def summary(self) -> str:
        """One line, e.g. '124 layers: GEMM int8 24 / fp32 16, CONV int8 5, other 79; MatMul/Gemm/Conv:
        int8 29 of 34 (not int8: node_linear_5, ...)'."""
        parts = []
        for kind in ("GEMM", "CONV"):
            if self.by_kind.get(kind):
                parts.append(f"{kind} " + " / ".join(f"{p} {c}" for p, c in _ordered(self.by_kind[kind])))
        parts.append(f"other {sum(self.by_kind.get('OTHER', {}).values())}")
        line = f"{self.layers} layers: {', '.join(parts)}"
        graph_precisions = sorted({d["graph"] for d in self.nodes.values()}, key=lambda p: _WIDTH.get(p, 99))
        if graph_precisions:
            line += "; MatMul/Gemm/Conv: " + ", ".join("{} {} of {}".format(p, *self.counts(p))
                                                       for p in graph_precisions)
        wide = self.wider_than_graph()
        if wide:
            line += f" (wider in the engine: {', '.join(wide[:4])}{f' +{len(wide) - 4}' if len(wide) > 4 else ''})"
        return line

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LayerReport":
        """From `to_dict` output; sidecars written before the mix was recorded read with its fields empty."""
        return cls(int(d["layers"]), {k: dict(v) for k, v in d["by_kind"].items()},
                   {k: dict(v) for k, v in d.get("nodes", {}).items()}, dict(d.get("float_ops", {})),
                   {k: int(v) for k, v in d.get("by_precision", {}).items()}, int(d.get("float32_input", 0)),
                   int(d.get("fused", 0)), int(d.get("fused_attention", 0)), float(d.get("traffic_bytes", 0.0)),
                   {k: str(v) for k, v in d.get("attention", {}).items()})


def _ordered(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: _WIDTH.get(kv[0], 99))


def layer_report(layers: list[Layer], weighted: dict[str, WeightedNode], op_types: dict[str, str],
                 attention: Sequence[str] = ()) -> LayerReport:
    """The report for an engine's `layers`, given the graph's weighted nodes, every node's op type and its
    attention MatMuls (`attention_matmuls`)."""
    names = frozenset(weighted) | frozenset(attention)
    by_kind: dict[str, Counter] = {}
    engine: dict[str, str] = {}
    float_ops: Counter = Counter()
    for layer in layers:
        kind, precision = layer.kind(names), layer.precision
        by_kind.setdefault(kind, Counter())[precision] += 1
        if kind != "OTHER":
            for node in layer.onnx_nodes:
                engine.setdefault(node, precision)
        if precision == "fp32":
            float_ops.update({op_types[n] for n in layer.onnx_nodes if n in op_types})
    nodes = {n: {"op_type": w.op_type, "graph": w.weight, "engine": engine.get(n, NO_MATH)}
             for n, w in weighted.items()}
    return LayerReport(len(layers), {k: dict(v) for k, v in sorted(by_kind.items())}, nodes,
                       dict(float_ops.most_common()), dict(Counter(layer.precision for layer in layers)),
                       sum(layer.float32_input for layer in layers),
                       sum(layer.type == "runtime_fusion" for layer in layers),
                       sum(layer.fused_attention for layer in layers),
                       float(sum(layer.traffic for layer in layers)),
                       {n: engine.get(n, NO_MATH) for n in attention})
