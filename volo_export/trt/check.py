"""Will TensorRT's ONNX parser take this graph? An offline answer, without TensorRT.

Every node is checked against the parser's operator table (onnx-tensorrt
`docs/operators.md`, TensorRT 10.15; 11.x adds opset 25) and the restrictions
written there and in the parser's importers: Col2Im and the QOperator ops are
rejected outright, Reduce axes initializers, Squeeze/Unsqueeze axes resolvable
constants, LayerNormalization and MaxPool only their first output, Q/DQ
symmetric (zero point 0) with INT8/FP8 E4M3/INT4/FP4 data, per-channel scales on
the right axis, a QuantizeLinear's scale in its input's type (float32 or float16;
a DequantizeLinear outputs its scale's type), no int32 bias DequantizeLinear, no
other float8 type anywhere, one float type across the inputs ONNX ties together,
UINT8 only at the network's inputs and outputs. Nodes of a custom domain are what TensorRT looks up as plugins,
unless their op type is a builtin one (the parser dispatches on the op type
alone); ONNX Runtime contrib ops (`com.microsoft`) are not parsed as such.

The rules are held to the real parser by a differential test corpus
(tests/trt/parser_corpus.py: one small graph per rule, run through this check and
through TensorRT-RTX's parser and builder). Where this check is stricter than the
newer parser on purpose, the rule says so; a graph this check passes and the real
parser rejects is a bug.

`check_model(path) -> CheckResult`: findings (error / plugin / warning / info)
with node names, a summary line, a rich table and JSON. `check_artifact` (the
`check` command) adds the real parser's verdict where TensorRT or TensorRT-RTX
is installed (`trt.parser.real_check`).
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from volo_export.errors import TensorRTCheckFailed, UsageError, first_line
from volo_export.passes.graph import GraphIndex, attribute
from volo_export.results import Column, Mark, Table, verdict

# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TrtTarget:
    """What one TensorRT major version's ONNX parser accepts at the graph level."""

    major: int
    opset_min: int
    opset_max: int
    source: str


TRT_VERSIONS = {
    10: TrtTarget(10, 9, 24, "onnx-tensorrt docs/operators.md (TensorRT 10.15): opsets 9-24"),
    11: TrtTarget(11, 9, 25, "TensorRT 11.x: opsets 9-25, same operator table as 10.15"),
}
DEFAULT_TRT = 10  # the stricter target: a graph that passes for 10 passes for 11

# "Y" rows of the operator table (TensorRT 10.15).
SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike
Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign
RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid
Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# QOperator-format quantized ops (ONNX Runtime `quantize_*(quant_format=QOperator)`,
# `quantize_dynamic`): CPU-oriented; TensorRT parses quantization only as Q/DQ pairs.
QOPERATOR_OPS = frozenset("""
QLinearConv QLinearMatMul MatMulInteger ConvInteger DynamicQuantizeLinear QLinearAdd QLinearMul
QLinearSigmoid QLinearLeakyRelu QLinearSoftmax QLinearConcat QLinearWhere QLinearAveragePool
QLinearGlobalAveragePool QLinearReduceMean QGemm QAttention DynamicQuantizeMatMul MatMulIntegerToFloat
DynamicQuantizeLSTM
""".split())

_COL2IM = ("F.fold exports as Col2Im, which TensorRT rejects outright (no plugin fallback); "
           "export with `volo-export onnx` (rewrite on) to get Conv/Slice ops instead")
_QOP = ("QOperator-format quantized op: TensorRT parses INT8 only as QuantizeLinear/DequantizeLinear "
        "pairs; quantize with quant_format=QuantFormat.QDQ")

