"""A fused attention projection, split into its parts before the heads are formed.

Pattern (VOLO's transformer `qkv` and class-attention `kv`, as torch exports `unbind(0)`): a fused
projection (`projections.fused_projection`) with a float weight, its parts unbound:

    MatMul(x, W [K, k*C]) -> Reshape(..., k, heads, d) -> Transpose(perm[0] = the k axis)
        -> k x Slice(axis 0, [i, i+1)) -> Squeeze(axis 0)      (the i-th: q, k or v)

Rewrite, one chain per part i, ending in the Squeeze's output (downstream names stay):

    MatMul(x, W[:, i*C:(i+1)*C]) -> Reshape(..., heads, d) -> Transpose(perm without the k axis)

Every output element is the same dot product: the same numbers (tests compare before and after).

Why: OpenVINO transposed the whole float32 projection output (a standalone Transpose per block), and
the quantisation of q, k and v, each with its own scale, ran as standalone FakeQuantize passes after the
Slices. Per part, `qdq.hoist_qdq` moves each quantisation up to its MatMul, where it fuses into the
FullyConnected kernel; the head transposes of q and v then go into OpenVINO's fused attention, and
k's moves int8 (VOLO-D1 INT8 `--target openvino`: docs/CPU.md has the measurement).

`origins` receives {new MatMul: the fused MatMul it is a part of}, so choices made by node name on
the original graph (which nodes to quantise, which to keep in float) carry over.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from volo_export.passes.graph import GraphIndex, add_constant, attribute, drop_unused, forget_shapes, replace_nodes
from volo_export.passes.projections import FusedProjection, fused_projection


def split_heads(model, origins: dict[str, str] | None = None) -> int:
    """Rewrite every fused projection of the pattern above in place; returns how many."""
    index = GraphIndex(model)
    replacements, drop = {}, set()
    for mm in model.graph.node:
        found = _match(mm, index)
        if found is None:
            continue
        fused, parts = found
        shape, perm = index.constant(fused.reshape.input[1]), attribute(fused.transpose, "perm")
        axis = len(shape) - 3
        part_shape = np.delete(shape, axis).astype(np.int64)
        part_perm = [p - (p > axis) for p in perm if p != axis]
        nodes = []
        for i, squeeze in enumerate(parts):
            base = f"{mm.name}_part{i}"
            w = add_constant(model, f"{base}_weight", np.ascontiguousarray(fused.weight[:, fused.columns(i)]))
            nodes += [helper.make_node("MatMul", [mm.input[0], w], [f"{base}_output"], name=base),
                      helper.make_node("Reshape", [f"{base}_output", add_constant(model, f"{base}_shape", part_shape)],
                                       [f"{base}_heads"], name=f"{base}_reshape"),
                      helper.make_node("Transpose", [f"{base}_heads"], [squeeze.output[0]], name=f"{base}_transpose",
                                       perm=part_perm)]
            drop |= {index.producer[squeeze.input[0]].name, squeeze.name}
            if origins is not None:
                origins[base] = mm.name
        replacements[mm.name] = nodes
        drop |= {fused.reshape.name, fused.transpose.name}
        forget_shapes(model, [p.output[0] for p in parts])
    if replacements:
        replace_nodes(model, replacements, drop)
        drop_unused(model.graph)
    return len(replacements)


def _match(mm, index: GraphIndex):
    """(the fused projection, [the Squeeze of part 0, 1, ...]) when `mm` starts the pattern with a float
    weight, else None."""
    fused = fused_projection(mm, index)
    if not isinstance(fused, FusedProjection) or fused.dequantize is not None:
        return None
    transpose = fused.transpose
    found: dict[int, object] = {}
    for piece in index.consumers.get(transpose.output[0], []):
        start = _unit_slice_on_axis0(piece, index)
        squeeze = index.only_consumer(piece.output[0]) if start is not None else None
        if squeeze is None or not _squeezes_axis0(squeeze, index) or start in found:
            return None
        found[start] = squeeze
    if sorted(found) != list(range(fused.parts)) or transpose.output[0] in index.outputs:
        return None
    return fused, [found[i] for i in range(fused.parts)]


def _unit_slice_on_axis0(node, index: GraphIndex) -> int | None:
    """i when `node` is Slice(x, [i], [i+1], axes [0], steps [1]), else None."""
    if node.op_type != "Slice" or len(node.input) < 4:
        return None
    values = [index.constant(name) if name else None for name in node.input[1:5]]
    starts, ends, axes = values[0], values[1], values[2]
    steps = values[3] if len(values) > 3 else np.array([1])
    if any(v is None or v.size != 1 for v in (starts, ends, axes, steps)) or int(axes[0]) != 0 or int(steps[0]) != 1:
        return None
    start = int(starts[0])
    return start if start >= 0 and int(ends[0]) == start + 1 else None


def _squeezes_axis0(node, index: GraphIndex) -> bool:
    if node.op_type != "Squeeze" or len(node.input) < 2 or not node.input[1]:
        return False
    axes = index.constant(node.input[1])
    return axes is not None and axes.tolist() == [0]
