"""What every INT8 form shares: explicit Q/DQ from calibrated ranges.

`Int8Form.prepare` finds the nodes to quantise (its `op_types`, attention matmuls when
`activation_matmuls`), calibrates every tensor any INT8 form needs (one cache serves every
--target) and keeps the samples for the per-node sensitivity the fallback ranks by. A form
says which tensors it needs (`calibration_tensors`) and how it quantises (`quantize`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from volo_export.errors import UsageError
from volo_export.names import Precision
from volo_export.precision.form import Built, Job, PrecisionForm, Prepared, registered

if TYPE_CHECKING:
    import numpy as np

    from volo_export.calibration.methods import Range
    from volo_export.precision.int8 import QuantTarget, Selection


@dataclass
class Int8State:
    """What INT8 measured: the nodes to quantise, every tensor's calibrated range, the nodes the user
    excluded (as report lines) and the calibration samples (for the sensitivity measurement)."""

    targets: list[QuantTarget]
    ranges: dict[str, Range]
    excluded: list[str]
    samples: np.ndarray


class Int8Form(PrecisionForm):
    """Base of the INT8 forms; a subclass sets `op_types`, `activation_matmuls` and implements
    `calibration_tensors` and `quantize`."""

    precision = Precision.INT8
    tolerance = Precision.INT8
    needs_calibration = True
    accepts_exclusions = True
    has_fallback = True
    op_types: ClassVar[tuple[str, ...] | None] = None  # None: every weighted op (`int8.WEIGHTED_OPS`)
    activation_matmuls: ClassVar[bool] = False

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
        """The Q/DQ graph quantising `chosen`, and its metadata additions."""
        raise NotImplementedError

    def prepare(self, fp32, job: Job) -> Prepared:
        from volo_export.calibration import calibrate
        from volo_export.precision.int8 import find_targets

        options = job.options
        everything = find_targets(fp32, self.selection())
        targets = find_targets(fp32, self.selection(options.exclude_nodes, options.exclude_op_types))
        if not targets:
            raise UsageError("nothing left to quantise: every MatMul/Gemm/Conv is excluded")
        tensors = int8_calibration_tensors(fp32, {self.target: everything})
        ranges, message = calibrate(fp32, tensors, job.calibration, options.calib_method, job.prep,
                                    options.calib_cache, job.progress, job.fp32_sha256)
        excluded = [f"{t.node} ({'excluded' if t.node in options.exclude_nodes else 'op type excluded'})"
                    for t in everything if t.node not in {q.node for q in targets}]
        calibration = json.dumps({**job.calibration.summary(), "method": str(options.calib_method)}, sort_keys=True)
        return Prepared(Int8State(targets, ranges, excluded, job.calibration.array), extra={"calibration": calibration},
                        notes=[message] + ([self.gate_note] if self.gate_note else []))

    def build(self, fp32, prepared: Prepared[Int8State], keep: Sequence[str] = ()) -> Built:
        state = prepared.state
        chosen = [t for t in state.targets if t.node not in set(keep)]
        model, extra = self.quantize(fp32, chosen, state.ranges)
        return Built(model, list(state.excluded), {"quantized_nodes": str(len(chosen)), **extra})

    def sensitivity(self, fp32, prepared: Prepared[Int8State]) -> dict[str, float]:
        from volo_export.precision.fallback import node_sensitivity

        state = prepared.state
        return node_sensitivity(fp32, state.targets, state.ranges, sensitivity_samples(fp32, state.samples))


def sensitivity_samples(fp32, samples: np.ndarray) -> np.ndarray:
    """The calibration samples the sensitivity is measured on: the first batch (at most 8) the graph accepts."""
    from volo_export.runtime.base import batch_range_of

    index, _ = batch_range_of(fp32).chunks(len(samples), 8)[0]
    return samples[index]


def int8_calibration_tensors(fp32, everything: dict[str, list] | None = None) -> list[str]:
    """The activations whose ranges any INT8 form needs, every form's in turn (first-use order), so that one
    calibration cache serves every --target. `everything`: {form target: its candidate targets} the caller
    has found already."""
    everything = everything or {}
    return list(dict.fromkeys(t for (precision, target), form in registered().items() if precision == Precision.INT8
                              for t in form().calibration_tensors(fp32, everything.get(target))))
