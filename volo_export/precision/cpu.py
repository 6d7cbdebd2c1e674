"""INT8 for ONNX Runtime CPU (`--target cpu`): the fastest accurate graph we measured, CPU-only.

Measured on VOLO-D1, batch 8, ONNX Runtime 1.32 (docs/PRECISION.md has the numbers):

- uint8 activations with a zero point (asymmetric) and int8 per-channel weights:
  ONNX Runtime fuses Q -> DQ -> MatMul into MatMulIntegerToFloat and
  DQ -> Conv -> Q into QLinearConv (NHWC), its fastest x86 integer kernels.
- Weights use 7 bits ([-63, 63]). x86 CPUs without AVX-512 VNNI multiply uint8 x
  int8 with VPMADDUBSW, which adds pairs of products in int16 and saturates
  (255 * 127 * 2 > 32767): with 8-bit weights ONNX Runtime's outputs drifted to
  cosine 0.974 of FP32 on D1, with 7-bit weights they equal the graph's exact
  arithmetic (cosine 0.9997 between the two) at 0.998 of FP32.
- Convolution outputs are quantised too, so the stem runs as a chain of
  QLinearConv; a ReLU after a convolution is folded into the uint8 clamp (zero
  point 0: negative values become 0, exactly ReLU) and removed.
- Attention matmuls (both inputs activations) stay float: quantising them was
  slower (extra QuantizeLinear passes over the 196x196 scores) and no more accurate.
- A Gemm is rewritten as MatMul + Add on a 3-D view first: ONNX Runtime fuses a
  quantised Gemm only with an int32-quantised bias and a quantised output (QGemm),
  but Q -> MatMul -> Add into MatMulIntegerToFloat with a float bias. (On a 2-D
  view its MatMulAddFusion would turn MatMul + Add back into Gemm first.)

TensorRT cannot parse this graph (uint8 Q/DQ, asymmetric); the metadata says
target "cpu".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from volo_export.calibration.methods import Range
from volo_export.precision.int8 import QuantTarget, activation_qparams, calibration_tensors as _inputs, quantize_qdq

WEIGHT_LEVELS = 63  # 7-bit weights: no int16 saturation in VPMADDUBSW (see module docstring)


def calibration_tensors(model, targets: Sequence[QuantTarget]) -> list[str]:
    """Target inputs plus every quantised convolution's output."""
    by_name = {n.name: n for n in model.graph.node}
    return list(dict.fromkeys([*_inputs(targets), *(by_name[t.node].output[0] for t in targets
                                                     if t.op_type == "Conv")]))


def build(model, targets: Sequence[QuantTarget], ranges: dict[str, Range]):
    """The CPU graph (see module docstring) of `model` with `targets` quantised."""
    import onnx

    work = onnx.ModelProto()
    work.CopyFrom(model)
    targets, aliases = gemms_as_matmuls(work, targets)
    ranges = {**ranges, **{view: ranges[source] for view, source in aliases.items()}}
    folded = fold_relus(work, targets)
    quantized = quantize_qdq(work, targets, ranges, asymmetric=True, weight_levels=WEIGHT_LEVELS)
    convs = [t.node for t in targets if t.op_type == "Conv"]
    quantize_outputs(quantized, convs, ranges, skip=folded)
    return quantized


def gemms_as_matmuls(model, targets: Sequence[QuantTarget]) -> tuple[list[QuantTarget], dict[str, str]]:
    """Rewrite each target Gemm in place as a MatMul on a 3-D view (`passes.matmul.gemm_as_matmul`,
    module docstring). Returns the targets (those nodes now MatMul targets on axis 1 reading the 3-D
    view) and {3-D view: the 2-D tensor it views}, whose range it shares."""
    import dataclasses

    from volo_export.passes.matmul import gemm_as_matmul

    aliases: dict[str, str] = {}
    gemm_as_matmul(model, aliases, view="3d", nodes={t.node for t in targets if t.op_type == "Gemm"})
    by_name = {n.name: n for n in model.graph.node}
    return [dataclasses.replace(t, op_type="MatMul", axis=1, weight=by_name[t.node].input[1],
                                activations=(by_name[t.node].input[0],))
            if t.op_type == "Gemm" and by_name[t.node].op_type == "MatMul" else t for t in targets], aliases


def fold_relus(model, targets: Sequence[QuantTarget]) -> set[str]:
    """Remove each ReLU that follows a quantised Conv and feeds only quantised nodes (their uint8 Q
    with zero point 0 clamps at 0, which is the ReLU); the Conv then writes the ReLU's output tensor.
    Returns the names of the Convs whose output is now quantised by their consumers."""
    from volo_export.passes.graph import GraphIndex

    graph, index = model.graph, GraphIndex(model)
    quantized = {t.node for t in targets}
    consumers, graph_outputs = index.consumers, index.outputs
    drop, folded = set(), set()
    for n in graph.node:
        if n.name not in quantized or n.op_type != "Conv":
            continue
        after = consumers.get(n.output[0], [])
        if len(after) != 1 or after[0].op_type != "Relu" or n.output[0] in graph_outputs:
            continue
        relu = after[0]
        users = consumers.get(relu.output[0], [])
        if not users or relu.output[0] in graph_outputs or any(u.name not in quantized for u in users):
            continue
        n.output[0] = relu.output[0]
        drop.add(relu.name)
        folded.add(n.name)
    kept = [n for n in graph.node if n.name not in drop]
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def quantize_outputs(model, nodes: Sequence[str], ranges: dict[str, Range], skip: set[str]) -> None:
    """Insert a uint8 Q -> DQ after the output of each node in `nodes` (not in `skip`), in place,
    so ONNX Runtime fuses DQ -> Conv -> Q into QLinearConv."""
    from onnx import helper, numpy_helper

    graph = model.graph
    outputs = {o.name for o in graph.output}
    by_name = {n.name: n for n in graph.node}
    wanted = [n for n in nodes if n not in skip and by_name[n].output[0] not in outputs]
    inserted: dict[str, list] = {}
    renamed: dict[str, str] = {}
    for name in wanted:
        node = by_name[name]
        tensor = node.output[0]
        base = f"{name}_output"
        scale, zero_point = activation_qparams(ranges[tensor], asymmetric=True)
        graph.initializer.extend([numpy_helper.from_array(np.asarray(scale, np.float32), f"{base}_scale"),
                                  numpy_helper.from_array(zero_point, f"{base}_zero_point")])
        q = helper.make_node("QuantizeLinear", [tensor, f"{base}_scale", f"{base}_zero_point"], [f"{base}_quantized"],
                             name=f"{base}_QuantizeLinear")
        dq = helper.make_node("DequantizeLinear", [q.output[0], f"{base}_scale", f"{base}_zero_point"],
                              [f"{base}_dequantized"], name=f"{base}_DequantizeLinear")
        inserted[name] = [q, dq]
        renamed[tensor] = dq.output[0]
    nodes_out = []
    for n in graph.node:  # the new Q nodes are not in graph.node yet, so they keep reading the float output
        for i, x in enumerate(n.input):
            if x in renamed:
                n.input[i] = renamed[x]
        nodes_out.append(n)
        nodes_out += inserted.get(n.name, [])
    del graph.node[:]
    graph.node.extend(nodes_out)