# "N" rows of the operator table, with the reason where there is more to say.
UNSUPPORTED_OPS: dict[str, str] = {op: "marked unsupported (N) in TensorRT's ONNX operator table" for op in """
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor CenterCropPad Compress
ConcatFromSequence DFT Det ImageDecoder MaxRoiPool MaxUnpool MelWeightMatrix Multinomial
NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement RegexFullMatch SequenceAt
SequenceConstruct SequenceEmpty SequenceErase SequenceInsert SequenceLength SequenceMap
SoftmaxCrossEntropyLoss SplitToSequence StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split()}
UNSUPPORTED_OPS["Col2Im"] = _COL2IM
UNSUPPORTED_OPS.update({op: _QOP for op in ("QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger",
                                            "DynamicQuantizeLinear")})

# ONNX-TensorRT's own ops in the "trt" domain (custom FP8/INT4 Q/DQ).
TRT_DOMAIN_OPS = frozenset("TRT_FP8QuantizeLinear TRT_FP8DequantizeLinear TRT_INT4QuantizeLinear "
                           "TRT_INT4DequantizeLinear".split())
CONTRIB_DOMAINS = frozenset({"com.microsoft", "com.microsoft.nchwc", "com.ms.internal.nhwc"})
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})

# TensorRT quantizes to FP8 E4M3 only ("FP8E4M3 (FP8, 8-bit floating point with 4 exponent and 3 mantissa bits)",
# TensorRT "Working with Quantized Types"); its parser cannot even import an initializer of the other float8
# types (TensorRT-RTX 1.7.1: "Failed to import initializer", measured in tests/trt/parser_corpus.py).
FP8_TYPE = "FLOAT8E4M3FN"
OTHER_FLOAT8_TYPES = ("FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ")
QUANTIZED_TYPES = ("INT8", FP8_TYPE, "INT4", "FLOAT4E2M1")
# ONNX opset 19 brought float8 QuantizeLinear/DequantizeLinear (onnx.checker and ONNX Runtime refuse them before).
FP8_OPSET = 19
# Float types a node's inputs bound to one ONNX type parameter must share: a strongly typed TensorRT network inserts
# no casts ("IMatrixMultiplyLayer must have same input types", "ElementWiseOperation SUM must have same input types").
_FLOAT_TYPES = ("FLOAT", "FLOAT16", "BFLOAT16")

REDUCE_OPS = frozenset("ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin "
                       "ReduceProd ReduceSum ReduceSumSquare".split())
# Ops whose listed input must be resolvable to a constant at build time (index, what it is). TensorRT 10.1
# rejects a Squeeze/Unsqueeze axes or CumSum axis that is computed (even by a foldable Shape subgraph):
# `importSqueeze`: assertIsWeights(inputs.at(1), "Squeeze axes input must be an initializer!"), `importCumSum`:
# "Axis input for CumSum must be an initializer!". TensorRT-RTX 1.7 (and late 10.x) accept both; this check
# keeps the 10.1 rule (tests/trt/parser_corpus.py records the difference).
CONSTANT_INPUTS = {"Squeeze": (1, "axes"), "Unsqueeze": (1, "axes"), "CumSum": (1, "axis"),
                   "OneHot": (1, "depth")}
# Weights the parser takes either way (`importConv`: a tensor weight becomes a multi-input convolution),
# but then the engine cannot be refitted and Q/DQ fusion needs constant weights.
TENSOR_WEIGHTS = {"Conv": 1, "ConvTranspose": 1}
# Ops TensorRT lets a quantized (INT8/FP8/...) tensor pass through between Q and DQ; Cast converts it
# (`importCast` is a plain addCast; strongly typed networks cast from INT8).
QUANTIZED_PASS_THROUGH = frozenset("QuantizeLinear DequantizeLinear Reshape Transpose Identity Squeeze "
                                   "Unsqueeze Flatten Concat Slice Gather Split Expand Cast".split())
RESIZE_MODES = frozenset({"nearest", "linear", "cubic"})
RESIZE_COORDINATE_MODES = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                                     "asymmetric", "align_corners"})
# `importResize`: linear resizes at most the 3 innermost dims, cubic the 2 innermost ("canUseNDResize").
RESIZE_INNER_DIMS = {"linear": 3, "cubic": 2}
# The builder's limit (ITopKLayer: "K exceeds the maximum value allowed (3840)"); K = 3840 builds.
TOPK_MAX_K = 3840
# Ops whose extra outputs TensorRT does not produce (the parser rejects a named one even when unused).
SINGLE_OUTPUT_OPS = frozenset({"LayerNormalization", "MaxPool"})
NONDETERMINISTIC = frozenset("RandomNormal RandomNormalLike RandomUniform RandomUniformLike Multinomial "
                             "Bernoulli".split())


def _dtype_ids() -> dict[str, int]:
    from onnx import TensorProto

    return {name: getattr(TensorProto, name) for name in TensorProto.DataType.keys()}


# ----------------------------------------------------------------------- results

SEVERITIES = ("error", "plugin", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One observation: `error` breaks parsing, `plugin` needs a plugin library, others inform."""

    severity: str
    rule: str
    message: str
    node: str = ""
    op_type: str = ""


@dataclass
class CheckResult:
    """Findings for one ONNX file against one TensorRT major version."""

    model: str
    trt: int
    opset: int | None
    nodes: int
    op_types: dict[str, int]
    inputs: dict[str, list]
    findings: list[Finding] = field(default_factory=list)
    trtexec: str | None = None
    real: object = None  # trt.parser.RealVerdict: the real parser's verdict, when one ran

    @property
    def offline_passed(self) -> bool:
        return not self.errors

    def of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self.of("error")

    @property
    def plugins(self) -> list[str]:
        """Op types that need a plugin library, sorted."""
        return sorted({f.op_type for f in self.of("plugin")})

    @property
    def passed(self) -> bool:
        """Both verdicts: the offline rules and, when it ran, the real parser."""
        return self.offline_passed and (self.real is None or self.real.passed)

    def summary(self) -> str:
        """One line: verdict, counts, dynamic inputs, plugins."""
        dynamic = [f"{name}({', '.join(map(str, dims))})" for name, dims in self.inputs.items()
                   if any(isinstance(d, str) for d in dims)]
        facts = f"opset {self.opset}, {self.nodes} nodes, {len(self.op_types)} op types"
        if dynamic:
            facts += ", dynamic " + " ".join(dynamic)
        if self.offline_passed:
            verdict = f"passes TensorRT {self.trt} ONNX parser rules"
        else:
            rules = Counter(f"{f.op_type or f.rule}" for f in self.errors)
            top = ", ".join(f"{k} x{v}" for k, v in rules.most_common(4))
            verdict = f"{len(self.errors)} TensorRT {self.trt} violation(s) ({top})"
        extra = f"; {len(self.of('warning'))} warning(s)" if self.of("warning") else ""
        if self.plugins:
            extra += f"; needs plugin(s) {', '.join(self.plugins)} (engine --plugins LIB)"
        return f"{self.model}: {verdict}; {facts}{extra}"

    def to_dict(self) -> dict:
        return {"model": self.model, "trt": self.trt, "passed": self.passed, "offline_passed": self.offline_passed,
                "real": self.real.to_dict() if self.real is not None else None, "opset": self.opset,
                "nodes": self.nodes, "op_types": self.op_types, "inputs": self.inputs,
                "counts": {s: len(self.of(s)) for s in SEVERITIES}, "plugins": self.plugins,
                "findings": [asdict(f) for f in self.findings], "trtexec": self.trtexec,
                "summary": self.summary()}

    def tables(self, max_nodes: int = 3) -> list[Table]:
        """One table, one row per (severity, rule, op type) with the first node names."""
        groups: dict[tuple, list[Finding]] = defaultdict(list)
        for f in self.findings:
            groups[(SEVERITIES.index(f.severity), f.rule, f.op_type)].append(f)
        table = Table(f"{self.model}: TensorRT {self.trt} ONNX parser check",
                      [Column(c, "left", c in ("severity", "count"), overflow="fold")
                       for c in ("severity", "rule", "op", "count", "nodes", "finding")],
                      status=verdict(self.offline_passed))
        for (sev, rule, op), items in sorted(groups.items()):
            names = [f.node for f in items if f.node]
            shown = ", ".join(names[:max_nodes]) + (f" (+{len(names) - max_nodes})" if len(names) > max_nodes else "")
            severity = SEVERITIES[sev]
            table.rows.append([Mark(severity, severity), rule, op, str(len(items)), shown,
                               items[0].message + (" (first of several)" if len({i.message for i in items}) > 1
                                                   else "")])
        return [table]


# ----------------------------------------------------------------- graph index


class _GraphIndex(GraphIndex):
    """`passes.graph.GraphIndex` of one (sub)graph with its types and shapes; constants seen from outer graphs too."""

    def __init__(self, graph, types: dict[str, int], shapes: dict[str, tuple], base_dir: Path | None,
                 outer: "_GraphIndex | None" = None, prefix: str = "", opset: int | None = None):
        super().__init__(graph, base_dir)
        self.types, self.shapes, self.prefix = types, shapes, prefix
        self.opset = outer.opset if outer else opset
        if outer:
            self.initializers = {**outer.initializers, **self.initializers}
            self.constant_nodes = {**outer.constant_nodes, **self.constant_nodes}
        self.quantize_outputs = {n.output[0] for n in graph.node if n.op_type == "QuantizeLinear" and n.output}
        self.graph_inputs = {v.name for v in graph.input}
        self.constants = set(self.initializers) | set(self.constant_nodes)
        self.foldable = set(self.constants) | (outer.foldable if outer else set())
        for node in graph.node:  # nodes are topologically sorted in a valid graph
            if (node.op_type not in NONDETERMINISTIC and node.op_type != "Shape" and node.input
                    and all(not i or i in self.foldable for i in node.input)):
                self.foldable.update(o for o in node.output if o)

    def name(self, node, index: int) -> str:
        return self.prefix + (node.name or f"{node.op_type}#{index}")

    def dims(self, name: str) -> tuple | None:
        if name in self.initializers:
            return tuple(self.initializers[name].dims)
        return self.shapes.get(name)

    def elem_type(self, name: str) -> int | None:
        if name in self.initializers:
            return self.initializers[name].data_type
        return self.types.get(name)


def _type_name(elem_type: int | None) -> str:
    from onnx import TensorProto

    return "unknown" if elem_type is None else TensorProto.DataType.Name(elem_type)


# ------------------------------------------------------------------------ rules


def _constant_input_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    op = node.op_type
    if op in REDUCE_OPS and len(node.input) > 1 and node.input[1] and node.input[1] not in g.constants:
        yield Finding("error", "constant-axes", f"{op} axes '{node.input[1]}' is computed at run time; "
                      "TensorRT needs the axes as an initializer", name, op)
    if op in CONSTANT_INPUTS:
        index, what = CONSTANT_INPUTS[op]
        if len(node.input) > index and node.input[index] and node.input[index] not in g.foldable:
            yield Finding("error", "constant-axes", f"{op} {what} '{node.input[index]}' is not a build-time "
                          "constant (initializer, Constant, or DequantizeLinear of one)", name, op)
    if op in TENSOR_WEIGHTS:
        index = TENSOR_WEIGHTS[op]
        if len(node.input) > index and node.input[index] and node.input[index] not in g.foldable:
            yield Finding("warning", "tensor-weights", f"{op} weights '{node.input[index]}' are computed at run "
                          "time: TensorRT builds a multi-input convolution, which cannot be refitted and does not "
                          "fuse Q/DQ into an INT8 layer", name, op)


def _topk_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    # `sorted` is never read by the importer: TensorRT's output is always sorted, which sorted=0 allows.
    k = g.constant(node.input[1]) if len(node.input) > 1 else None
    if k is not None and int(np.max(k)) > TOPK_MAX_K:
        yield Finding("error", "op-restriction", f"TopK K={int(np.max(k))} exceeds TensorRT's maximum of "
                      f"{TOPK_MAX_K}", name, "TopK")
    elif k is None and len(node.input) > 1 and node.input[1] not in g.foldable:
        yield Finding("info", "shape-input", f"TopK K '{node.input[1]}' is a run-time shape tensor: the engine "
                      f"needs its values in the optimization profile (at most {TOPK_MAX_K})", name, "TopK")


def _extra_output_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    """LayerNormalization (Mean, InvStdDev) and MaxPool (Indices) produce only their first output in
    TensorRT. A named extra output is rejected even when nothing reads it (RTX 1.7: "doesn't support more
    than 1 outputs"); an empty name passes the newer parser, but TensorRT 10.1's `parseNode` counts it too
    ("Node has more output tensors than TRT expected")."""
    op = node.op_type
    for extra in node.output[1:]:
        if extra:
            used = "used" if extra in g.consumers or extra in g.outputs else "declared"
            yield Finding("error", "extra-outputs", f"{op} output '{extra}' is {used}; TensorRT produces only "
                          "the first output (drop the extra output names)", name, op)
    if len(node.output) > 1 and not any(node.output[1:]):
        yield Finding("warning", "extra-outputs", f"{op} lists {len(node.output) - 1} empty extra output(s): "
                      "TensorRT 10.1 counts them and rejects the node, newer parsers skip them; drop them",
                      name, op)


def _pool_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    dilations = attribute(node, "dilations")
    if dilations and any(d != 1 for d in dilations):
        yield Finding("error", "op-restriction", f"{node.op_type} dilations {list(dilations)} must be all ones",
                      name, node.op_type)


def _resize_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    mode = attribute(node, "mode", b"nearest").decode()
    coord = attribute(node, "coordinate_transformation_mode", b"half_pixel").decode()
    if mode not in RESIZE_MODES:
        yield Finding("error", "op-restriction",
                      f"Resize mode '{mode}' unsupported ({', '.join(sorted(RESIZE_MODES))})", name, "Resize")
    scales = g.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    inner = RESIZE_INNER_DIMS.get(mode)
    if inner and scales is not None and attribute(node, "axes") is None and np.any(scales.reshape(-1)[:-inner] != 1):
        yield Finding("error", "op-restriction", f"Resize mode '{mode}' scales {scales.tolist()}: TensorRT resizes "
                      f"only the {inner} innermost dimensions in this mode", name, "Resize")
    if coord not in RESIZE_COORDINATE_MODES:
        yield Finding("error", "op-restriction", f"Resize coordinate_transformation_mode '{coord}' unsupported",
                      name, "Resize")
    if attribute(node, "antialias", 0):
        yield Finding("error", "op-restriction", "Resize antialias is unsupported", name, "Resize")
    policy = attribute(node, "keep_aspect_ratio_policy", b"stretch").decode()
    if policy != "stretch":
        yield Finding("error", "op-restriction", f"Resize keep_aspect_ratio_policy '{policy}' unsupported",
                      name, "Resize")


def _dropout_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    if len(node.input) > 2 and node.input[2]:
        mode = g.constant(node.input[2])
        if mode is None or bool(np.any(mode)):
            yield Finding("error", "op-restriction", "Dropout training_mode must be an initializer equal to False",
                          name, "Dropout")


def _constant_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    bad = {a.name for a in node.attribute} & {"sparse_value", "value_string", "value_strings"}
    if bad:
        yield Finding("error", "op-restriction", f"Constant attribute {sorted(bad)[0]} is unsupported", name,
                      "Constant")


def _scatternd_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    reduction = attribute(node, "reduction", None)
    if reduction is not None and reduction.decode() != "none":
        yield Finding("error", "op-restriction", f"ScatterND reduction '{reduction.decode()}' unsupported", name,
                      "ScatterND")
    elif reduction is not None:  # 10.1 `importScatterND`: ASSERT_NODE(!attrs.count("reduction"), ...)
        yield Finding("warning", "op-restriction", "ScatterND with an explicit reduction='none' attribute: TensorRT "
                      "10.1 rejects any reduction attribute (newer parsers accept 'none'); drop the attribute",
                      name, "ScatterND")


# The parser's answer to UINT8 Q/DQ (10.1 `QuantDequantLinearHelper`, RTX 1.7 alike): a warning, then INT8.
_UINT8_AS_INT8 = ("TensorRT quantizes to INT8 instead (a warning in its parser): negatives are kept and values "
                  "clip at 127, not 255, so results differ from ONNX's uint8; quantize to int8 "
                  "(QuantType.QInt8, ActivationSymmetric/WeightSymmetric)")


# Where a weighted op wants per-channel weight scales: (input index, axis as a function of weight rank).
_WEIGHT_AXIS = {"Conv": lambda rank, node: 0, "ConvTranspose": lambda rank, node: 1,
                "MatMul": lambda rank, node: rank - 1,
                "Gemm": lambda rank, node: 0 if attribute(node, "transB", 0) else 1}


_QUANTIZED_NAMES = "INT8, FP8 E4M3 (float8e4m3fn), INT4 or FP4"


def _qdq_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    t = _dtype_ids()
    op, is_dq = node.op_type, node.op_type == "DequantizeLinear"
    allowed = {t[n] for n in QUANTIZED_TYPES if n in t}
    float8 = {t[n] for n in (FP8_TYPE, *OTHER_FLOAT8_TYPES) if n in t}
    x, scale = node.input[0], node.input[1] if len(node.input) > 1 else ""
    zero = node.input[2] if len(node.input) > 2 else ""
    # A Q output's type is what TensorRT chose for the Q (int8 when ONNX would say uint8): judged at the Q.
    x_type = None if x in g.quantize_outputs else g.elem_type(x)
    if is_dq and x_type == t["INT32"]:
        yield Finding("error", "qdq-int32-bias", f"DequantizeLinear of int32 '{x}' (quantized bias): TensorRT "
                      "dequantizes only INT8/FP8/INT4/FP4; keep biases float (QuantizeBias=False)", name, op)
    elif is_dq and x_type == t["UINT8"]:
        yield Finding("warning", "qdq-uint8", f"DequantizeLinear of uint8 '{x}': {_UINT8_AS_INT8}", name, op)
    elif is_dq and x_type is not None and x_type not in allowed:
        yield Finding("error", "qdq-type", f"DequantizeLinear input '{x}' is {_type_name(x_type)}; TensorRT "
                      f"dequantizes {_QUANTIZED_NAMES} only", name, op)
    quantized = x_type if is_dq else None
    if not is_dq:
        zero_type = g.elem_type(zero) if zero else None
        declared = attribute(node, "output_dtype") or None
        quantized = zero_type if zero_type is not None else declared
        if zero_type is not None and declared is not None and declared != zero_type:
            yield Finding("error", "qdq-type", f"QuantizeLinear output_dtype {_type_name(declared)} differs from its "
                          f"zero point's type {_type_name(zero_type)} (ONNX and TensorRT's parser reject it)", name, op)
        elif quantized == t["UINT8"]:
            yield Finding("warning", "qdq-uint8", f"QuantizeLinear to uint8: {_UINT8_AS_INT8}", name, op)
        elif quantized is None and not zero:
            yield Finding("warning", "qdq-implicit-uint8", "QuantizeLinear without zero point: ONNX semantics are "
                          "uint8 (ONNX Runtime clips negatives) but TensorRT uses int8; give an int8 zero point",
                          name, op)
        elif quantized is not None and quantized not in allowed:
            yield Finding("error", "qdq-type", f"QuantizeLinear to {_type_name(quantized)}: TensorRT quantizes to "
                          f"{_QUANTIZED_NAMES} only", name, op)
        yield from _quantize_scale_type(node, g, name, quantized)
    if quantized in float8 and g.opset is not None and g.opset < FP8_OPSET:
        yield Finding("warning", "qdq-opset", f"float8 {op} in opset {g.opset}: ONNX defines float8 Q/DQ from opset "
                      f"{FP8_OPSET} (onnx.checker and ONNX Runtime refuse the graph; TensorRT's parser takes it); "
                      f"re-export with opset >= {FP8_OPSET}", name, op)
    if zero:
        zp = g.constant(zero)
        if zp is None:
            yield Finding("warning", "qdq-zero-point", f"zero point '{zero}' is not a constant; TensorRT needs "
                          "all-zero zero points", name, op)
        elif np.any(zp.astype(np.float64) != 0):
            nz = zp.reshape(-1)[np.flatnonzero(zp.reshape(-1))[0]]
            # onnx-tensorrt `QuantDequantLinearHelper` checks the zero point only when the type is not FP8 and
            # never passes an FP8 one on: the graph builds and the engine silently computes without it.
            why = ("TensorRT's parser ignores an FP8 zero point, so the engine would compute without it and "
                   "differ from ONNX Runtime" if g.elem_type(zero) == t[FP8_TYPE]
                   else "TensorRT supports only symmetric quantization")
            yield Finding("error", "qdq-zero-point", f"zero point '{zero}' is not 0 (e.g. {float(nz):g}): {why}",
                          name, op)
    scale_value = g.constant(scale) if scale else None
    if scale and scale_value is None and scale not in g.foldable:
        yield Finding("warning", "qdq-scale", f"scale '{scale}' is computed at run time; TensorRT expects "
                      "constant scales", name, op)
    if scale_value is None:
        return
    if np.any(scale_value.astype(np.float64) <= 0):
        yield Finding("error", "qdq-scale", f"scale '{scale}' has non-positive values", name, op)
    if zero and (zp := g.constant(zero)) is not None and zp.size != scale_value.size:
        yield Finding("error", "qdq-axis", f"zero point has {zp.size} values, scale {scale_value.size}", name, op)
    if scale_value.size > 1:
        yield from _per_channel_rules(node, g, name, scale_value)


def _quantize_scale_type(node, g: _GraphIndex, name: str, quantized: int | None) -> Iterator[Finding]:
    """A QuantizeLinear's scale narrower than its input (a float16 or bfloat16 scale on a float32 tensor; ONNX allows
    it from opset 23). Below opset 19 TensorRT's parser casts the scale to the input's type itself. Measured with
    TensorRT-RTX 1.7.1: an FP8 Q of that kind does not build ("Could not infer output types for operation: quantize
    ... No matching rules"); an INT8 one builds as a fused cast-and-GEMM kernel. A wider scale (float32 on float16)
    builds as a plain FP8/INT8 GEMM."""
    if len(node.input) < 2 or not node.input[1] or g.opset is None or g.opset < FP8_OPSET:
        return
    t = _dtype_ids()
    x_type, s_type = g.elem_type(node.input[0]), g.elem_type(node.input[1])
    if x_type != t["FLOAT"] or s_type not in (t["FLOAT16"], t["BFLOAT16"]):
        return
    what = f"scale '{node.input[1]}' is {_float_name(s_type)} but input '{node.input[0]}' is float32"
    if quantized == t[FP8_TYPE]:
        yield Finding("error", "qdq-scale-type", f"{what}: TensorRT cannot build an FP8 quantize from float32 with a "
                      "narrower scale; give the scale the input's type (float16 scales go with float16 tensors)",
                      name, node.op_type)
    else:
        yield Finding("warning", "qdq-scale-type", f"{what}: TensorRT casts the input to the scale's type first (a fused "
                      "cast kernel instead of a plain quantised GEMM); give the scale the input's type", name,
                      node.op_type)


def _float_name(elem: int) -> str:
    """FLOAT -> 'float32', FLOAT16 -> 'float16', BFLOAT16 -> 'bfloat16'."""
    name = _type_name(elem).lower()
    return "float32" if name == "float" else name


@functools.lru_cache(maxsize=None)
def _schema(op: str, opset: int):
    """ONNX's schema of `op` at `opset` (None: no such operator)."""
    import onnx

    try:
        return onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return None


def _tied_type_rules(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    """Inputs ONNX binds to one type parameter (MatMul A and B, Add, Concat, Conv X and W, ...) must share their
    float type: TensorRT's strongly typed network casts nothing and its parser rejects the node. The usual cause in a
    quantised graph is a DequantizeLinear with a float16 scale (it outputs float16) meeting a float32 tensor."""
    if node.domain not in STANDARD_DOMAINS or node.op_type in ("QuantizeLinear", "DequantizeLinear") or g.opset is None:
        return
    schema = _schema(node.op_type, g.opset)
    if schema is None or not schema.inputs:
        return
    t = _dtype_ids()
    floats = {t[n] for n in _FLOAT_TYPES}
    params = {c.type_param_str for c in schema.type_constraints}
    formal = [i.type_str for i in schema.inputs]
    formal += [formal[-1]] * max(0, len(node.input) - len(formal))  # a variadic last input (Concat, Sum, ...)
    seen: dict[str, tuple[str, int]] = {}
    for x, param in zip(node.input, formal):
        elem = g.elem_type(x) if x else None
        if param not in params or elem not in floats:
            continue
        first = seen.setdefault(param, (x, elem))
        if first[1] != elem:
            dq = any(g.producer.get(v) is not None and g.producer[v].op_type == "DequantizeLinear" for v in (first[0], x))
            hint = ("; a DequantizeLinear outputs its scale's type: give the scales feeding this node one float type"
                    if dq else "")
            yield Finding("error", "mixed-types", f"{node.op_type} reads {_float_name(first[1])} '{first[0]}' and "
                          f"{_float_name(elem)} '{x}': ONNX gives them one type and TensorRT's strongly typed network "
                          f"casts nothing{hint}", name, node.op_type)
            return


def _per_channel_rules(node, g: _GraphIndex, name: str, scale: np.ndarray) -> Iterator[Finding]:
    op, x = node.op_type, node.input[0]
    dims = g.dims(x)
    if x not in g.foldable:
        yield Finding("error", "qdq-per-channel-activation", f"per-channel scale ({scale.size} values) on activation "
                      f"'{x}': TensorRT quantizes activations per tensor only", name, op)
        return
    if dims is None:
        return
    rank = len(dims)
    axis = attribute(node, "axis", 1)
    axis = axis + rank if axis < 0 else axis
    if scale.ndim > 1:  # block quantization: one blocked axis, TensorRT's INT4 weight path
        return
    if not 0 <= axis < rank or dims[axis] != scale.size:
        yield Finding("error", "qdq-axis", f"per-channel scale has {scale.size} values but axis {axis} of '{x}' "
                      f"{list(dims)} does not match", name, op)
        return
    if op != "DequantizeLinear":
        return
    readers = {id(n): n for n in g.consumers.get(node.output[0], [])}.values()
    for consumer, index in ((n, i) for n in readers for i, x in enumerate(n.input) if x == node.output[0]):
        rule = _WEIGHT_AXIS.get(consumer.op_type)
        if rule and index == 1 and axis != (want := rule(rank, consumer)):
            # Conv: the parser assumes KCRS weights quantized on K; elsewhere TensorRT may only fuse worse.
            severity = "error" if consumer.op_type == "Conv" else "warning"
            yield Finding(severity, "qdq-axis", f"weights of {consumer.op_type} '{consumer.name}' are quantized "
                          f"on axis {axis}; TensorRT wants the output-channel axis {want}", name, op)


_NODE_RULES = {
    "TopK": (_topk_rules,), "LayerNormalization": (_extra_output_rules,), "MaxPool": (_pool_rules, _extra_output_rules),
    "AveragePool": (_pool_rules,), "LpPool": (_pool_rules,), "Resize": (_resize_rules,),
    "Dropout": (_dropout_rules,), "Constant": (_constant_rules,), "ScatterND": (_scatternd_rules,),
    "QuantizeLinear": (_qdq_rules,), "DequantizeLinear": (_qdq_rules,),
}


def _op_support(node, name: str) -> Finding | None:
    """Table lookup by (domain, op type): None when the op is supported (rules run next)."""
    import onnx

    op, domain = node.op_type, node.domain
    if domain in STANDARD_DOMAINS:
        if op in SUPPORTED_OPS:
            return None
        if op in UNSUPPORTED_OPS:
            rule = "col2im" if op == "Col2Im" else "qoperator" if op in QOPERATOR_OPS else "unsupported-op"
            return Finding("error", rule, f"{op}: {UNSUPPORTED_OPS[op]}", name, op)
        if onnx.defs.has(op):
            return Finding("error", "unsupported-op", f"{op} is not in TensorRT's ONNX operator table", name, op)
        return _plugin(node, name)
    if domain in CONTRIB_DOMAINS:
        if op in QOPERATOR_OPS:
            return Finding("error", "qoperator", f"{domain}.{op}: {_QOP}", name, op)
        also = (f"; its parser would import it as the standard {op} (it ignores the domain), whose semantics may "
                "differ") if op in SUPPORTED_OPS else ""
        return Finding("error", "contrib-op", f"{domain}.{op} is an ONNX Runtime contrib op, not parsed by "
                       f"TensorRT as such (was an ORT-optimized graph saved?){also}", name, op)
    if domain == "ai.onnx.ml":
        return Finding("error", "unsupported-op", f"ai.onnx.ml.{op}: TensorRT does not parse ONNX-ML ops", name, op)
    if domain == "trt" and op in TRT_DOMAIN_OPS:
        return None
    if op in SUPPORTED_OPS:  # `parseNode` dispatches on the op type only: a builtin name is never a plugin
        return Finding("warning", "builtin-name", f"{domain}.{op}: TensorRT's parser ignores the domain and imports "
                       f"the builtin {op} (no plugin lookup); give plugin ops a name that is not an ONNX op",
                       name, op)
    return _plugin(node, name)


def _plugin(node, name: str) -> Finding:
    version = attribute(node, "plugin_version", b"1")
    namespace = attribute(node, "plugin_namespace", b"")
    version = version.decode() if isinstance(version, bytes) else str(version)
    namespace = namespace.decode() if isinstance(namespace, bytes) else str(namespace)
    where = f"namespace '{namespace}'" if namespace else f"namespace '' or '{node.domain}'"
    return Finding("plugin", "needs-plugin", f"needs plugin {node.op_type}: TensorRT looks up creator "
                   f"'{node.op_type}' version '{version}' in {where}; pass --plugins LIB to volo-export engine",
                   name, node.op_type)


def _walk(g: _GraphIndex, functions: dict, counts: Counter, stack: tuple = ()) -> Iterator[Finding]:
    """Findings for every node of `g`, its subgraphs and the local functions it calls."""
    from onnx import AttributeProto

    for i, node in enumerate(g.graph.node):
        name = g.name(node, i)
        counts[node.op_type] += 1
        key = (node.domain, node.op_type)
        if key in functions and key not in stack:
            yield from _walk_function(functions[key], functions, counts, stack + (key,), name + "/")
            continue
        support = _op_support(node, name)
        if support:
            yield support
        if support is None or support.severity == "warning":  # imported as a builtin: its rules apply
            yield from _constant_input_rules(node, g, name)
            yield from _tied_type_rules(node, g, name)
            for rule in _NODE_RULES.get(node.op_type, ()):
                yield from rule(node, g, name)
        yield from _quantized_inputs(node, g, name)
        for attr in node.attribute:
            subs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
            for sub in subs if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) else []:
                inner = _GraphIndex(sub, g.types, g.shapes, g.base_dir, outer=g, prefix=f"{name}/{attr.name}/")
                yield from _walk(inner, functions, counts, stack)


def _walk_function(function, functions: dict, counts: Counter, stack: tuple, prefix: str) -> Iterator[Finding]:
    """A local function's body: op support and domains only (its inputs are formal parameters)."""
    for i, node in enumerate(function.node):
        counts[node.op_type] += 1
        key = (node.domain, node.op_type)
        if key in functions and key not in stack:
            yield from _walk_function(functions[key], functions, counts, stack + (key,), f"{prefix}{node.name}/")
        elif finding := _op_support(node, prefix + (node.name or f"{node.op_type}#{i}")):
            yield finding


def _quantized_inputs(node, g: _GraphIndex, name: str) -> Iterator[Finding]:
    if node.op_type in QUANTIZED_PASS_THROUGH or node.op_type in QOPERATOR_OPS:
        return
    t = _dtype_ids()
    quantized = {t[n] for n in ("INT8", "FLOAT8E4M3FN", "INT4", "FLOAT4E2M1") if n in t}
    for x in node.input:
        if x and g.elem_type(x) in quantized:
            yield Finding("error", "quantized-tensor", f"{_type_name(g.elem_type(x))} tensor '{x}' feeds "
                          f"{node.op_type}: TensorRT uses quantized types only between QuantizeLinear and "
                          "DequantizeLinear", name, node.op_type)


def _type_rules(model, g: _GraphIndex) -> Iterator[Finding]:
    """UINT8 only as network I/O; no strings; no float8 but E4M3 (float8e4m3fn); DOUBLE is cast down."""
    t = _dtype_ids()
    io = g.graph_inputs | g.outputs
    producers = {o: (n.name or n.op_type) for n in model.graph.node for o in n.output}
    qdq_inputs = {i for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                  for i in n.input[1:]}  # zero points and scales: judged by the Q/DQ rules
    dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input}
    other_float8 = {t[n] for n in OTHER_FLOAT8_TYPES if n in t}
    for tensor, elem in sorted(g.types.items()):
        if tensor in io or tensor in g.quantize_outputs or tensor in qdq_inputs:  # Q outputs: the Q/DQ rules
            continue
        where = producers.get(tensor, "initializer" if tensor in g.initializers else "")
        if elem == t["UINT8"]:
            yield Finding("error", "uint8-internal", f"uint8 tensor '{tensor}' inside the network: TensorRT "
                          "supports UINT8 only as network input or output", where, "")
        elif elem == t["STRING"]:
            yield Finding("error", "unsupported-type", f"string tensor '{tensor}'", where, "")
        elif elem in other_float8 and tensor not in dequantized:  # a DQ's data: its qdq-type rule
            yield Finding("error", "unsupported-type", f"{_type_name(elem).lower()} tensor '{tensor}': TensorRT has "
                          f"no such type (its FP8 is {FP8_TYPE.lower()}) and its parser cannot import it", where, "")
        elif elem == t["DOUBLE"]:
            yield Finding("warning", "double", f"double tensor '{tensor}' is cast down to float by TensorRT",
                          where, "")


