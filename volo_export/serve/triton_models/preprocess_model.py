"""Triton Python-backend model written by volo-export: encoded image bytes -> the artifact's own
preprocessing -> float (N, 3, S, S) for the network model of the ensemble.

The preprocessing is volo-export's one implementation (`volo_export/preprocess.py`: decode with EXIF
orientation and the decompression-bomb limit, resize, centre crop, normalise), copied beside this file with
the few pure-Python modules it imports, so the server's Python needs only numpy and Pillow.
`preprocessing.json` holds the artifact's settings. An image that cannot be decoded fails only its request.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the vendored volo_export/ beside this file

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from volo_export.errors import first_line  # noqa: E402
from volo_export.models.variants import Preprocessing  # noqa: E402
from volo_export.preprocess import decode_image, preprocess_image  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        with open(os.path.join(HERE, "preprocessing.json"), encoding="utf-8") as f:
            settings = json.load(f)
        self.dtype = np.dtype(settings.pop("dtype"))
        settings["mean"], settings["std"] = tuple(settings["mean"]), tuple(settings["std"])
        self.preprocessing = Preprocessing(**settings)
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]

    def _tensor(self, blobs):
        return np.stack([preprocess_image(decode_image(bytes(blob), f"#{i}"), self.preprocessing, f"#{i}")
                         for i, blob in enumerate(blobs.reshape(-1))]).astype(self.dtype)

    def execute(self, requests):
        responses = []
        for request in requests:
            blobs = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            try:
                tensor = self._tensor(blobs)
            except Exception as e:  # the server boundary: one request's bad image is that request's error
                error = pb_utils.TritonError(first_line(e, typed=True))
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output_name, tensor)]))
        return responses
