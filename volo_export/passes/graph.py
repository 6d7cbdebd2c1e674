"""The graph toolkit: an index of a graph for pattern matching, and the edits passes make.

    GraphIndex          producers, consumers, graph outputs and constant values of a (sub)graph
    attribute           a node's attribute value (or a default)
    add_constant        a new initializer
    replace_nodes       swap nodes for lists of nodes in place, drop others
    drop_unused         remove nodes and initializers nothing reads
    forget_shapes       drop the value_info a pass made stale
    tensor_shapes       every shape ONNX shape inference can tell
    topological_sort    reorder nodes after their producers

Used by the passes of this package, by `trt.check` (its own index of (sub)graphs) and by
`precision.fp16` (the float16 converter appends nodes out of order).
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
