"""Cases for tests/test_triton_config_messages.py: artifact specs with their volatile metadata fixed, and the
repository settings whose config.pbtxt the hand-written writer of 0.x produced (tests/data/triton_configs_v0.json)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from volo_export.serve.repository import RepoSettings, read_artifact_spec

CASES = {
    "onnx_default": ("onnx", RepoSettings(), False),
    "onnx_options": ("onnx", RepoSettings(max_batch=16, preferred_batch=(4, 16), max_queue_delay_us=500, threads=2,
                                          instances=2, warmup_batch=4), False),
    "onnx_gpu_tensorrt_ep": ("onnx", RepoSettings(name="volo", device="gpu", gpus=(0, 1), tensorrt_ep=True, version=3,
                                                  trt_cache_dir="/var/cache/trt"), False),
    "onnx_no_batching_queue": ("onnx", RepoSettings(dynamic_batching=False, warmup_batch=0), False),
    "int8_image_ensemble": ("int8", RepoSettings(image_model=True, max_batch=8), False),
    "int8_serve_local": ("int8", RepoSettings(image_model=True, threads=3), True),
    "engine_default": ("engine", RepoSettings(), False),
    "engine_gpus": ("engine", RepoSettings(gpus=(1,), max_batch=4, instances=2), False),
}


def normalized_spec(path: Path, kind: str):
    """The spec of `path` with the metadata that changes between runs fixed (package versions, checkpoint
    hash), the artifact path fixed, and for "int8" the metadata of a calibrated INT8 artifact (strings with
    quotes, backslashes and newlines, which the text format must escape)."""
    spec = read_artifact_spec(path)
    info = replace(spec.info, versions={"onnx": "1.x", "torch": "2.x"}, checkpoint_sha256="0" * 64)
    if kind == "int8":
        info = replace(info, precision="int8", target="tensorrt",
                       extra={"calibration": json.dumps({"method": "entropy", "note": 'a "quoted"\\path\nline'}),
                              "io_dtype": "float32"})
    return replace(spec, info=info, path=Path("/models") / path.name)
