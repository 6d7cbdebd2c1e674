"""Triton Python-backend model written by `volo-export serve`: a volo-export artifact run by volo-export's
own runner (`volo_export.runtime.open_runner`: ONNX Runtime with TensorRT > CUDA > CPU, or a TensorRT
engine), reading the artifact where it lies (config parameter `artifact`; `threads`: ONNX Runtime intra-op
threads, 0 = all cores). Runs in the interpreter of `volo-export serve`, whose environment has volo-export.

Each call gets every request the dynamic batcher grouped: they run as one batch, split back per request.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from volo_export.errors import first_line
from volo_export.runtime import SessionSettings, open_runner
from volo_export.runtime.base import run_in_batches

_NUMPY = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config["parameters"].items()}
        # Idle ONNX Runtime threads do not busy-wait: they would take the cores Triton's own threads and the
        # clients need between batches (measured: docs/SERVING.md).
        settings = SessionSettings(threads=int(params["threads"]), spinning=False)
        self.runner = open_runner(Path(params["artifact"]), settings)
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.output_dtype = _NUMPY[config["output"][0]["data_type"]]

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        batch = np.concatenate(arrays)
        accepted = self.runner.batch_range
        size = max(accepted.lo, min(len(batch), accepted.hi or len(batch)))
        try:
            logits = run_in_batches(self.runner, batch, size).astype(self.output_dtype)
        except Exception as e:  # the server boundary: the requests of this batch get the error, the server stays up
            error = pb_utils.TritonError(first_line(e, typed=True))
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        bounds = np.cumsum([len(a) for a in arrays])[:-1]
        return [pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, np.ascontiguousarray(part))])
                for part in np.split(logits, bounds)]

    def finalize(self):
        self.runner = None
