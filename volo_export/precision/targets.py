"""The INT8 graph each `--target` gets.

- `tensorrt` (default): TensorRT's explicit-quantisation form (see `int8`), which
  `volo_export.trt.check` accepts. ONNX Runtime CPU runs it too.
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
from volo_export.precision.int8 import WEIGHTED_OPS, QuantTarget, Selection, calibration_tensors, quantize_qdq

TARGETS = ("tensorrt", "cpu")


# The tensorrt target is gated with ONNX Runtime's graph optimisations at "basic": Q/DQ then run
# as written (int8 products summed exactly in float), which is the arithmetic TensorRT performs.
# At higher levels ONNX Runtime fuses them into its x86 integer kernels, which on CPUs without
# AVX-512 VNNI saturate int16 pair sums (docs/PRECISION.md): right for the cpu target, which is
# built to avoid that and runs that way, wrong as a stand-in for TensorRT.
TENSORRT_GATE_NOTE = ("int8 gate ran ONNX Runtime at optimisation level 'basic' (Q/DQ as written = TensorRT's "
                      "arithmetic); for CPU deployment use --target cpu")


@dataclass(frozen=True)
class Int8Target:
    name: str
    describe: str
    activation_matmuls: bool
    tensors: Callable[[object, Sequence[QuantTarget]], list[str]]
    builder: Callable[[object, Sequence[QuantTarget], dict[str, Range]], object]
    gate_optimization: str = "all"
    gate_note: str | None = None
    op_types: tuple[str, ...] = WEIGHTED_OPS

    def selection(self, exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = ()) -> Selection:
        return Selection(op_types=self.op_types, exclude_nodes=tuple(exclude_nodes),
                         exclude_op_types=tuple(exclude_op_types), activation_matmuls=self.activation_matmuls)

    def calibration_tensors(self, model, targets: Sequence[QuantTarget]) -> list[str]:
        return self.tensors(model, targets)

    def build(self, model, targets: Sequence[QuantTarget], ranges: dict[str, Range]):
        return self.builder(model, targets, ranges)


def int8_target(name: str) -> Int8Target:
    if name == "tensorrt":
        return Int8Target("tensorrt", "TensorRT Q/DQ: symmetric int8, per-channel weights", False,
                          lambda model, targets: calibration_tensors(targets), quantize_qdq,
                          gate_optimization="basic", gate_note=TENSORRT_GATE_NOTE)
    if name == "cpu":
        from volo_export.precision import cpu

        return Int8Target("cpu", cpu.DESCRIPTION, cpu.ACTIVATION_MATMULS, cpu.calibration_tensors, cpu.build,
                          op_types=cpu.OP_TYPES)
    raise UsageError(f"--target {name!r}: choose one of {', '.join(TARGETS)}")
