"""The TensorRT-RTX execution path with stand-ins for TensorRT-RTX and cuda-python, passed as parameters
(no GPU here): validity before deserialising, the runtime cache loaded and saved, buffers reused, one-line
errors. What the real library does before a GPU is needed is in test_rtx.py."""

from __future__ import annotations

import types

import numpy as np
import pytest

from volo_export.errors import EngineError
from volo_export.trt.products import RTX, Library
from volo_export.trt.rtx_session import RtxEngineSession


def fake_rtx(validity=("VALID", 0), deserializes=True, cache_accepts=True, calls=None):
    calls = [] if calls is None else calls
    trt = types.ModuleType("tensorrt_rtx")
    trt.__version__ = "1.7.1.116"

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self):
            pass

    class Cache:
        def deserialize(self, blob):
            calls.append(("cache.deserialize", bytes(blob)))
            return cache_accepts

        def serialize(self):
            return b"jit-kernels"

    class Config:
        def create_runtime_cache(self):
            return Cache()

        def set_runtime_cache(self, cache):
            calls.append(("set_runtime_cache", type(cache).__name__))
            return True

    class Context:
        def set_input_shape(self, name, shape):
            self.shape = shape
            return shape[0] <= 8

        def get_tensor_shape(self, name):
            return (self.shape[0], 10)

        def set_tensor_address(self, name, pointer):
            calls.append(("address", name, pointer))

        def execute_async_v3(self, stream):
            calls.append(("execute", self.shape))
            return True

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ["input", "logits"][i]

        def get_tensor_mode(self, name):
            return trt.TensorIOMode.INPUT if name == "input" else trt.TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return np.float32

        def create_runtime_config(self):
            return Config()

        def create_execution_context(self, config):
            return Context()

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def get_plugin_registry(self):
            return None

        def get_engine_validity(self, plan):
            return types.SimpleNamespace(name=validity[0]), validity[1]

        def deserialize_cuda_engine(self, plan):
            if not deserializes:
                self.logger.log(ILogger.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Cuda Runtime")
                return None
            return Engine()

    trt.ILogger, trt.Runtime = ILogger, Runtime
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: dtype
    return Library.of(RTX, trt.__version__, trt), calls


class FakeCudart:
    """cuda.bindings.runtime's slice: every call answers (error, value)."""

    cudaError_t = types.SimpleNamespace(cudaSuccess=0)
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice="h2d", cudaMemcpyDeviceToHost="d2h")

    def __init__(self):
        self.allocated, self.freed, self.pointer = [], [], 0x1000

    def cudaStreamCreate(self):
        return 0, "stream"

    def cudaMallocAsync(self, nbytes, stream):
        self.pointer += 0x1000
        self.allocated.append(nbytes)
        return 0, self.pointer

    def cudaFreeAsync(self, pointer, stream):
        self.freed.append(pointer)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        if kind == "d2h":  # the "engine" writes 1.0 everywhere
            np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * (nbytes // 4)).from_address(dst))[:] = 1.0
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaStreamDestroy(self, stream):
        return (0,)


def test_runtime_cache_is_loaded_and_saved_per_new_shape(tmp_path):
    cache_file = tmp_path / "cache" / "e.runtime-cache"
    cache_file.parent.mkdir()
    cache_file.write_bytes(b"old-kernels")
    library, calls = fake_rtx()
    cudart = FakeCudart()
    session = RtxEngineSession(b"plan", "e.engine", runtime_cache=cache_file, library=library, cudart=cudart)
    assert session.cache_reused and ("cache.deserialize", b"old-kernels") in calls
    out = session(np.zeros((4, 3, 8, 8), np.float32))
    assert out.shape == (4, 10) and out.dtype == np.float32 and (out == 1.0).all()
    assert cache_file.read_bytes() == b"jit-kernels"  # kernels compiled for the new shape were kept
    cache_file.write_bytes(b"marker")
    session(np.zeros((2, 3, 8, 8), np.float32))  # a new shape, smaller: buffers reused, cache saved again
    assert cache_file.read_bytes() == b"jit-kernels" and len(cudart.allocated) == 2
    cache_file.write_bytes(b"marker")
    session(np.zeros((2, 3, 8, 8), np.float32))  # a shape seen before: nothing to save
    assert cache_file.read_bytes() == b"marker"
    with pytest.raises(EngineError, match="e.engine does not take input shape \\(9, 3, 8, 8\\)"):
        session(np.zeros((9, 3, 8, 8), np.float32))
    session.close()
    assert len(cudart.freed) == 2 and cache_file.read_bytes() == b"jit-kernels"
    assert list(cache_file.parent.iterdir()) == [cache_file]  # atomic writes leave nothing else


def test_a_stale_cache_starts_empty(tmp_path):
    cache_file = tmp_path / "e.runtime-cache"
    cache_file.write_bytes(b"from-another-gpu")
    library, _ = fake_rtx(cache_accepts=False)
    assert not RtxEngineSession(b"plan", "e.engine", runtime_cache=cache_file, library=library,
                                cudart=FakeCudart()).cache_reused


@pytest.mark.parametrize("kwargs,message", [
    (dict(validity=("INVALID", 2)), "TensorRT-RTX cannot load e.engine: it was not built for this GPU's compute"),
    (dict(deserializes=False), "TensorRT-RTX could not deserialize e.engine: IRuntime::deserializeCudaEngine"),
])
def test_load_failures_are_one_line(kwargs, message):
    library, calls = fake_rtx(**kwargs)
    with pytest.raises(EngineError, match=message):
        RtxEngineSession(b"plan", "e.engine", library=library, cudart=FakeCudart())
    assert not [c for c in calls if c[0] == "set_runtime_cache"]


def test_cuda_errors_are_one_line_with_the_real_cuda_python():
    """cuda-python answers (error, value); with no CUDA driver here its first call fails, in one line."""
    runtime = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed (extra rtx)")
    if runtime.cudaStreamCreate()[0] == runtime.cudaError_t.cudaSuccess:
        pytest.skip("a CUDA device is usable here")
    library, _ = fake_rtx()
    with pytest.raises(EngineError, match=r"^e.engine: CUDA error cudaError\w+$"):
        RtxEngineSession(b"plan", "e.engine", library=library, cudart=runtime)