def _io_findings(graph) -> tuple[dict[str, list], list[Finding]]:
    """Graph input dims (ints, or the symbolic name / '?') and what dynamic ones mean for the engine."""
    inputs, findings = {}, []
    initializers = {t.name for t in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in value.type.tensor_type.shape.dim]
        inputs[value.name] = dims
        for axis, d in enumerate(dims):
            if isinstance(d, str) and axis == 0:
                findings.append(Finding("info", "dynamic-shape", f"input '{value.name}' has a dynamic batch "
                                        f"('{d}'): the engine gets an optimization profile (--min/--opt/--max-batch)"))
            elif isinstance(d, str):
                findings.append(Finding("warning", "dynamic-shape", f"input '{value.name}' dim {axis} is dynamic "
                                        f"('{d}'): volo-export fixes it from the model's image size in the profile"))
    return inputs, findings


def _opset_findings(model, target: TrtTarget) -> tuple[int | None, list[Finding]]:
    """The parser has no opset bound (`ModelImporter.cpp` only warns below 7), so an opset outside the
    documented range is a warning: its operators are what the op rules judge."""
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)
    if opset is None:
        return None, [Finding("error", "opset", "the model imports no default-domain opset")]
    if not target.opset_min <= opset <= target.opset_max:
        return opset, [Finding("warning", "opset", f"opset {opset} is outside the {target.opset_min}.."
                               f"{target.opset_max} TensorRT {target.major} documents (its parser sets no bound); "
                               f"re-export with --opset {min(max(opset, target.opset_min), target.opset_max)} to "
                               "stay on tested ground")]
    return opset, []


