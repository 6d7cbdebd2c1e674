"""FP8 for TensorRT (`--precision fp8`): float8 E4M3 Q/DQ on the MatMul/Gemm inputs, float16 elsewhere
(`--high-precision fp16`, the default; `fp32` keeps the rest float32).

The native low precision of Ada, Hopper and Blackwell (compute capability >= 8.9: `volo-export engine`
refuses older targets). Activations per tensor and weights per output channel, scale amax/448 (E4M3's
largest value), zero point 0, QuantizeLinear/DequantizeLinear to `float8e4m3fn` (opset >= 19), which ONNX
Runtime's CPU provider runs: the gate judges the graph there with its graph optimisations off (Q/DQ as
written). At level "basic" ONNX Runtime 1.32 computes float16 FP8 DequantizeLinear -> Conv wrong (measured on the
tiny model with its convolutions quantised: cosine 0.01 at the first convolution, 0.9995 with optimisations off);
the form leaves convolutions float16, but the gate must not depend on that.
Calibration, its cache, the exclusions and the sensitivity fallback are INT8's (`qdq_form`); what stays
float16 and why is the INT8 TensorRT form's (`int8_tensorrt`).
"""

from __future__ import annotations

from volo_export.names import Precision, Runtime, Target
from volo_export.precision.form import BenchEntry, register
from volo_export.precision.forms.int8_tensorrt import TensorRTQdq


@register
class Fp8TensorRT(TensorRTQdq):
    precision = Precision.FP8
    tolerance = Precision.FP8
    quant_type = "FLOAT8E4M3FN"
    describe = "TensorRT Q/DQ: float8 E4M3, per-channel weights, float16 elsewhere (compute capability >= 8.9)"
    gate_runtime = "ONNX Runtime CPU (float8 Q/DQ as written, graph optimisations off)"
    gate_optimization = "disable"
    gate_note = ("fp8 gate ran ONNX Runtime with graph optimisations off (float8 Q/DQ as written = TensorRT's "
                 "arithmetic)")
    refused_targets = {
        Target.CPU: "--precision fp8 is for TensorRT on compute capability >= 8.9: CPUs have no float8 kernels "
                    "(ONNX Runtime CPU runs the graph only to gate it); for the CPU use --precision int8 --target cpu",
        Target.OPENVINO: "--precision fp8 is for TensorRT on compute capability >= 8.9: OpenVINO's CPU plugin has "
                         "no float8 kernels; for OpenVINO use --precision int8 --target openvino",
    }
    bench = (BenchEntry("onnx-fp8", "volo-export FP8 ONNX (TensorRT Q/DQ), ONNX Runtime CPU", Runtime.ONNXRUNTIME),)
