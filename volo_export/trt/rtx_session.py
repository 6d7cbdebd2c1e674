"""A TensorRT-RTX engine on the user's RTX GPU as `float32 (N, 3, S, S) -> float32 (N, classes)`.

Follows NVIDIA's TensorRT-RTX Python sample (samples/helloWorld/python/hello_world.py): the
plan is checked with `Runtime.get_engine_validity` before it is deserialised (a plan for other
compute capabilities or another TensorRT-RTX version is a one-line error, not a crash), the
execution context gets a runtime config with a runtime cache for the kernels TensorRT-RTX
compiles just in time (loaded from `runtime_cache` when the file is there, saved back
atomically whenever a new input shape has been compiled and on `close`), and device memory
and the stream come from cuda-python's runtime bindings (`pip install -e ".[rtx]"`).

Not run on the machines this project is developed on (no GPU): the steps before the GPU is
touched (validity, deserialisation errors) are tested with the real TensorRT-RTX, the rest
with stand-ins passed as `library` and `cudart`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from volo_export.errors import EngineError, first_line
from volo_export.io import atomic_output
from volo_export.trt.infer import engine_io, load_plugins
from volo_export.trt.parser import make_logger
from volo_export.trt.products import Library, require_library
from volo_export.trt.rtx import validity_problem


def _cudart():
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise EngineError('cuda-python is not installed: pip install -e ".[rtx]" (it moves tensors to the GPU '
                          "for TensorRT-RTX)") from None
    return runtime


class RtxEngineSession:
    """One TensorRT-RTX engine, its runtime cache and an execution context on CUDA device 0."""

    def __init__(self, plan: bytes, name: str, plugins: Sequence[Path] = (), runtime_cache: Path | None = None,
                 library: Library | None = None, cudart=None):
        library = library or require_library("rtx")
        trt = library.module
        self.name, self.runtime_cache = name, runtime_cache
        logger = make_logger(trt)
        runtime = trt.Runtime(logger)
        load_plugins(runtime.get_plugin_registry(), plugins)
        validity, diagnostics = runtime.get_engine_validity(plan)
        problem = validity_problem(validity.name, int(diagnostics), name)
        if problem:
            raise EngineError(problem)
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(f"TensorRT-RTX could not deserialize {name}: "
                              f"{first_line(logger.errors[0]) if logger.errors else 'no reason given'}")
        self.input_name, self.output_name = engine_io(trt, engine, name)
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        config = engine.create_runtime_config()
        self.cache = config.create_runtime_cache()
        # A cache from another GPU, driver or TensorRT-RTX is refused (False): start empty, overwrite it later.
        self.cache_reused = bool(runtime_cache and Path(runtime_cache).is_file()
                                 and self.cache.deserialize(Path(runtime_cache).read_bytes()))
        config.set_runtime_cache(self.cache)
        self.engine, self.config = engine, config  # the cache must outlive the contexts that use it
        self.context = engine.create_execution_context(config)
        if self.context is None:
            raise EngineError(f"TensorRT-RTX could not create an execution context for {name}")
        self.cudart = cudart or _cudart()
        self.stream = self._cuda(self.cudart.cudaStreamCreate())
        self.buffers: dict[str, tuple[int, int]] = {}  # tensor -> (device pointer, bytes)
        self.shapes: set[tuple[int, ...]] = set()

    def _cuda(self, answer):
        """cuda-python returns (error, value...): raise on an error, return the value."""
        error, *value = answer if isinstance(answer, tuple) else (answer,)
        if error != self.cudart.cudaError_t.cudaSuccess:
            raise EngineError(f"{self.name}: CUDA error {getattr(error, 'name', error)}")
        return value[0] if value else None

    def _device(self, tensor: str, nbytes: int) -> int:
        """A device buffer of at least `nbytes` for `tensor`, bound to the context."""
        pointer, size = self.buffers.get(tensor, (0, 0))
        if size < nbytes:
            if pointer:
                self._cuda(self.cudart.cudaFreeAsync(pointer, self.stream))
            pointer = self._cuda(self.cudart.cudaMallocAsync(nbytes, self.stream))
            self.buffers[tensor] = (pointer, nbytes)
            self.context.set_tensor_address(tensor, pointer)
        return pointer

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        if not self.context.set_input_shape(self.input_name, x.shape):
            raise EngineError(f"{self.name} does not take input shape {tuple(x.shape)}")
        out = np.empty(tuple(self.context.get_tensor_shape(self.output_name)), self.output_dtype)
        kind = self.cudart.cudaMemcpyKind
        src = self._device(self.input_name, x.nbytes)
        dst = self._device(self.output_name, out.nbytes)
        self._cuda(self.cudart.cudaMemcpyAsync(src, x.ctypes.data, x.nbytes, kind.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise EngineError(f"{self.name} failed on a batch of shape {tuple(x.shape)}")
        self._cuda(self.cudart.cudaMemcpyAsync(out.ctypes.data, dst, out.nbytes, kind.cudaMemcpyDeviceToHost,
                                               self.stream))
        self._cuda(self.cudart.cudaStreamSynchronize(self.stream))
        if tuple(x.shape) not in self.shapes:  # kernels for a new shape were compiled: keep them
            self.shapes.add(tuple(x.shape))
            self.save_cache()
        return out.astype(np.float32, copy=False)

    def save_cache(self) -> None:
        """Write the runtime cache to `runtime_cache` (atomically; its folder is created)."""
        if self.runtime_cache is None:
            return
        path = Path(self.runtime_cache)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp:
            tmp.write_bytes(bytes(memoryview(self.cache.serialize())))

    def close(self) -> None:
        self.save_cache()
        for pointer, _ in self.buffers.values():
            self._cuda(self.cudart.cudaFreeAsync(pointer, self.stream))
        self.buffers = {}
        self._cuda(self.cudart.cudaStreamSynchronize(self.stream))
        self._cuda(self.cudart.cudaStreamDestroy(self.stream))
