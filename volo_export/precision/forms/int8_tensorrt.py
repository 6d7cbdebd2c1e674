"""INT8 for TensorRT (`--precision int8`, the default target): TensorRT's explicit-quantisation form.

Symmetric int8 Q/DQ, per-channel weights, on MatMul/Gemm/Conv inputs (`int8.quantize_qdq`), which
`volo_export.trt.check` accepts; ONNX Runtime CPU runs it too. Fused attention projections (`qkv`,
`kv`) are then split into one MatMul per part (`passes.projections.split_projections`), so the builder fuses
each into an INT8 GEMM instead of a float32 batched one. Metadata `quantized_nodes` counts the FP32
graph's nodes (the names --exclude-nodes takes); `split_projections` names the ones split into
`<node>_part<i>`.

Gated with ONNX Runtime's optimisations at "basic": Q/DQ then run as written (int8 products summed
exactly in float), which is TensorRT's arithmetic. At higher levels ONNX Runtime fuses them into x86
integer kernels, which on CPUs without AVX-512 VNNI saturate int16 pair sums (docs/PRECISION.md):
right for the cpu form, which avoids that, wrong as TensorRT's stand-in.
"""

from __future__ import annotations

import json

from volo_export.names import Runtime, Target
from volo_export.precision.form import BenchEntry, register
from volo_export.precision.int8_form import Int8Form


@register
class Int8TensorRT(Int8Form):
    target = Target.TENSORRT
    stamp = Target.TENSORRT
    default = True
    describe = "TensorRT Q/DQ: symmetric int8, per-channel weights"
    gate_optimization = "basic"
    gate_note = ("int8 gate ran ONNX Runtime at optimisation level 'basic' (Q/DQ as written = "
                 "TensorRT's arithmetic); for CPU deployment use --target cpu")
    bench = (BenchEntry("onnx-int8-trt", "volo-export INT8 ONNX (--target tensorrt, TensorRT Q/DQ), ONNX Runtime CPU",
                        Runtime.ONNXRUNTIME),
             BenchEntry("openvino-int8-trt", "volo-export INT8 ONNX (--target tensorrt, TensorRT Q/DQ), OpenVINO CPU",
                        Runtime.OPENVINO, needs=("import_openvino",)))

    def calibration_tensors(self, fp32, everything=None) -> list[str]:
        from volo_export.precision.int8 import calibration_tensors, find_targets

        return calibration_tensors(find_targets(fp32, self.selection()) if everything is None else everything)

    def quantize(self, fp32, chosen, ranges):
        from volo_export.precision.int8 import quantize_qdq
        from volo_export.passes.projections import split_projections

        model = quantize_qdq(fp32, chosen, ranges)
        origins: dict[str, str] = {}
        split_projections(model, origins)
        return model, {"split_projections": json.dumps(list(dict.fromkeys(origins.values())))}
