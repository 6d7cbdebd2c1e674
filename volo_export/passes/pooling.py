"""Window means as AveragePool.

Pattern (the export's channels-last pooling, `export.rewrite.window_means`):

    x (B, H, W, C) -> Reshape [*, h, s, w, s, C] -> ReduceMean(axes=[2, 4], keepdims=0) -> (B, h, w, C)

Rewrite, the same sums (AvgPool2d of the eager model):

    x -> Transpose(0, 3, 1, 2) -> AveragePool(kernel s x s, stride s) -> Transpose(0, 2, 3, 1)

Why: OpenVINO 2026.4 runs a ReduceMean over two non-adjacent axes of a 6-D tensor with its
reference C++ kernel (`ref_f32`) and its NCHW AveragePool with a JIT kernel (docs/CPU.md has the
times). ONNX Runtime runs the Reshape + ReduceMean form
well, so the default export keeps it.
"""

from __future__ import annotations

from onnx import helper

from volo_export.passes.graph import GraphIndex, attribute, replace_nodes, tensor_shapes


def window_mean_as_avgpool(model) -> int:
    """Rewrite every window mean of the pattern above in place; returns how many."""
    index, shapes = GraphIndex(model), tensor_shapes(model)
    replacements, drop = {}, set()
    for n in model.graph.node:
        stride = _window_stride(n, index, shapes)
        if stride is None:
            continue
        reshape = index.producer[n.input[0]]
        bchw, pooled = f"{n.output[0]}_bchw", f"{n.output[0]}_pooled"
        replacements[n.name] = [
            helper.make_node("Transpose", [reshape.input[0]], [bchw], name=f"{n.name}_to_bchw", perm=[0, 3, 1, 2]),
            helper.make_node("AveragePool", [bchw], [pooled], name=f"{n.name}_avgpool", kernel_shape=[stride, stride],
                             strides=[stride, stride]),
            helper.make_node("Transpose", [pooled], [n.output[0]], name=f"{n.name}_to_bhwc", perm=[0, 2, 3, 1]),
        ]
        drop.add(reshape.name)
    if replacements:
        replace_nodes(model, replacements, drop)
    return len(replacements)


def _window_stride(node, index: GraphIndex, shapes: dict) -> int | None:
    """The window size s when `node` is ReduceMean(axes [2, 4], keepdims 0) of a Reshape of a
    (B, h*s, w*s, C) tensor to [*, h, s, w, s, C] that nothing else reads; None otherwise."""
    if node.op_type != "ReduceMean" or len(node.input) < 2 or attribute(node, "keepdims", 1) != 0:
        return None
    axes = index.constant(node.input[1])
    reshape = index.producer.get(node.input[0])
    if axes is None or sorted(axes.tolist()) != [2, 4] or reshape is None or reshape.op_type != "Reshape":
        return None
    shape = index.constant(reshape.input[1])
    if shape is None or len(shape) != 6 or shape[2] != shape[4] or shape[2] < 1 or \
            index.only_consumer(reshape.output[0]) is None:
        return None
    h, s, w, c = (int(v) for v in shape[[1, 2, 3, 5]])
    found = shapes.get(reshape.input[0])
    if found is None or len(found) != 4 or found[1:] != (h * s, w * s, c):
        return None
    return s
