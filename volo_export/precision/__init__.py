"""Reduced precision inside the ONNX graph: FP16 conversion (`fp16`), INT8 Q/DQ
(`int8`, TensorRT form; `cpu`, ONNX Runtime CPU form; `targets` picks one), the
accuracy gate (`gate`), the per-layer sensitivity fallback (`fallback`) and the
orchestration behind `--precision` (`convert`). The offline TensorRT rules the
INT8 graph must pass live in `volo_export.trt.check`."""


def bench_artifact(fp32, precision: str, output, loaded, target: str = "cpu"):
    """See `volo_export.precision.artifact.bench_artifact` (the `volo-export bench` contract)."""
    from volo_export.precision.artifact import bench_artifact as make

    return make(fp32, precision, output, loaded, target)
