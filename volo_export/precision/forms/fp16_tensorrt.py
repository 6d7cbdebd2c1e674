"""FP16 by graph conversion (`fp16.to_fp16`, `--precision fp16`): LayerNorm, Softmax, reductions and
every node whose activations overflow float16 on the gate's images stay float32. One form, made for
TensorRT; it runs (and is gated) on ONNX Runtime CPU too."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from volo_export.names import IoDtype, Precision, Runtime, Target
from volo_export.precision.form import BenchEntry, Built, Job, PrecisionForm, Prepared, register


@register
class Fp16TensorRT(PrecisionForm):
    precision = Precision.FP16
    target = Target.TENSORRT
    default = True
    tolerance = Precision.FP16
    describe = "float16 graph, sensitive ops float32"
    accepts_exclusions = True
    io_dtypes = (IoDtype.FLOAT32, IoDtype.FLOAT16)
    refused_targets = {
        Target.CPU: "--target cpu is for int8: ONNX Runtime CPU has no fast float16 kernels, so the FP16 graph "
                    "is TensorRT's (it still runs and is validated on CPU)",
        Target.OPENVINO: "--target openvino is for int8: OpenVINO runs the FP16 graph with float32 kernels (no "
                         "faster than FP32; measured); use --precision bf16 or int8 for OpenVINO",
    }
    bench = (BenchEntry("onnx-fp16", "volo-export FP16 ONNX, ONNX Runtime CPU", Runtime.ONNXRUNTIME, default=True),)

    def prepare(self, fp32, job: Job) -> Prepared:
        from volo_export.precision.fp16 import Fp16Options, keep_op_types, scan_overflow

        options = job.options
        fp16 = Fp16Options(io_dtype=options.io_dtype, keep_op_types=keep_op_types(options.exclude_op_types),
                           keep_nodes=options.exclude_nodes)
        return Prepared((fp16, scan_overflow(fp32, job.inputs[0].array[:2], job.progress)),
                        extra={"io_dtype": str(options.io_dtype)})

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> Built:
        from volo_export.precision.fp16 import to_fp16

        options, overflow = prepared.state
        options = dataclasses.replace(options, keep_nodes=tuple(dict.fromkeys([*options.keep_nodes, *keep])))
        converted = to_fp16(fp32, options, overflow)
        return Built(converted.model, converted.kept)
