"""Split fused attention projections of a Q/DQ graph so TensorRT(-RTX) runs each as an INT8 GEMM.

Pattern (VOLO's transformer `qkv` and class-attention `kv`, and any like them):

    x_dq ─┐
    DQ(int8 W [C, k*C], per-channel axis 1) ─┴─ MatMul ─ Reshape(..., k, heads, head_dim)
                                                 ─ Transpose(perm[0] = k's axis)

The builder (TensorRT-RTX 1.7 Myelin, measured) turns MatMul + Reshape + Transpose into one batched
GEMM over a [k, C, C] weight *before* it fuses the Q/DQ pairs, so the weight is dequantised at run
time and the GEMM runs in float32 (D1: 16 of 93 quantised GEMMs). Rewrite:

    x_dq ─┬─ MatMul(DQ(W[:, 0:C]))   ─┐
          ├─ ...                      ├─ Concat(axis=-1) ─ (the original output name) ─ Reshape ─ ...
          └─ MatMul(DQ(W[:, (k-1)C:])) ┘

Exact: a per-output-channel weight scale does not change when the weight is cut along its output
channels, and all parts share the one activation Q/DQ; ONNX Runtime's outputs are bitwise equal
(measured on the tiny model and D1). The builder then re-merges the parts into one INT8 GEMM with
an INT8 [C, k*C] weight. Parts are named `<node>_part<i>`; nothing downstream changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from volo_export.passes.graph import GraphIndex, attribute, drop_unused


@dataclass(frozen=True)
class FusedProjection:
    """A MatMul to split: the node, its weight's DequantizeLinear and how many parts (k)."""

    node: object
    dequantize: object
    parts: int


def refusal(node, index: GraphIndex) -> str | None:
    """Why `node` is not a fused projection to split (None: it is one)."""
    if node.op_type != "MatMul":
        return "not a MatMul"
    dq = index.producer.get(node.input[1])
    if dq is None or dq.op_type != "DequantizeLinear":
        return "weight is not dequantised"
    weight, scale = index.constant(dq.input[0]), index.constant(dq.input[1])
    axis = attribute(dq, "axis", 1)
    if weight is None or scale is None or weight.ndim != 2 or axis not in (1, -1) or scale.size != weight.shape[1]:
        return "weight is not a constant [C, N] quantised per output channel"
    after = index.consumers.get(node.output[0], [])
    if len(after) != 1 or after[0].op_type != "Reshape":
        return "output does not go to one Reshape"
    shape = index.constant(after[0].input[1])
    nxt = index.consumers.get(after[0].output[0], [])
    if shape is None or shape.ndim != 1 or len(shape) < 3 or len(nxt) != 1 or nxt[0].op_type != "Transpose":
        return "Reshape is not followed by one Transpose"
    perm = attribute(nxt[0], "perm")
    parts = int(shape[-3])
    if perm is None or perm[0] != len(shape) - 3 or parts < 2 or weight.shape[1] % parts:
        return "Transpose does not bring the parts axis first"
    return None


def fused_projections(model) -> list[FusedProjection]:
    """Every MatMul of `model` that `refusal` accepts, in graph order."""
    index = GraphIndex(model)
    found = []
    for node in model.graph.node:
        if refusal(node, index) is None:
            shape = index.constant(index.consumers[node.output[0]][0].input[1])
            found.append(FusedProjection(node, index.producer[node.input[1]], int(shape[-3])))
    return found


def split_projections(model) -> list[str]:
    """Split every fused projection of `model` in place (see module docstring); returns the names of the
    MatMuls that were split."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = GraphIndex(model)  # splitting adds constants, changes none
    split = []
    for fused in fused_projections(model):
        mm, dq = fused.node, fused.dequantize
        w, scale = constants.constant(dq.input[0]), constants.constant(dq.input[1])
        zero = constants.constant(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
        cols = w.shape[1] // fused.parts
        nodes, outputs = [], []
        for p in range(fused.parts):
            cut, base = slice(p * cols, (p + 1) * cols), f"{mm.name}_part{p}"
            inputs = [f"{base}_weight_quantized", f"{base}_weight_scale"]
            graph.initializer.extend([numpy_helper.from_array(np.ascontiguousarray(w[:, cut]), inputs[0]),
                                      numpy_helper.from_array(np.ascontiguousarray(scale[cut]), inputs[1])])
            if zero is not None:
                inputs.append(f"{base}_weight_zero_point")
                graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(zero[cut]), inputs[2]))
            nodes.append(helper.make_node("DequantizeLinear", inputs, [f"{base}_weight"], name=f"{base}_weight_DQ",
                                          axis=1))
            part = helper.make_node("MatMul", [mm.input[0], f"{base}_weight"], [f"{base}_output"], name=base)
            part.metadata_props.extend(mm.metadata_props)
            nodes += [part]
            outputs.append(part.output[0])
        nodes.append(helper.make_node("Concat", outputs, [mm.output[0]], name=f"{mm.name}_concat", axis=-1))
        index = list(graph.node).index(mm)
        graph.node.remove(mm)
        for offset, node in enumerate(nodes):
            graph.node.insert(index + offset, node)
        split.append(mm.name)
    drop_unused(graph)
    return split
