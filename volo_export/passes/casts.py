"""Casts that change nothing, removed.

Pattern: Cast(W, to=T) where W is an initializer already of type T, and the Cast's output is no graph
output (ONNX Runtime's float16 converter adds them in front of the float32 weights of nodes it keeps
in float32). Rewrite: the Cast's readers read W itself. The same values: bitwise the same numbers.
"""

from __future__ import annotations

from volo_export.passes.graph import GraphIndex, attribute


def drop_noop_casts(model) -> int:
    """Remove every Cast of the pattern above in place; returns how many went."""
    index = GraphIndex(model)
    graph = index.graph
    types = {name: t.data_type for name, t in index.initializers.items()}
    noop = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Cast" and n.input[0] in types
            and n.output[0] not in index.outputs and attribute(n, "to") == types[n.input[0]]}
    kept = [n for n in graph.node if not (n.op_type == "Cast" and n.output and n.output[0] in noop)]
    for n in kept:
        for i, name in enumerate(n.input):
            if name in noop:
                n.input[i] = noop[name]
    del graph.node[:]
    graph.node.extend(kept)
    return len(noop)
