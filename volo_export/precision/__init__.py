"""Reduced precision inside the ONNX graph: one registered form per (precision, target) (`form`: the base
and the registry; `forms/`: one module per form), FP16 conversion (`fp16`), INT8 Q/DQ (`int8`; the
ONNX Runtime CPU form's graph in `cpu`, OpenVINO's in `openvino`), the per-layer sensitivity fallback
(`fallback`) and the gated conversion behind `--precision` and `quantize` (`convert`). The offline
TensorRT rules the INT8 graph must pass live in `volo_export.trt.check`."""
