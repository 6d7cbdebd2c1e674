"""Exact ONNX -> ONNX graph passes: the same maths, in the form a runtime's kernels want.

Each pass is one small module: the pattern it looks for, the checks that make it refuse a
match, the rewrite; its public function edits a ModelProto in place and returns how many places
it changed. Tests run ONNX Runtime before and after every pass and compare the numbers.

    pooling.window_mean_as_avgpool   ReduceMean over the two window axes of a 6-D view -> AveragePool
    layernorm.layernorm_on_tokens    LayerNormalization of a 4-D (B, H, W, C) tensor -> on its 3-D view
    matmul.gemm_as_nd_matmul         Reshape(x, [-1, K]) -> Gemm  ->  MatMul on x itself
    heads.split_heads                fused qkv MatMul -> heads -> unbind  ->  one MatMul -> heads per part
    qdq.hoist_qdq                    Q/DQ after Reshape/Transpose/... -> before them (per-tensor Q/DQ commute)

Used by the OpenVINO INT8 form (`precision/openvino.py`), where each was measured to matter
(docs/CPU.md); none is applied to the default FP32 export.
"""

from __future__ import annotations

import numpy as np


class GraphIndex:
    """Producers, consumers and constant values of a graph (a ModelProto's or a GraphProto), for pattern
    matching and checks (rebuild after edits). `base_dir`: where external initializer data lies."""

    def __init__(self, model, base_dir=None):
        graph = getattr(model, "graph", model)
        self.graph, self.base_dir = graph, base_dir
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in graph.output}
        self.initializers = {t.name: t for t in graph.initializer}
        self.constant_nodes = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output (None for a computed tensor)."""
        from onnx import helper, numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name], base_dir=str(self.base_dir or ""))
        node = self.constant_nodes.get(name)
        if node is not None:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
                if attr.name in ("value_float", "value_int", "value_floats", "value_ints"):
                    return np.asarray(helper.get_attribute_value(attr))
        return None

    def only_consumer(self, tensor: str):
        """The single node reading `tensor` (None when it has several readers or is a graph output)."""
        readers = self.consumers.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in self.outputs else None


def attribute(node, name: str, default=None):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def add_constant(model, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    return name


def replace_nodes(model, replacements: dict[str, list], drop: set[str] = frozenset()) -> None:
    """Swap each node named in `replacements` for its list of nodes (in its place, so order holds when they
    read only what the node they replace could read) and remove the nodes in `drop`."""
    out = []
    for n in model.graph.node:
        if n.name in drop:
            continue
        out += replacements.get(n.name, [n])
    del model.graph.node[:]
    model.graph.node.extend(out)


def drop_unused(graph) -> None:
    """Remove nodes whose outputs nothing reads (a replaced weight's DequantizeLinear, say), then the
    initializers nothing reads."""
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    read = {i for n in graph.node for i in n.input}
    kept = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def forget_shapes(model, tensors) -> None:
    """Drop the value_info (declared type and shape) of `tensors`, whose shape a pass changed; ONNX shape
    inference then derives them again instead of contradicting a stale declaration."""
    stale = set(tensors)
    kept = [v for v in model.graph.value_info if v.name not in stale]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)


def tensor_shapes(model) -> dict[str, tuple[int | None, ...]]:
    """Shape of every tensor ONNX shape inference can tell (None for a dimension it cannot)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim)
            for v in values if v.type.tensor_type.HasField("shape")}


def topological_sort(graph) -> None:
    """Reorder `graph.node` in place so every node comes after the producers of its inputs
    (passes and the float16 converter append new nodes out of order)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError(f"graph has a cycle or a missing input near node {pending[0].name}")
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
        for n in ready:
            ordered.append(n)
            available.update(n.output)
    copies = [type(n)() for n in ordered]
    for c, n in zip(copies, ordered):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)
