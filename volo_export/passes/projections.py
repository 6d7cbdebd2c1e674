"""Fused attention projections: the pattern both qkv/kv splits match, and the split TensorRT needs.

Pattern (VOLO's transformer `qkv` and class-attention `kv`, and any like them), `fused_projection`:

    MatMul(x, W [K, k*C]) -> Reshape(..., k, heads, head_dim) -> Transpose(perm[0] = k's axis)

W is a float constant, or DequantizeLinear of a constant quantised per output channel (axis 1). Two
rewrites use it: `split_projections` below (a Q/DQ graph for TensorRT(-RTX)) and `heads.split_heads`
(a float graph for OpenVINO, which also needs the parts unbound by Slice -> Squeeze).

`split_projections`: the builder (TensorRT-RTX 1.7 Myelin, measured) turns MatMul + Reshape + Transpose
into one batched GEMM over a [k, C, C] weight *before* it fuses the Q/DQ pairs, so the weight is
dequantised at run time and the GEMM runs in float32 (D1: 16 of 93 quantised GEMMs). Rewrite:

    x_dq ─┬─ MatMul(DQ(W[:, 0:C]))   ─┐
          ├─ ...                      ├─ Concat(axis=-1) ─ (the original output name) ─ Reshape ─ ...
          └─ MatMul(DQ(W[:, (k-1)C:])) ┘

Exact: a per-output-channel weight scale does not change when the weight is cut along its output
channels, and all parts share the one activation Q/DQ; ONNX Runtime's outputs are bitwise equal
(measured on the tiny model and D1). The builder then re-merges the parts into one INT8 GEMM with
an INT8 [C, k*C] weight. Parts are named `<node>_part<i>`; nothing downstream changes. Projections
whose weight stayed float (excluded, or kept by the fallback) are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from volo_export.passes.graph import GraphIndex, add_constant, attribute, drop_unused, replace_nodes


@dataclass(frozen=True)
class FusedProjection:
    """A MatMul of the pattern above: the node, its [K, N] weight (the quantised values when dequantised),
    the weight's DequantizeLinear (None: a float constant), the Reshape and Transpose, how many parts (k)."""

    node: object
    weight: np.ndarray
    dequantize: object
    reshape: object
    transpose: object
    parts: int

    def columns(self, part: int) -> slice:
        """The weight's (and a per-channel scale's) columns of part `part`."""
        width = self.weight.shape[1] // self.parts
        return slice(part * width, (part + 1) * width)


def fused_projection(node, index: GraphIndex) -> FusedProjection | str:
    """The fused projection `node` starts, or why it is none."""
    if node.op_type != "MatMul":
        return "not a MatMul"
    weight, dq = _weight(node, index)
    if isinstance(weight, str):
        return weight
    reshape = index.only_consumer(node.output[0])
    if reshape is None or reshape.op_type != "Reshape":
        return "output does not go to one Reshape"
    shape = index.constant(reshape.input[1])
    transpose = index.only_consumer(reshape.output[0])
    if shape is None or shape.ndim != 1 or len(shape) < 4 or transpose is None or transpose.op_type != "Transpose":
        return "Reshape is not followed by one Transpose"
    parts, heads, width = (int(v) for v in shape[-3:])
    if min(parts, heads, width) < 1 or weight.shape[1] != parts * heads * width:
        return "Reshape does not split the output channels into (parts, heads, head_dim)"
    perm = attribute(transpose, "perm")
    if perm is None or perm[0] != len(shape) - 3 or parts < 2:
        return "Transpose does not bring the parts axis first"
    return FusedProjection(node, weight, dq, reshape, transpose, parts)


def _weight(node, index: GraphIndex):
    """(the [K, N] weight, its DequantizeLinear or None), or (why not, None)."""
    weight = index.constant(node.input[1])
    if weight is not None:
        return (weight, None) if weight.ndim == 2 else ("weight is not a [K, N] matrix", None)
    dq = index.producer.get(node.input[1])
    if dq is None or dq.op_type != "DequantizeLinear":
        return "weight is neither a constant nor dequantised", None
    weight, scale = index.constant(dq.input[0]), index.constant(dq.input[1])
    if weight is None or scale is None or weight.ndim != 2 or attribute(dq, "axis", 1) not in (1, -1) \
            or scale.size != weight.shape[1]:
        return "weight is not a constant [K, N] quantised per output channel", None
    return weight, dq


def fused_projections(model) -> list[FusedProjection]:
    """Every fused projection of `model`, in graph order."""
    index = GraphIndex(model)
    return [f for f in (fused_projection(n, index) for n in model.graph.node) if isinstance(f, FusedProjection)]


def split_projections(model, origins: dict[str, str] | None = None) -> int:
    """Split every fused projection with a dequantised weight in place (module docstring); returns how many.
    `origins` receives {new MatMul: the fused MatMul it is a part of}."""
    from onnx import helper

    index = GraphIndex(model)
    replacements = {}
    for fused in fused_projections(model):
        if fused.dequantize is None:
            continue
        mm, dq = fused.node, fused.dequantize
        scale = index.constant(dq.input[1])
        zero = index.constant(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None
        nodes, outputs = [], []
        for p in range(fused.parts):
            cut, base = fused.columns(p), f"{mm.name}_part{p}"
            inputs = [add_constant(model, f"{base}_weight_quantized", np.ascontiguousarray(fused.weight[:, cut])),
                      add_constant(model, f"{base}_weight_scale", np.ascontiguousarray(scale[cut]))]
            if zero is not None:
                inputs.append(add_constant(model, f"{base}_weight_zero_point", np.ascontiguousarray(zero[cut])))
            nodes.append(helper.make_node("DequantizeLinear", inputs, [f"{base}_weight"], name=f"{base}_weight_DQ",
                                          axis=1))
            part = helper.make_node("MatMul", [mm.input[0], f"{base}_weight"], [f"{base}_output"], name=base)
            part.metadata_props.extend(mm.metadata_props)
            nodes.append(part)
            outputs.append(part.output[0])
            if origins is not None:
                origins[base] = mm.name
        nodes.append(helper.make_node("Concat", outputs, [mm.output[0]], name=f"{mm.name}_concat", axis=-1))
        replacements[mm.name] = nodes
    if replacements:
        replace_nodes(model, replacements)
        drop_unused(model.graph)
    return len(replacements)