def _infer_types(model) -> tuple[dict[str, int], dict[str, tuple], list[Finding]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=False)
    except (onnx.shape_inference.InferenceError, ValueError) as e:
        note = Finding("warning", "shape-inference", f"ONNX shape inference failed ({first_line(e)[:120]}); "
                       "type-based checks use declared types only")
        inferred = model
        notes = [note]
    else:
        notes = []
    types, shapes = {}, {}
    graph = inferred.graph
    for v in list(graph.value_info) + list(graph.input) + list(graph.output):
        tt = v.type.tensor_type
        if tt.elem_type:
            types[v.name] = tt.elem_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[v.name] = tuple(d.dim_value for d in tt.shape.dim)
    for t in graph.initializer:
        types[t.name] = t.data_type
    return types, shapes, notes


def check_model(model: Path | object, trt: int = DEFAULT_TRT, name: str | None = None) -> CheckResult:
    """Check an ONNX file (or ModelProto) against TensorRT `trt`'s ONNX parser rules."""
    from volo_export.export.metadata import load_graph

    if trt not in TRT_VERSIONS:
        raise UsageError(f"--trt {trt} unsupported; choose {' or '.join(map(str, TRT_VERSIONS))}")
    base_dir = None
    if isinstance(model, (str, Path)):
        path = Path(model)
        model, base_dir, name = load_graph(path), path.parent, name or path.name
    target = TRT_VERSIONS[trt]
    opset, findings = _opset_findings(model, target)
    types, shapes, notes = _infer_types(model)
    findings += notes
    g = _GraphIndex(model.graph, types, shapes, base_dir, opset=opset)
    inputs, io_findings = _io_findings(model.graph)
    functions = {(f.domain, f.name): f for f in model.functions}
    counts: Counter = Counter()
    findings += list(_walk(g, functions, counts))
    findings += list(_type_rules(model, g)) + io_findings
    return CheckResult(model=name or "model", trt=trt, opset=opset, nodes=sum(counts.values()),
                       op_types=dict(sorted(counts.items())), inputs=inputs, findings=findings)


