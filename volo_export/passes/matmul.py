"""A Gemm as a MatMul [+ Add of its bias] on a view of at least three axes.

Pattern: Gemm(x, W, [bias]) with a constant W, no transA, alpha 1 and (with a bias) a constant 1-D bias
and beta 1. The MatMul reads W as [K, N] (a transposed copy `<W>_kn` when transB). Two views:

- `view="nd"` (the export's `bias_in_gemm` linears): x (B, ...) -> Reshape [-1, K] -> Gemm -> (rows, N),
  read only by Reshapes to constant shapes. Rewrite: MatMul(x', W) [-> Add(bias)] -> (B, ..., N),
  x' = x when its last axis is K, else x viewed as (B, -1, K); the following Reshapes now reshape an
  N-D tensor of the same elements.
- `view="3d"` (any 2-D Gemm, or those named in `nodes`): Unsqueeze(x, 0) -> MatMul(W) [-> Add(bias)]
  -> Squeeze(0): (M, K) as (1, M, K).

Same products and sums either way: ONNX Runtime's outputs stay within float32 rounding of the Gemm's
(it may sum in another order).

Why: OpenVINO fuses the bias Add, the residual Add and the next quantisation into a FullyConnected
kernel only when they see its output in the layout they run in; on the 2-D view they ran as
separate passes (what "nd" bought with the 3-D LayerNorms: docs/CPU.md).
ONNX Runtime fuses a quantised Gemm only with an int32-quantised bias and a quantised output, but
Q -> MatMul -> Add into MatMulIntegerToFloat with a float bias, and on a 2-D view its MatMulAddFusion
turns MatMul + Add back into Gemm first (`--target cpu`, "3d"). ONNX Runtime prefers the float Gemm
(it folds the bias Add into it), so the default export keeps that.

`aliases` receives {new activation: the Gemm's old input}: the same values, so a calibrated range
of one serves the other. The MatMul keeps the Gemm's name.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
from onnx import helper

from volo_export.passes.graph import GraphIndex, add_constant, attribute, forget_shapes, replace_nodes, tensor_shapes

VIEWS = ("nd", "3d")


def gemm_as_matmul(model, aliases: dict[str, str] | None = None, view: str = "nd",
                   nodes: Collection[str] | None = None) -> int:
    """Rewrite every Gemm of the pattern above (only those named in `nodes`, when given) in place as a
    MatMul on the `view`; returns how many."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, not {view!r}")
    index = GraphIndex(model)
    shapes = tensor_shapes(model) if view == "nd" else {}
    replacements, drop = {}, set()
    for n in model.graph.node:
        weight = _weight_kn(n, index) if nodes is None or n.name in nodes else None
        if weight is None:
            continue
        if view == "nd":
            flatten = _flatten(n, weight.shape[0], index, shapes)
            if flatten is None:
                continue
            before, source = _nd_view(model, n, flatten, weight.shape[0], shapes)
            replacements[n.name] = before + _matmul(n, source, _constant_kn(model, n, weight), n.output[0])
            drop.add(flatten.name)
        else:
            w = _constant_kn(model, n, weight)
            source, product = f"{n.input[0]}_{n.name}_3d", f"{n.output[0]}_3d"  # (1, M, K) @ (K, N) -> (1, M, N)
            axes = add_constant(model, f"{n.name}_axis0", np.array([0], np.int64))
            replacements[n.name] = [
                helper.make_node("Unsqueeze", [n.input[0], axes], [source], name=f"{n.name}_to_3d"),
                *_matmul(n, source, w, product),
                helper.make_node("Squeeze", [product, axes], [n.output[0]], name=f"{n.name}_to_2d")]
        if aliases is not None:
            aliases[source] = n.input[0]
    if replacements:
        if view == "nd":
            forget_shapes(model, [o for new in replacements.values() for node in new for o in node.output])
        replace_nodes(model, replacements, drop)
    return len(replacements)


def _weight_kn(node, index: GraphIndex) -> np.ndarray | None:
    """The [K, N] weight of a Gemm the pattern accepts (module docstring), else None."""
    weight = index.constant(node.input[1]) if node.op_type == "Gemm" else None
    has_bias = len(node.input) > 2 and node.input[2]
    bias = index.constant(node.input[2]) if weight is not None and has_bias else None
    if weight is None or weight.ndim != 2 or attribute(node, "transA", 0) or attribute(node, "alpha", 1.0) != 1.0 or \
            (has_bias and (bias is None or bias.ndim != 1 or attribute(node, "beta", 1.0) != 1.0)):
        return None
    return weight.T.copy() if attribute(node, "transB", 0) else weight


def _constant_kn(model, node, weight: np.ndarray) -> str:
    """The name of the [K, N] weight: the Gemm's own, or (transB) its transposed copy, added."""
    return add_constant(model, f"{node.input[1]}_kn", weight) if attribute(node, "transB", 0) else node.input[1]


def _matmul(node, source: str, weight: str, output: str) -> list:
    """MatMul(source, weight) [-> Add(the Gemm's bias)] -> output; the MatMul keeps the Gemm's name."""
    if not (len(node.input) > 2 and node.input[2]):
        return [helper.make_node("MatMul", [source, weight], [output], name=node.name)]
    product = f"{output}_product"
    return [helper.make_node("MatMul", [source, weight], [product], name=node.name),
            helper.make_node("Add", [product, node.input[2]], [output], name=f"{node.name}_bias")]


def _flatten(gemm, k: int, index: GraphIndex, shapes: dict):
    """The Reshape(x, [-1, K]) of an (at least) 3-D x that only `gemm` reads, when only Reshapes read the
    Gemm's output ("nd" view), else None."""
    flatten = index.producer.get(gemm.input[0])
    if flatten is None or flatten.op_type != "Reshape" or index.only_consumer(flatten.output[0]) is None:
        return None
    target, source_shape = index.constant(flatten.input[1]), shapes.get(flatten.input[0])
    if target is None or target.tolist() != [-1, k] or source_shape is None or len(source_shape) < 3:
        return None
    return flatten if _reshaped_only(gemm.output[0], index) else None


def _nd_view(model, gemm, flatten, k: int, shapes: dict) -> tuple[list, str]:
    """(nodes, tensor): the flattened tensor itself when its last axis is K, else viewed as (B, -1, K)."""
    source = flatten.input[0]
    if shapes[source][-1] == k:
        return [], source
    view = f"{gemm.input[0]}_nd"  # e.g. merged attention heads (B, N, heads, C/heads)
    shape = add_constant(model, f"{gemm.name}_nd_shape", np.array([0, -1, k], np.int64))
    return [helper.make_node("Reshape", [source, shape], [view], name=f"{gemm.name}_nd_view")], view


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
