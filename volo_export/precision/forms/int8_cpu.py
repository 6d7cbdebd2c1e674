"""INT8 for ONNX Runtime CPU (`--precision int8 --target cpu`): the fastest accurate graph for ONNX
Runtime's x86 integer kernels (`precision/cpu.py` says how); stamped CPU-only, TensorRT does not parse it."""

from __future__ import annotations

from volo_export.names import Precision, Runtime, Target
from volo_export.precision.form import BenchEntry, register
from volo_export.precision.qdq_form import QdqForm


@register
class Int8Cpu(QdqForm):
    precision = Precision.INT8
    tolerance = Precision.INT8
    target = Target.CPU
    stamp = Target.CPU
    describe = "ONNX Runtime CPU: uint8 activations, 7-bit per-channel weights, QLinearConv stem"
    op_types = ("MatMul", "Gemm", "Conv")
    runs_only_on = "ONNX Runtime CPU"
    bench = (BenchEntry("onnx-int8", "volo-export INT8 ONNX (--target cpu), ONNX Runtime CPU", Runtime.ONNXRUNTIME,
                        default=True),)

    def calibration_tensors(self, fp32, everything=None) -> list[str]:
        from volo_export.precision import cpu
        from volo_export.precision.int8 import find_targets

        return cpu.calibration_tensors(fp32, find_targets(fp32, self.selection()) if everything is None else everything)

    def quantize(self, fp32, chosen, ranges):
        from volo_export.precision import cpu

        return cpu.build(fp32, chosen, ranges), {}