def fp8_nodes(model) -> list[str]:
    """The main graph's nodes that quantize to or dequantize from a float8 type (QuantizeLinear/DequantizeLinear,
    and ONNX-TensorRT's `trt`-domain FP8 Q/DQ), in graph order: a graph with any builds FP8 layers, which need
    compute capability >= 8.9 (`products.FP8_SINCE`). Types come from initializers, Constant nodes, declared
    value types and `output_dtype`, without shape inference."""
    t = _dtype_ids()
    float8 = {t[n] for n in (FP8_TYPE, *OTHER_FLOAT8_TYPES) if n in t}
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.value_info, *graph.output)}
    types.update({i.name: i.data_type for i in graph.initializer})
    types.update({n.output[0]: a.t.data_type for n in graph.node if n.op_type == "Constant" and n.output
                  for a in n.attribute if a.name == "value"})
    out = []
    for i, node in enumerate(graph.node):
        if node.domain == "trt" and node.op_type in ("TRT_FP8QuantizeLinear", "TRT_FP8DequantizeLinear"):
            out.append(node.name or f"{node.op_type}#{i}")
        elif node.domain in STANDARD_DOMAINS and node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            quantized = {types.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None,
                         attribute(node, "output_dtype") if node.op_type == "QuantizeLinear" else None,
                         types.get(node.input[0]) if node.op_type == "DequantizeLinear" and node.input else None}
            if quantized & float8:
                out.append(node.name or f"{node.op_type}#{i}")
    return out


