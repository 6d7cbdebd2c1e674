"""INT8 for OpenVINO on the CPU (`--target openvino`): the fastest accurate graph we measured there
(what each step bought: docs/CPU.md, "What each step of the OpenVINO INT8 form bought").

- TensorRT-style symmetric int8 (`int8.quantize_qdq`): zero point 0 in front of every
  convolution. OpenVINO computes uint8 Q/DQ with zero point 0 before a convolution wrong (the
  `--target cpu` stem), and runs this form in its int8 brgemm/brgconv kernels.
- The attention matmuls are quantised too (q.k^T and attn.v of the transformer and class blocks):
  OpenVINO runs q.k^T -> softmax -> .v as one fused int8 kernel. The outlook attention's
  aggregation (5-D operands) stays float: quantising it adds Convert/Maximum passes around the
  unfold's Concat.
- Softmax outputs are uint8 (zero point 0, scale max/255): probabilities are never negative, so
  int8 wastes half the levels. No convolution reads them.
- Exact graph passes first (`volo_export.passes`): outlook pooling as AveragePool, LayerNorm on
  3-D views, Gemm as N-D MatMul, the fused qkv/kv projections split into one MatMul per part
  before the heads are formed; after quantising, activation Q/DQ moved above Reshape/Transpose so
  OpenVINO fuses them into the producing kernel.

ONNX Runtime runs this graph correctly but slower than `--target cpu` (it has no fused int8
attention and re-packs the dynamic operand of quantised matmuls every call). TensorRT does not
parse it (uint8 inside the network): the metadata says target "openvino".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from volo_export.calibration.methods import Range
from volo_export.precision.int8 import QuantTarget, Selection, find_targets, quantize_qdq


def select(model, targets: Sequence[QuantTarget]) -> list[QuantTarget]:
    """`targets` without the outlook attention's aggregation (activation MatMuls of 5-D operands)."""
    from volo_export.passes.graph import tensor_shapes

    shapes = tensor_shapes(model)
    return [t for t in targets if t.weight is not None or len(shapes.get(t.activations[0], ())) != 5]


@dataclass
class PassedGraph:
    """The FP32 graph after this form's exact passes, and how its names map back to the original's."""

    model: object
    aliases: dict[str, str]  # {activation of `model`: the original's tensor with the same values}
    origins: dict[str, str]  # {node of `model`: the original node it computes part of}


def prepare_graph(fp32) -> PassedGraph:
    """A copy of `fp32` after the exact passes this form needs (module docstring)."""
    import onnx

    from volo_export.passes.heads import split_heads
    from volo_export.passes.layernorm import layernorm_on_tokens
    from volo_export.passes.matmul import gemm_as_matmul
    from volo_export.passes.pooling import window_mean_as_avgpool

    edited = onnx.ModelProto()
    edited.CopyFrom(fp32)
    passed = PassedGraph(edited, {}, {})
    window_mean_as_avgpool(edited)
    layernorm_on_tokens(edited)
    gemm_as_matmul(edited, passed.aliases)
    split_heads(edited, passed.origins)
    return passed


def targets_in(edited, names: Sequence[str], selection: Selection,
               origins: Mapping[str, str] | None = None) -> list[QuantTarget]:
    """The quantisation targets of the passed graph `edited` for the nodes `names` of the original graph
    (the passes keep node names, or say in `origins` which original node a new one is part of; a Gemm
    became a MatMul with its weight transposed)."""
    wanted, origins = set(names), origins or {}
    return [t for t in find_targets(edited, selection) if origins.get(t.node, t.node) in wanted]


def build(edited, targets: Sequence[QuantTarget], ranges: dict[str, Range]):
    """The OpenVINO INT8 graph of the passed graph `edited` with `targets` quantised."""
    from volo_export.passes.qdq import hoist_qdq

    quantized = quantize_qdq(edited, targets, ranges, unsigned=softmax_outputs(edited))
    hoist_qdq(quantized)
    return quantized


def softmax_outputs(model) -> set[str]:
    """The outputs of every Softmax of `model`: quantised as uint8 (zero point 0, scale max/255; module
    docstring)."""
    return {o for n in model.graph.node if n.op_type == "Softmax" for o in n.output}
