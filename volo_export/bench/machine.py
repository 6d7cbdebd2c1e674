"""What the machine can do, measured and described: the GEMM peak benchmarks are divided by,
resident memory, and the environment (CPU model, SIMD flags, usable cores, library versions)
every benchmark number depends on."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from volo_export.errors import UsageError
from volo_export.hardware import cpu_flags, cpu_isa, cpu_model, usable_cpus
from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings
from volo_export.timing import Runner


@dataclass
class GemmPeak:
    """Best sustained FP32 GEMM rate measured here, in GFLOP/s (2 n^3 FLOP per n x n x n MatMul)."""

    n: int
    threads: int
    onnxruntime_gflops: float | None
    numpy_gflops: float | None
    repeats: int
    note: str = ""

    @property
    def gflops(self) -> float:
        """The reference peak: the faster of the two (both are this machine's FP32 GEMM)."""
        return max(v for v in (self.onnxruntime_gflops, self.numpy_gflops) if v is not None)

    def to_dict(self) -> dict:
        return {**asdict(self), "gflops": self.gflops}


def gemm_peak(n: int = 2048, threads: int = 0, repeats: int = 5, min_time_s: float = 0.5,
              spinning: bool = True) -> GemmPeak:
    """FP32 n x n @ n x n through ONNX Runtime (MatMul node, `threads` intra-op threads; 0 = all cores)
    and numpy's BLAS. Takes the best of `repeats` timings, each at least `min_time_s` long.
    """
    if n < 1 or repeats < 1:
        raise UsageError(f"GEMM size and repeats must be >= 1, got n={n}, repeats={repeats}")
    a, b = gemm_operands(n)
    flop = 2.0 * n**3
    ort_rate = _best_rate(onnxruntime_gemm(_matmul_model(b), a, threads, spinning), flop, repeats, min_time_s)
    numpy_rate = _best_rate(lambda: a @ b, flop, repeats, min_time_s)
    return GemmPeak(n=n, threads=threads, onnxruntime_gflops=ort_rate, numpy_gflops=numpy_rate, repeats=repeats,
                    note="numpy uses its own BLAS thread pool (OPENBLAS/MKL/OMP_NUM_THREADS)")


def gemm_runner(n: int = 2048, threads: int = 0, spinning: bool = True) -> tuple[Runner, float]:
    """An FP32 n x n x n MatMul in ONNX Runtime as a runner (its input is ignored) and its FLOP count,
    so the GEMM peak can be timed in the same interleaved rounds as the backends."""
    a, b = gemm_operands(n)
    call = onnxruntime_gemm(_matmul_model(b), a, threads, spinning)
    return (lambda _x: call()), 2.0 * n**3


def gemm_operands(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The FP32 n x n operands (a, b) every GEMM measurement multiplies: seeded, the same on every call."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)


def onnxruntime_gemm(model: bytes, a: np.ndarray, threads: int, spinning: bool) -> Callable[[], object]:
    """`model` (one input, a GEMM graph) in an ONNX Runtime CPU session, as a call on `a`."""
    runner = OnnxRuntimeRunner(model, SessionSettings(providers=CPU_ONLY, threads=threads, spinning=spinning))
    return lambda: runner(a)


def _best_rate(fn: Callable[[], object], flop: float, repeats: int, min_time_s: float) -> float:
    """Best GFLOP/s over `repeats` timed blocks of back-to-back calls (one untimed warm-up call first)."""
    fn()
    best = math.inf
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time_s:
                break
        best = min(best, elapsed / calls)
    return flop / best / 1e9


def _matmul_model(b: np.ndarray) -> bytes:
    """A one-node ONNX graph Y = X @ B with B (n x n) as an initializer, serialised."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = b.shape[0]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "B"], ["Y"])], "gemm_peak",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n, n])],
        [numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


# --- resident memory (Linux /proc; None elsewhere) ------------------------------------------------

def _status_kb(key: str) -> float | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_mb() -> float | None:
    """This process's resident set size now (VmRSS), MB; None where /proc is missing."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float | None:
    """This process's resident high-water mark (VmHWM, or ru_maxrss without /proc), MB."""
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource
        import sys

        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return raw / 2**20 if sys.platform == "darwin" else raw / 1024  # bytes on macOS, KiB on Linux
    return kb / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `echo 5 > /proc/self/clear_refs`); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- environment ----------------------------------------------------------------------------------

def environment(threads: int) -> dict:
    """What a benchmark number depends on: CPU, cores usable by this process, threads, library versions."""
    import platform

    from volo_export.export.metadata import library_versions

    usable = usable_cpus()
    versions = library_versions(("volo-export", "torch", "onnxruntime", "openvino", "onnx", "numpy", "tensorrt"))
    return {
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "isa": cpu_isa().tier, "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "threads": threads, "python": platform.python_version(), "platform": platform.platform(),
        "versions": versions,
    }
