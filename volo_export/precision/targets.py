"""The INT8 graph each `--target` gets.

- `tensorrt` (default): TensorRT's explicit-quantisation form (see `int8`), which
  `qdq_rules.check_qdq` accepts. ONNX Runtime CPU runs it too.
- `cpu`: the fastest accurate graph for ONNX Runtime CPU (see `cpu`); stamped
  CPU-only in the metadata, TensorRT does not parse it.

A target says which nodes it quantises, which tensors need calibrated ranges and
how the graph is built from them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from volo_export.calibration.methods import Range
from volo_export.errors import UsageError
from volo_export.precision.int8 import QuantTarget, Selection, calibration_tensors, quantize_qdq

TARGETS = ("tensorrt", "cpu")


@dataclass(frozen=True)
class Int8Target:
    name: str
    describe: str
    activation_matmuls: bool
    tensors: Callable[[object, Sequence[QuantTarget]], list[str]]
    builder: Callable[[object, Sequence[QuantTarget], dict[str, Range]], object]

    def selection(self, exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = ()) -> Selection:
        return Selection(exclude_nodes=tuple(exclude_nodes), exclude_op_types=tuple(exclude_op_types),
                         activation_matmuls=self.activation_matmuls)

    def calibration_tensors(self, model, targets: Sequence[QuantTarget]) -> list[str]:
        return self.tensors(model, targets)

    def build(self, model, targets: Sequence[QuantTarget], ranges: dict[str, Range]):
        return self.builder(model, targets, ranges)


def int8_target(name: str) -> Int8Target:
    if name == "tensorrt":
        return Int8Target("tensorrt", "TensorRT Q/DQ: symmetric int8, per-channel weights", False,
                          lambda model, targets: calibration_tensors(targets), quantize_qdq)
    if name == "cpu":
        from volo_export.precision import cpu

        return Int8Target("cpu", cpu.DESCRIPTION, cpu.ACTIVATION_MATMULS, cpu.calibration_tensors, cpu.build)
    raise UsageError(f"--target {name!r}: choose one of {', '.join(TARGETS)}")
