"""INT8 for TensorRT (`--precision int8`, the default target): TensorRT's explicit-quantisation form, INT8
GEMMs in a float16 graph (`--high-precision fp16`, the default) or in a float32 one (`fp32`).

Symmetric int8 Q/DQ, per-channel weights, on MatMul/Gemm inputs (`int8.quantize_qdq`), which
`volo_export.trt.check` accepts; ONNX Runtime CPU runs it too. Fused attention projections (`qkv`,
`kv`) are then split into one MatMul per part (`passes.projections.split_projections`), so the builder fuses
each into an INT8 GEMM instead of a float32 batched one. Under float16 everything else is float16 (Q/DQ
scales too) except what measurably overflows it (`qdq_form`), so the builder runs LayerNorm, GELU, the
residual adds and the attention `q·kᵀ`/`attn·v` (fused into multi-head-attention kernels) in float16 and
moves half the bytes; the attention products stay float16 rather than int8 (both measured, docs/PRECISION.md:
INT8 attention saved 5 % of the traffic, and per-tensor int8 rounds softmax probabilities below 1/254 to
zero, which long sequences of a trained model have). Convolutions stay float16 too (`float16_op_types`), and
so do the GEMMs that see one row per image (the class token, the head: `left_in_float16`).
Under float32 (the earlier form) every MatMul/Gemm/Conv is INT8 and the rest float32. Metadata
`quantized_nodes` counts the FP32 graph's nodes (the names --exclude-nodes takes); `split_projections`
names the ones split into `<node>_part<i>`; `high_precision` the type of the rest.

Gated with ONNX Runtime's optimisations at "basic": Q/DQ then run as written (int8 products summed
exactly in float), which is TensorRT's arithmetic. At higher levels ONNX Runtime fuses them into x86
integer kernels, which on CPUs without AVX-512 VNNI saturate int16 pair sums (docs/PRECISION.md):
right for the cpu form, which avoids that, wrong as TensorRT's stand-in.
"""

from __future__ import annotations

import json

from volo_export.names import HighPrecision, Precision, Runtime, Target
from volo_export.precision.form import BenchEntry, register
from volo_export.precision.qdq_form import QdqForm

# Measured with TensorRT-RTX 1.7.1 (VOLO-D1, docs/PRECISION.md): an INT8 or FP8 convolution runs as a kernel with
# float32 output plus a separate requantising kernel (no Conv+ReLU+Q fusion), so D1's quantised stem moves twice
# the bytes of its float16 stem (28 vs 14 MB per image) for 2.4 of 13.8 GOP.
CONV_IN_FLOAT16 = ("TensorRT-RTX runs quantised convolutions with float32 outputs and a separate requantise "
                   "kernel: twice the memory traffic of float16 (measured, docs/PRECISION.md)")
# Measured on VOLO-D1 (docs/PRECISION.md): leaving the 9 GEMMs that see one row per image (the class-attention
# blocks on the class token, the head) float16 took min cosine from 0.99564 to 0.99695 in FP8 and from 0.99964 to
# 0.99979 in INT8, for ~0.01 % of the model's operations.
ONE_ROW_IN_FLOAT16 = ("one row per image (the class token, the head): its quantisation error reaches the logits "
                      "undiluted, for no measurable compute (measured, docs/PRECISION.md)")


class TensorRTQdq(QdqForm):
    """What the TensorRT Q/DQ forms (INT8, FP8) share: the target, float16 by default elsewhere, split
    projections, the gate at ONNX Runtime level 'basic'."""

    target = Target.TENSORRT
    stamp = Target.TENSORRT
    default = True
    high_precisions = (HighPrecision.FP16, HighPrecision.FP32)
    float16_op_types = {"Conv": CONV_IN_FLOAT16, "ConvTranspose": CONV_IN_FLOAT16}
    gate_optimization = "basic"

    def left_in_float16(self, fp32, everything):
        from volo_export.precision.int8 import one_row_per_image

        return {**super().left_in_float16(fp32, everything),
                **{n: ("MatMul/Gemm", ONE_ROW_IN_FLOAT16)
                   for n in one_row_per_image(fp32, everything)}}

    def calibration_tensors(self, fp32, everything=None) -> list[str]:
        from volo_export.precision.int8 import calibration_tensors, find_targets

        return calibration_tensors(find_targets(fp32, self.selection()) if everything is None else everything)

    def quantize(self, fp32, chosen, ranges):
        from volo_export.passes.projections import split_projections
        from volo_export.precision.int8 import quantize_qdq

        model = quantize_qdq(fp32, chosen, ranges, qtype=self.qtype())
        origins: dict[str, str] = {}
        split_projections(model, origins)
        return model, {"split_projections": json.dumps(list(dict.fromkeys(origins.values())))}


@register
class Int8TensorRT(TensorRTQdq):
    precision = Precision.INT8
    tolerance = Precision.INT8
    describe = "TensorRT Q/DQ: symmetric int8, per-channel weights, float16 elsewhere"
    gate_note = ("int8 gate ran ONNX Runtime at optimisation level 'basic' (Q/DQ as written = "
                 "TensorRT's arithmetic); for CPU deployment use --target cpu")
    bench = (BenchEntry("onnx-int8-trt", "volo-export INT8 ONNX (--target tensorrt, TensorRT Q/DQ), ONNX Runtime CPU",
                        Runtime.ONNXRUNTIME),
             BenchEntry("openvino-int8-trt", "volo-export INT8 ONNX (--target tensorrt, TensorRT Q/DQ), OpenVINO CPU",
                        Runtime.OPENVINO, needs=("import_openvino",)))
