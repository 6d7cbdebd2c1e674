"""INT8 for ONNX Runtime CPU (`--target cpu`): the fastest accurate graph, CPU-only."""

from __future__ import annotations

from collections.abc import Sequence

from volo_export.calibration.methods import Range
from volo_export.precision.int8 import QuantTarget, calibration_tensors as _tensors, quantize_qdq

DESCRIPTION = "ONNX Runtime CPU: uint8 activations, int8 per-channel weights"
ACTIVATION_MATMULS = False


def calibration_tensors(model, targets: Sequence[QuantTarget]) -> list[str]:
    return _tensors(targets)


def build(model, targets: Sequence[QuantTarget], ranges: dict[str, Range]):
    return quantize_qdq(model, targets, ranges, asymmetric=True)
