"""Automatic precision fallback: per-layer INT8 (or FP8) sensitivity, and the order in which
layers go back to float when the quantised graph misses its gate.

Sensitivity of a node is the error quantisation adds at that node alone: the node runs
twice in ONNX Runtime on the FP32 graph's own inputs to it (captured on real
calibration images), once in float and once with its activations and weight
quantised exactly as the Q/DQ graph does; the score is the relative L2 error of
its output, ||y_int8 - y|| / ||y||. Errors of different layers are comparable
(relative), need no full-network run per layer, and ignore error carried in
from earlier layers, which is what "keep this one layer in float" can fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from volo_export.calibration.methods import Range
from volo_export.activations import capture
from volo_export.precision.int8 import INT8, QuantTarget, QuantType, fake_quantize, quantize_weight
from volo_export.tolerances import MAX_FALLBACK_FRACTION


def node_sensitivity(model, targets: Sequence[QuantTarget], ranges: dict[str, Range],
                     x: np.ndarray, qtype: QuantType = INT8) -> dict[str, float]:
    """{node name: relative L2 output error of quantising that node alone (to `qtype`)}, measured on batch `x`."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    by_name = {n.name: n for n in model.graph.node}
    needed = [i for t in targets for i in by_name[t.node].input if i and i not in inits]
    values = capture(model, needed, x)
    scores = {}
    for t in targets:
        node = by_name[t.node]
        feeds = {i: values[i] for i in node.input if i and i not in inits}
        weights = {i: numpy_helper.to_array(inits[i]) for i in node.input if i in inits}
        reference = _run_node(model, node, feeds, weights)
        q_feeds = {i: fake_quantize(v, ranges[i].amax, qtype) if i in t.activations else v for i, v in feeds.items()}
        q_weights = dict(weights)
        if t.weight is not None:
            q, scale = quantize_weight(weights[t.weight].astype(np.float32), t.axis, qtype.max, qtype)
            shape = [1] * q.ndim
            shape[t.axis % q.ndim] = -1
            q_weights[t.weight] = (q.astype(np.float32) * scale.reshape(shape)).astype(np.float32)
        quantized = _run_node(model, node, q_feeds, q_weights)
        scores[t.node] = float(np.linalg.norm(quantized - reference) / max(np.linalg.norm(reference), 1e-30))
    return scores


def _run_node(model, node, feeds: dict[str, np.ndarray], weights: dict[str, np.ndarray]) -> np.ndarray:
    """Run one node of `model` alone in ONNX Runtime (CPU) and return its first output."""
    import onnx
    from onnx import helper, numpy_helper

    from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for n, v in feeds.items()]
    output = helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "node", inputs, [output],
                              [numpy_helper.from_array(v, n) for n, v in weights.items()])
    single = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    runner = OnnxRuntimeRunner(single.SerializeToString(),
                               SessionSettings(providers=CPU_ONLY, optimization="disable"))
    return runner.run(feeds, [node.output[0]])[0]


def fallback_schedule(order: Sequence[str]) -> list[list[str]]:
    """Growing prefixes of `order` (most sensitive first) to keep in float: 1, 2, 4, ... nodes,
    at most MAX_FALLBACK_FRACTION of them (beyond that the graph is hardly INT8 any more)."""
    limit = max(1, int(len(order) * MAX_FALLBACK_FRACTION))
    sizes, k = [], 1
    while k < limit:
        sizes.append(k)
        k *= 2
    sizes.append(limit)
    return [list(order[:k]) for k in dict.fromkeys(sizes)]
