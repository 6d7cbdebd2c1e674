"""What every Q/DQ form (INT8 for each --target, FP8) shares: explicit Q/DQ from calibrated ranges.

`QdqForm.prepare` finds the nodes to quantise (its `op_types`, attention matmuls when
`activation_matmuls`), calibrates every tensor any Q/DQ form needs (one cache serves every
form) and keeps the samples for the per-node sensitivity the fallback ranks by. A form
says which tensors it needs (`calibration_tensors`), what it quantises to (`quant_type`) and
how it quantises (`quantize`).

Forms with `high_precisions` (the TensorRT ones) give what is not quantised the type
`--high-precision` names, their first by default: under float16 the Q/DQ graph is converted
(`fp16.to_fp16`, scales included) except the nodes whose outputs leave float16's range on the
gate's images (measured, as `--precision fp16` does) and the op types the form leaves
unquantised in float16 (`float16_op_types`, with the measured reason). TensorRT is strongly typed:
it runs exactly these types, so this decides the engine's layer mix and memory traffic.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from volo_export.errors import UsageError
from volo_export.names import HighPrecision
from volo_export.precision.form import Built, Job, PrecisionForm, Prepared, registered

if TYPE_CHECKING:
    import numpy as np

    from volo_export.calibration.methods import Range
    from volo_export.precision.int8 import QuantTarget, QuantType, Selection


@dataclass
class QdqState:
    """What a Q/DQ form measured: the nodes to quantise, every tensor's calibrated range, the nodes left
    unquantised (as report lines), the calibration samples (for the sensitivity measurement), the
    type of the rest of the graph (None: the form has no choice, float32) and, under float16, the
    nodes that stay float32 ({node: largest |output|})."""

    targets: list[QuantTarget]
    ranges: dict[str, Range]
    excluded: list[str]
    samples: np.ndarray
    high_precision: HighPrecision | None = None
    overflow: dict[str, float] = field(default_factory=dict)


class QdqForm(PrecisionForm):
    """Base of the Q/DQ forms; a subclass sets `precision`, `tolerance`, `op_types`, `activation_matmuls`,
    `quant_type` and implements `calibration_tensors` and `quantize`."""

    needs_calibration = True
    accepts_exclusions = True
    has_fallback = True
    op_types: ClassVar[tuple[str, ...] | None] = None  # None: every weighted op (`int8.WEIGHTED_OPS`)
    activation_matmuls: ClassVar[bool] = False
    quant_type: ClassVar[str] = "INT8"  # a `precision.int8.QUANT_TYPES` key
    # Under --high-precision fp16: weighted op types left unquantised, in float16, and why (measured).
    float16_op_types: ClassVar[Mapping[str, str]] = {}

    def qtype(self) -> QuantType:
        from volo_export.precision.int8 import QUANT_TYPES

        return QUANT_TYPES[self.quant_type]

    def selection(self, exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = ()) -> Selection:
        from volo_export.precision.int8 import Selection

        kinds = {} if self.op_types is None else {"op_types": self.op_types}
        return Selection(**kinds, exclude_nodes=tuple(exclude_nodes),
                         exclude_op_types=tuple(exclude_op_types), activation_matmuls=self.activation_matmuls)

    def calibration_tensors(self, fp32, everything: list[QuantTarget] | None = None) -> list[str]:
        """The activations whose ranges this form needs, when every candidate node is quantised (`everything`:
        those candidates, `find_targets(fp32, self.selection())`, when the caller has them)."""
        raise NotImplementedError

    def quantize(self, fp32, chosen: list[QuantTarget], ranges: dict[str, Range]) -> tuple[object, dict[str, str]]:
        """The Q/DQ graph quantising `chosen` (the rest float32), and its metadata additions."""
        raise NotImplementedError

    def prepare(self, fp32, job: Job) -> Prepared:
        from volo_export.calibration import calibrate
        from volo_export.precision.int8 import find_targets

        options = job.options
        high = self.high_precision(options.high_precision)
        everything = find_targets(fp32, self.selection())
        in_float16 = self.left_in_float16(fp32, everything) if high == HighPrecision.FP16 else {}
        targets = [t for t in find_targets(fp32, self.selection(options.exclude_nodes, options.exclude_op_types))
                   if t.node not in in_float16]
        if not targets:
            raise UsageError("nothing left to quantise: every MatMul/Gemm/Conv is excluded")
        tensors = qdq_calibration_tensors(fp32, {self.key: everything})
        ranges, message = calibrate(fp32, tensors, job.calibration, options.calib_method, job.prep,
                                    options.calib_cache, job.progress, job.fp32_sha256)
        chosen = {q.node for q in targets}
        excluded = [f"{t.node} ({'excluded' if t.node in options.exclude_nodes else 'op type excluded'})"
                    for t in everything if t.node not in chosen and t.node not in in_float16]
        groups = Counter(in_float16.values())
        excluded += [f"{count} {what} (left in float16: {why})" for (what, why), count in groups.items()]
        overflow = {}
        if high == HighPrecision.FP16:
            from volo_export.precision.fp16 import scan_overflow

            overflow = scan_overflow(fp32, job.inputs[0].array[:2], job.progress)
        calibration = json.dumps({**job.calibration.summary(), "method": str(options.calib_method)}, sort_keys=True)
        extra = {"calibration": calibration, **({"high_precision": str(high)} if high else {})}
        return Prepared(QdqState(targets, ranges, excluded, job.calibration.array, high, overflow), extra=extra,
                        notes=[message] + ([self.gate_note] if self.gate_note else []))

    def left_in_float16(self, fp32, everything: list[QuantTarget]) -> dict[str, tuple[str, str]]:
        """Under --high-precision fp16: the candidate nodes the form leaves unquantised, in float16, each with
        (what it is, why), e.g. ('Conv', 'TensorRT-RTX runs ...'). Default: the `float16_op_types`."""
        return {t.node: (t.op_type, self.float16_op_types[t.op_type]) for t in everything
                if t.op_type in self.float16_op_types}

    def build(self, fp32, prepared: Prepared[QdqState], keep: Sequence[str] = ()) -> Built:
        state = prepared.state
        chosen = [t for t in state.targets if t.node not in set(keep)]
        model, extra = self.quantize(fp32, chosen, state.ranges)
        kept = list(state.excluded)
        if state.high_precision == HighPrecision.FP16:
            from volo_export.precision.fp16 import Fp16Options, to_fp16

            names = {n.name for n in model.graph.node}
            converted = to_fp16(model, Fp16Options(keep_op_types=()),
                                {n: v for n, v in state.overflow.items() if n in names})
            model, kept = converted.model, kept + converted.kept
        return Built(model, kept, {"quantized_nodes": str(len(chosen)), **extra})

    def sensitivity(self, fp32, prepared: Prepared[QdqState]) -> dict[str, float]:
        from volo_export.precision.fallback import node_sensitivity

        state = prepared.state
        return node_sensitivity(fp32, state.targets, state.ranges, sensitivity_samples(fp32, state.samples),
                                self.qtype())


def sensitivity_samples(fp32, samples: np.ndarray) -> np.ndarray:
    """The calibration samples the sensitivity is measured on: the first batch (at most 8) the graph accepts."""
    from volo_export.runtime.base import batch_range_of

    index, _ = batch_range_of(fp32).chunks(len(samples), 8)[0]
    return samples[index]


def qdq_calibration_tensors(fp32, everything: dict[tuple, list] | None = None) -> list[str]:
    """The activations whose ranges any Q/DQ form needs, every form's in turn (first-use order), so that one
    calibration cache serves every INT8 --target and FP8. `everything`: {form key (precision, target): its
    candidate targets} the caller has found already."""
    everything = everything or {}
    return list(dict.fromkeys(t for key, form in registered().items() if form.needs_calibration
                              for t in form().calibration_tensors(fp32, everything.get(key))))
