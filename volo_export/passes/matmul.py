"""A Gemm on a flattened view, as a MatMul on the tensor itself.

Pattern (the export's `bias_in_gemm` linears): x (B, ...) -> Reshape [-1, K] -> Gemm(W, [bias], transB,
alpha 1, beta 1) -> (rows, N), read only by Reshapes to constant shapes.
Rewrite: MatMul(x', W^T) [-> Add(bias)] -> (B, ..., N), x' = x when its last axis is K, else x viewed as
(B, -1, K); the following Reshapes now reshape an N-D tensor of the same elements. Same products and sums.

Why: OpenVINO fuses the bias Add, the residual Add and the next quantisation into a FullyConnected
kernel only when they see its output in the layout they run in; on the 2-D view they ran as
separate passes (VOLO-D1 INT8: +6 % with this and the 3-D LayerNorms). ONNX Runtime prefers the
Gemm (it folds the bias Add into it), so the default export keeps that.

`aliases` receives {new activation: the Gemm's old input}: the same values, so a calibrated range
of one serves the other.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from volo_export.passes.graph import GraphIndex, add_constant, attribute, forget_shapes, replace_nodes, tensor_shapes


def gemm_as_nd_matmul(model, aliases: dict[str, str] | None = None) -> int:
    """Rewrite every Gemm of the pattern above in place; returns how many."""
    index, shapes = GraphIndex(model), tensor_shapes(model)
    replacements, drop = {}, set()
    for n in model.graph.node:
        weight = index.constant(n.input[1]) if n.op_type == "Gemm" else None
        bias = index.constant(n.input[2]) if weight is not None and len(n.input) > 2 and n.input[2] else None
        if weight is None or attribute(n, "transA", 0) or attribute(n, "alpha", 1.0) != 1.0 or \
                (len(n.input) > 2 and n.input[2] and (bias is None or bias.ndim != 1 or attribute(n, "beta", 1.0) != 1.0)):
            continue
        flatten = index.producer.get(n.input[0])
        w = weight.T.copy() if attribute(n, "transB", 0) else weight
        k = w.shape[0]
        if flatten is None or flatten.op_type != "Reshape" or index.only_consumer(flatten.output[0]) is None:
            continue
        target = index.constant(flatten.input[1])
        if target is None or target.tolist() != [-1, k]:
            continue
        source = flatten.input[0]
        source_shape = shapes.get(source)
        if source_shape is None or len(source_shape) < 3 or not _reshaped_only(n.output[0], index):
            continue
        nodes = []
        if source_shape[-1] != k:  # e.g. merged attention heads (B, N, heads, C/heads): view as (B, -1, K)
            view = f"{n.input[0]}_nd"
            nodes.append(helper.make_node("Reshape", [source, add_constant(model, f"{n.name}_nd_shape",
                                                                             np.array([0, -1, k], np.int64))],
                                          [view], name=f"{n.name}_nd_view"))
            source = view
        weight_kn = add_constant(model, f"{n.input[1]}_kn", w)
        if bias is None:
            nodes.append(helper.make_node("MatMul", [source, weight_kn], [n.output[0]], name=n.name))
        else:
            product = f"{n.output[0]}_product"
            nodes += [helper.make_node("MatMul", [source, weight_kn], [product], name=n.name),
                      helper.make_node("Add", [product, n.input[2]], [n.output[0]], name=f"{n.name}_bias")]
        replacements[n.name] = nodes
        drop.add(flatten.name)
        if aliases is not None:
            aliases[source] = n.input[0]
    if replacements:
        forget_shapes(model, [o for nodes in replacements.values() for n in nodes for o in n.output])
        replace_nodes(model, replacements, drop)
    return len(replacements)


def _reshaped_only(tensor: str, index: GraphIndex) -> bool:
    """Every reader of `tensor` is a Reshape to a constant shape without 0 (copy-this-dimension)
    entries, so the output's rank (2-D before, N-D after) does not matter to them."""
    readers = index.consumers.get(tensor, [])
    if not readers or tensor in index.outputs:
        return False
    for r in readers:
        shape = index.constant(r.input[1]) if r.op_type == "Reshape" and r.input[0] == tensor else None
        if shape is None or 0 in shape.tolist():
            return False
    return True
