"""Serving volo-export artifacts with NVIDIA Triton Inference Server.

- `model_config`   parse and check a `config.pbtxt` with Triton's own ModelConfig protobuf
- `repository`     artifact -> model repository (ONNX Runtime / TensorRT models, image ensemble, labels)
- `tritonserver`   the `tritonserver` binary of the nvidia-pytriton wheel as a child process we control
- `server`         use case `serve`: a generated repository on a real local Triton, until told to stop
- `client`         KServe v2 over HTTP or gRPC; a served model as a `Runner` (predict --url)
- `loadtest`       concurrent distinct requests, each answer checked against local inference
- `triton_models/` the Python-backend `model.py` files the repositories carry

Client-side modules need `tritonclient` (extra `triton`); the server needs the nvidia-pytriton wheel
(extra `serve`, numpy < 2). Both are imported lazily.
"""
