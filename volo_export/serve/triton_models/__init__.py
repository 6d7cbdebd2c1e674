"""Triton Python-backend models that volo-export writes into model repositories (as `NAME/1/model.py`).

They run inside Triton's `triton_python_backend_stub`, import `triton_python_backend_utils`, and are
never imported by volo-export itself:

- `network_model.py`     `serve`: the artifact run by volo-export's own runner (ONNX Runtime, TensorRT)
- `preprocess_model.py`  encoded images -> the artifact's preprocessing (vendored beside it); needs only
                         numpy and Pillow, so it runs in the NGC container as well
"""
