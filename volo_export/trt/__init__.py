"""TensorRT stage: everything that decides something is pure and runs without TensorRT.

- `check`       offline ONNX-parser compatibility check (onnx only)
- `config`      build settings, optimization profile, builder calls as data, trtexec command
- `provenance`  the `X.engine.json` sidecar: write, read, compare with the running machine
- `environment` what the running machine has (TensorRT, CUDA, GPU) — lazy tensorrt
- `build`       ONNX -> serialized plan with the TensorRT builder — lazy tensorrt
- `infer`       a deserialized engine as `batch -> logits` via Polygraphy — lazy tensorrt
"""
