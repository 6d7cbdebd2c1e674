"""Reduced precision inside the ONNX graph: FP16 conversion (`fp16`), INT8 Q/DQ
(`int8`), the offline TensorRT Q/DQ rules (`qdq_rules`) and the per-layer
sensitivity fallback (`fallback`)."""
