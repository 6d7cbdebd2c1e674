"""LayerNormalization of a 4-D tensor, on its 3-D view.

Pattern: LayerNormalization(x, scale, bias, axis=-1) with x of rank 4 (the outlookers' (B, H, W, C)).
Rewrite: Reshape(x, [0, -1, C]) -> LayerNormalization -> Reshape back to Shape(x). Same numbers:
the normalisation is over the last axis either way.

Why: OpenVINO 2026.4 runs a 3-D LayerNormalization as one MVN kernel but decomposes the 4-D one
into ReduceMean + Subtract + RMS (three to four passes over the tensor; docs/CPU.md has the times).
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper

from volo_export.passes.graph import GraphIndex, add_constant, attribute, replace_nodes, tensor_shapes


def layernorm_on_tokens(model) -> int:
    """Rewrite every 4-D last-axis LayerNormalization in place; returns how many."""
    index, shapes = GraphIndex(model), tensor_shapes(model)
    replacements = {}
    for n in model.graph.node:
        if n.op_type != "LayerNormalization" or attribute(n, "axis", -1) not in (-1, 3) or len(n.output) != 1:
            continue
        shape, scale = shapes.get(n.input[0]), index.constant(n.input[1])
        if shape is None or len(shape) != 4 or scale is None:
            continue
        base = f"{n.name}_3d"
        tokens_shape = add_constant(model, f"{base}_shape", np.array([0, -1, scale.shape[-1]], np.int64))
        layer = NodeProto()
        layer.CopyFrom(n)
        layer.input[0], layer.output[0] = f"{base}_in", f"{base}_out"
        replacements[n.name] = [
            helper.make_node("Shape", [n.input[0]], [f"{base}_orig_shape"], name=f"{base}_shape_of"),
            helper.make_node("Reshape", [n.input[0], tokens_shape], [layer.input[0]], name=f"{base}_flatten"),
            layer,
            helper.make_node("Reshape", [layer.output[0], f"{base}_orig_shape"], [n.output[0]], name=f"{base}_unflatten"),
        ]
    if replacements:
        replace_nodes(model, replacements)
    return len(replacements)
