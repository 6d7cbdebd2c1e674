"""TensorRT stage: everything that decides something is pure and runs without TensorRT.

- `products`    TensorRT (10/11) or TensorRT-RTX (1.x): which is installed, version gates, compute
                capabilities; the one lazy import of either module
- `check`       offline ONNX-parser compatibility check (onnx only)
- `parser`      the real ONNX parser's verdict and every error it reports — lazy tensorrt(_rtx)
- `config`      build settings, optimization profile, builder calls as data, trtexec command
- `layers`      the builder's DETAILED layer table -> layer precisions per MatMul/Gemm/Conv (pure)
- `rtx`         TensorRT-RTX plan header, validity diagnostics, runtime-cache path (pure)
- `provenance`  the `X.engine.json` sidecar: write, read, compare with the running machine
- `environment` what the running machine has (TensorRT, TensorRT-RTX, CUDA, GPU)
- `build`       ONNX -> serialized plan with the TensorRT or TensorRT-RTX builder
- `infer`       a deserialized TensorRT engine as `batch -> logits` via Polygraphy
- `rtx_session` a deserialized TensorRT-RTX engine as `batch -> logits` (runtime cache, cuda-python)
"""
