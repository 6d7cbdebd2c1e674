"""Activation Q/DQ above shape-only ops.

Pattern: y = Reshape|Transpose|Squeeze|Unsqueeze|Flatten(x) -> QuantizeLinear -> DequantizeLinear,
per-tensor (scalar scale and zero point), where x and y have no other reader.
Rewrite: x -> QuantizeLinear -> DequantizeLinear -> the shape op. Per-tensor quantisation acts on
every element alike, so it commutes with moving elements around: the same numbers. Repeated while
the pattern holds, so a pair climbs over a chain of shape ops up to the op that computed x.

Why: OpenVINO fuses an activation quantisation into the kernel that produced the tensor (a
FullyConnected with its bias and GELU, the fused attention, an MVN) when nothing sits between
them; after a Reshape it runs as a standalone FakeQuantize pass (docs/CPU.md has the cost).

Only pairs whose tensor comes from one of `producers` move. The default list was measured:
OpenVINO 2026.4 computed a residual Add -> FakeQuantize -> Transpose -> int8 convolution wrong
(VOLO-D1 cosine 0.79 against the unmoved graph), so Add (and anything not measured) stays put.
"""

from __future__ import annotations

from collections.abc import Sequence

from volo_export.passes.graph import GraphIndex, forget_shapes, topological_sort

SHAPE_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten")
SAFE_PRODUCERS = ("Gelu", "MatMul", "LayerNormalization", "ReduceMean", "Concat", "Slice", "Split",
                  "Softmax")


def hoist_qdq(model, producers: Sequence[str] = SAFE_PRODUCERS) -> int:
    """Move activation Q/DQ pairs above shape-only ops in place (see module docstring); returns how
    many shape ops a pair was moved over, in total."""
    moved = 0
    while True:  # one index per round: every move it finds whose nodes no earlier move of the round touched
        index = GraphIndex(model)
        touched: set[int] = set()
        stale: list[str] = []
        for q in [n for n in model.graph.node if n.op_type == "QuantizeLinear"]:
            step = _movable(q, index, producers)
            if step is None:
                continue
            q, dq, shape_op = step
            source, shaped, dequantized = shape_op.input[0], shape_op.output[0], dq.output[0]
            readers = index.consumers.get(dequantized, [])
            nodes = {id(n) for n in (q, dq, shape_op, index.producer.get(source), *readers) if n is not None}
            if nodes & touched:
                continue
            touched |= nodes
            for reader in readers:
                for i, name in enumerate(reader.input):
                    if name == dequantized:
                        reader.input[i] = shaped
            q.input[0] = source
            shape_op.input[0] = dequantized
            stale += [q.output[0], dequantized]  # they now have the source's shape
            moved += 1
        if not stale:
            break
        forget_shapes(model, stale)
    topological_sort(model.graph)
    return moved


def _movable(q, index: GraphIndex, producers: Sequence[str]):
    """(Q, DQ, the shape op right above Q) when the pair can move over it, else None."""
    dq = index.only_consumer(q.output[0])
    if dq is None or dq.op_type != "DequantizeLinear" or not _per_tensor(q, index):
        return None
    shape_op = index.producer.get(q.input[0])
    if shape_op is None or shape_op.op_type not in SHAPE_OPS or index.only_consumer(q.input[0]) is not q:
        return None
    if index.only_consumer(shape_op.input[0]) is not shape_op or dq.output[0] in index.outputs:
        return None
    origin = shape_op
    while origin is not None and origin.op_type in SHAPE_OPS:
        origin = index.producer.get(origin.input[0])
    return (q, dq, shape_op) if origin is not None and origin.op_type in producers else None


def _per_tensor(q, index: GraphIndex) -> bool:
    scale = index.constant(q.input[1])
    return scale is not None and scale.size == 1