# Which error to name first when a command refuses a graph: the op-level ones explain the most.
_FIRST = ("col2im", "qoperator", "contrib-op", "unsupported-op", "opset")


def first_violation(result: CheckResult) -> str:
    """The most telling error as one line, for commands that refuse to go on."""
    f = min(result.errors, key=lambda e: _FIRST.index(e.rule) if e.rule in _FIRST else len(_FIRST))
    return f"{f.node + ': ' if f.node else ''}{f.message}"



def check_artifact(path: Path, trt: int = DEFAULT_TRT, with_trtexec: bool = False, real: bool | None = None,
                   runtime: str = "auto") -> CheckResult:
    """`volo-export check`: the passing CheckResult, or TensorRTCheckFailed carrying the failing one.
    `with_trtexec` adds the trtexec command that builds an engine from the file. `real`: also parse with the
    real parser of `runtime` (auto: TensorRT, else TensorRT-RTX); None: when one is installed, True: it must
    be, False: never. Fails when either verdict does."""
    from volo_export.trt.config import trtexec_for
    from volo_export.trt.parser import real_check
    from volo_export.trt.products import missing

    path = Path(path)
    result = check_model(path, trt=trt)
    if with_trtexec:
        result.trtexec = trtexec_for(path, trt)
    if real is not False:
        result.real = real_check(path, runtime)
        if result.real is None and real:
            raise UsageError(f"--real: {missing(runtime)}")
    if not result.offline_passed:
        raise TensorRTCheckFailed(f"{path.name}: {len(result.errors)} violation(s) of TensorRT {trt}'s ONNX parser "
                                  f"rules; first: {first_violation(result)}", result)
    if not result.passed:
        raise TensorRTCheckFailed(result.real.summary(), result)
    return result
