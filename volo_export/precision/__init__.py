"""Reduced precision inside the ONNX graph: FP16 conversion (`fp16`), INT8 Q/DQ
(`int8`, TensorRT form; `cpu`, ONNX Runtime CPU form; `targets` picks one), the
accuracy gate (`gate`), the per-layer sensitivity fallback (`fallback`) and the
orchestration behind `--precision` (`convert`). The offline TensorRT rules the
INT8 graph must pass live in `volo_export.trt.check`."""
