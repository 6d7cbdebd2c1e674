"""Reduced precision inside the ONNX graph: FP16 conversion (`fp16`), INT8 Q/DQ (`int8`, TensorRT
form; `cpu`, ONNX Runtime CPU form), one strategy per (precision, target) (`targets`), the per-layer
sensitivity fallback (`fallback`) and the gated conversion behind `--precision` and `quantize`
(`convert`). The offline TensorRT rules the INT8 graph must pass live in `volo_export.trt.check`."""
