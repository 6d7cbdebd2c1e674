"""A deserialized TensorRT engine as `float32 (N, 3, S, S) -> float32 (N, classes)`.
(TensorRT-RTX engines: `trt.rtx_session`.)

Thin on purpose: Polygraphy's `TrtRunner` owns the device buffers, the CUDA
stream, `set_input_shape` and `execute_async_v3`, and follows TensorRT API
changes between 10 and 11. Callers (runtime.TensorRTRunner) check the sidecar,
the plan file and the batch against the profile before anything here runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from volo_export.errors import EngineError
from volo_export.trt.products import require_library


def load_plugins(registry, plugins: Sequence[Path]) -> None:
    """Load plugin libraries into a TensorRT plugin registry (builder's or runtime's)."""
    for lib in plugins:
        if not Path(lib).is_file():
            raise EngineError(f"plugin library not found: {lib}")
        if not registry.load_library(str(lib)):
            raise EngineError(f"TensorRT could not load plugin library {lib}")


def engine_io(trt, engine, name: str) -> tuple[str, str]:
    """(input name, output name) of a deserialized engine; anything but one of each is an EngineError."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) != 1 or len(outputs) != 1:
        raise EngineError(f"{name} has inputs {inputs} and outputs {outputs}; expected one of each")
    return inputs[0], outputs[0]


class EngineSession:
    """One engine and execution context on the current CUDA device."""

    def __init__(self, plan: bytes, name: str, plugins: Sequence[Path] = ()):
        trt = require_library("tensorrt").module
        try:
            from polygraphy.backend.trt import TrtRunner
            from polygraphy.exception import PolygraphyException
        except ImportError:
            raise EngineError("Polygraphy is not installed: pip install polygraphy") from None
        self._error = PolygraphyException
        logger = trt.Logger(trt.Logger.ERROR)
        trt.init_libnvinfer_plugins(logger, "")
        runtime = trt.Runtime(logger)
        load_plugins(runtime.get_plugin_registry(), plugins)
        runtime.engine_host_code_allowed = True  # version-compatible plans embed their lean runtime
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(f"TensorRT could not deserialize {name} (see the TensorRT error above): the plan is "
                              "damaged or was built for another TensorRT/GPU")
        self.name, self.engine = name, engine
        self.input_name, self.output_name = engine_io(trt, engine, name)
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self.runner = TrtRunner(engine, name=name)
        try:
            self.runner.activate()
        except PolygraphyException as e:
            raise EngineError(f"cannot create an execution context for {name}: {e}") from None

    def profile_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes of profile 0, as the engine reports them."""
        lo, opt, hi = self.engine.get_tensor_profile_shape(self.input_name, 0)
        return tuple(lo), tuple(opt), tuple(hi)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        try:
            out = self.runner.infer({self.input_name: np.ascontiguousarray(x, dtype=self.input_dtype)},
                                    copy_outputs_to_host=True)
        except self._error as e:
            raise EngineError(f"{self.name} failed on a batch of shape {tuple(x.shape)}: {e}") from None
        return np.array(out[self.output_name], dtype=np.float32)  # copy: Polygraphy reuses its host buffer

    def close(self) -> None:
        if self.runner.is_active:
            self.runner.deactivate()
