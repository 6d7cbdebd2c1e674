"""BF16 as an inference hint (`--precision bf16`): the FP32 graph unchanged, metadata
`inference_precision: bf16`. CPU runtimes that honour it compute in bfloat16 (OpenVINO's
INFERENCE_PRECISION_HINT; ONNX Runtime has no bf16 CPU kernels and computes it in float32, saying
so). Gated in OpenVINO with the hint, so the gate judges the bf16 arithmetic. Refused where the CPU
has no AVX512_BF16 or AMX-BF16. Whether it is faster is the CPU's business (`volo-export bench`;
docs/CPU.md)."""

from __future__ import annotations

from collections.abc import Sequence

from volo_export.names import Precision, Runtime, Target
from volo_export.precision.form import BenchEntry, Built, Job, PrecisionForm, Prepared, openvino_gate_runner, register

# ONNX Runtime 1.32's x86 CPU provider has no bfloat16 MatMul, Gemm, Add, Mul, Softmax or Gelu kernels
# (one-node bf16 graphs: NOT_IMPLEMENTED) and no session option that computes in bf16.
ORT_NO_BF16 = ("ONNX Runtime's CPU provider has no bf16 kernels (MatMul, Gemm, Softmax, Gelu: not implemented) "
               "and no bf16 compute option: a bf16 artifact runs there in float32 (= onnx-fp32)")


@register
class Bf16Cpu(PrecisionForm):
    precision = Precision.BF16
    target = Target.CPU
    default = True
    tolerance = Precision.BF16
    describe = "float32 graph with a bf16 inference hint for CPU runtimes"
    gate_runtime = "OpenVINO CPU (bf16)"
    refused_targets = {
        Target.TENSORRT: "--precision bf16 is an inference hint for CPU runtimes (--target cpu, the default for bf16)",
        Target.OPENVINO: "--precision bf16 has one form, a float32 graph with a bf16 hint (--target cpu, the "
                         "default for bf16); OpenVINO honours it",
    }
    bench = (BenchEntry("onnx-bf16", "volo-export BF16 (FP32 graph + bf16 hint), ONNX Runtime CPU", Runtime.ONNXRUNTIME,
                        unavailable=ORT_NO_BF16, default=True),
             BenchEntry("openvino-bf16", "volo-export BF16 (FP32 graph + bf16 hint), OpenVINO CPU (bf16 hint)",
                        Runtime.OPENVINO, needs=("import_openvino", "check_bf16_cpu"), default=True))

    def require(self) -> None:
        from volo_export.runtime.openvino_runner import check_bf16_cpu, import_openvino

        check_bf16_cpu()
        import_openvino()

    def prepare(self, fp32, job: Job) -> Prepared:
        return Prepared(None, extra={"inference_precision": str(Precision.BF16)})

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> Built:
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(fp32)
        return Built(model, [])

    def runner(self, model, info=None):
        return openvino_gate_runner(model, info)  # precision bf16: the bf16 hint (openvino_runner.HINTS)
