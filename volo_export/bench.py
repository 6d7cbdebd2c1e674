"""Interleaved latency/throughput measurement, GEMM peak, and result records.

The timing engine (`measure`) knows nothing about VOLO: it takes named
runners `runner(x: float32 (N, *sample_shape)) -> array` and, per batch size,
warms every runner up and then times them round-robin (one call each per
round, the order rotating every round), so slow drifts of a shared machine
(other processes, thermal state) hit every backend alike and the ratios
between backends stay meaningful. Which backends exist and how they are
built lives in `volo_export.benchmark` (the `volo-export bench` command).

Stable API (other stages reuse it):
    measure(runners, sample_shape, settings, on_progress) -> list[BenchResult]
    gemm_peak(n, threads, ...) -> GemmPeak;  gemm_runner(n, threads) -> (runner, flop)
    with_flops(results, flops_per_sample, peak_gflops) -> list[BenchResult]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]
# on_progress(done_calls, total_calls, text): total is the planned count of timed + warm-up calls.
ProgressCallback = Callable[[int, int, str], None]

OK, UNAVAILABLE, FAILED = "ok", "unavailable", "failed"


@dataclass(frozen=True)
class BenchSettings:
    """How long to measure.

    Per batch size, every runner gets `warmup` untimed calls, then up to
    `iterations` timed rounds; with `time_budget_s`, rounds stop early once
    the batch size has used that much wall time (at least `min_iterations`
    rounds always run).
    """

    batch_sizes: tuple[int, ...] = (1, 8)
    warmup: int = 2
    iterations: int = 20
    min_iterations: int = 3
    time_budget_s: float | None = None
    seed: int = 0

    def __post_init__(self):
        from volo_export.errors import UsageError

        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise UsageError(f"batch sizes must be >= 1, got {list(self.batch_sizes)}")
        if self.iterations < 1 or self.warmup < 0 or self.min_iterations < 1:
            raise UsageError("need iterations >= 1, min_iterations >= 1 and warmup >= 0")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise UsageError(f"time budget must be positive, got {self.time_budget_s}")


@dataclass
class BenchResult:
    """One backend at one batch size. Latencies are per call (one batch), in milliseconds.

    `status` is "ok", "unavailable" (could not be built here; `reason` says
    why) or "failed" (built but raised while running; `reason` says what).
    Numbers are None unless status is "ok" (memory may be None when not measured).
    """

    backend: str
    batch_size: int
    status: str = OK
    reason: str | None = None
    iterations: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    min_ms: float | None = None
    throughput: float | None = None  # images per second, from the median latency
    gflops: float | None = None  # achieved GFLOP/s from the analytic FLOP count, at the median
    peak_fraction: float | None = None  # gflops / measured GEMM peak
    peak_rss_mb: float | None = None
    rss_delta_mb: float | None = None
    # Median CPU time of this process per call (all its threads). On a machine shared with other
    # work, FLOP per CPU-second is the efficiency that other processes cannot distort.
    cpu_p50_ms: float | None = None
    cpu_peak_fraction: float | None = None  # (FLOP / CPU s) over the GEMM's (FLOP / CPU s)
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, with_samples: bool = False) -> dict:
        d = asdict(self)
        if not with_samples:
            d.pop("latencies_ms")
        return d


def summarize(backend: str, batch_size: int, latencies_s: Sequence[float],
              cpu_s: Sequence[float] | None = None) -> BenchResult:
    """Percentiles (linear interpolation) and throughput of per-call latencies in seconds
    (and the median of per-call process CPU times, when given)."""
    ms = np.asarray(latencies_s, dtype=np.float64) * 1e3
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return BenchResult(
        backend=backend, batch_size=batch_size, iterations=len(ms), p50_ms=p50, p90_ms=p90, p99_ms=p99,
        mean_ms=float(ms.mean()), min_ms=float(ms.min()), throughput=batch_size / (p50 / 1e3),
        cpu_p50_ms=float(np.median(cpu_s)) * 1e3 if cpu_s else None, latencies_ms=[float(v) for v in ms],
    )


def unavailable(backend: str, batch_sizes: Sequence[int], reason: str, status: str = UNAVAILABLE) -> list[BenchResult]:
    """Result rows for a backend that cannot run, one per batch size, carrying the reason."""
    return [BenchResult(backend=backend, batch_size=b, status=status, reason=reason) for b in batch_sizes]


def make_input(sample_shape: Sequence[int], batch_size: int, seed: int = 0) -> np.ndarray:
    """Deterministic float32 (batch_size, *sample_shape) normal noise (values do not change the timing)."""
    rng = np.random.default_rng(seed + batch_size)
    return rng.standard_normal((batch_size, *sample_shape), dtype=np.float32)


def measure(
    runners: Mapping[str, Runner],
    sample_shape: Sequence[int],
    settings: BenchSettings = BenchSettings(),
    on_progress: ProgressCallback = lambda done, total, text: None,
) -> list[BenchResult]:
    """Time every runner at every batch size, interleaved; returns rows ordered by (batch size, runner order).

    A runner that raises RuntimeError/MemoryError (e.g. out of memory at a
    large batch) or a VoloExportError gets a "failed" row with the message
    for that batch size; the others go on.
    """
    from volo_export.errors import VoloExportError

    names = list(runners)
    total = len(settings.batch_sizes) * len(names) * (settings.warmup + settings.iterations)
    done = 0
    results: list[BenchResult] = []
    for batch in settings.batch_sizes:
        x = make_input(sample_shape, batch, settings.seed)
        failed: dict[str, str] = {}
        samples: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}

        def call(name: str) -> tuple[float, float] | None:
            """(wall s, process CPU s) of one call, None if the runner failed."""
            if name in failed:
                return None
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                runners[name](x)
            except (RuntimeError, MemoryError, VoloExportError) as e:
                failed[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
                return None
            return time.perf_counter() - t0, time.process_time() - c0

        for w in range(settings.warmup):
            for name in names:
                call(name)
                done += 1
                on_progress(done, total, f"batch {batch}: warm-up {w + 1}/{settings.warmup} {name}")
        start = time.perf_counter()
        rounds = 0
        for i in range(settings.iterations):
            order = names[i % len(names):] + names[:i % len(names)]  # rotate who goes first
            for name in order:
                dt = call(name)
                if dt is not None:
                    samples[name].append(dt[0])
                    cpu[name].append(dt[1])
                done += 1
                on_progress(done, total, f"batch {batch}: round {i + 1}/{settings.iterations} {name}")
            rounds += 1
            over_budget = settings.time_budget_s is not None and time.perf_counter() - start > settings.time_budget_s
            if over_budget and rounds >= settings.min_iterations:
                done += (settings.iterations - rounds) * len(names)
                on_progress(done, total, f"batch {batch}: time budget reached after {rounds} rounds")
                break
        for name in names:
            if name in failed:
                results.append(BenchResult(backend=name, batch_size=batch, status=FAILED, reason=failed[name]))
            else:
                results.append(summarize(name, batch, samples[name], cpu[name]))
    return results


def with_flops(results: Sequence[BenchResult], flops_per_sample: float | None,
               peak_gflops: float | None = None, peak_gflop_per_cpu_s: float | None = None) -> list[BenchResult]:
    """Copies of `results` with achieved GFLOP/s (at the median latency), its fraction of `peak_gflops`,
    and (given the GEMM's GFLOP per CPU-second) the same fraction measured in CPU time."""
    out = []
    for r in results:
        if r.status != OK or not flops_per_sample:
            out.append(replace(r))
            continue
        flop = flops_per_sample * r.batch_size
        gflops = flop / (r.p50_ms / 1e3) / 1e9
        cpu_fraction = None
        if peak_gflop_per_cpu_s and r.cpu_p50_ms:
            cpu_fraction = flop / (r.cpu_p50_ms / 1e3) / 1e9 / peak_gflop_per_cpu_s
        out.append(replace(r, gflops=gflops, peak_fraction=gflops / peak_gflops if peak_gflops else None,
                           cpu_peak_fraction=cpu_fraction))
    return out


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
              with_onnxruntime: bool = True, spinning: bool = True) -> GemmPeak:
    """FP32 n x n @ n x n through ONNX Runtime (MatMul node, `threads` intra-op threads; 0 = all cores)
    and numpy's BLAS. Takes the best of `repeats` timings, each at least `min_time_s` long.
    """
    from volo_export.errors import UsageError

    if n < 1 or repeats < 1:
        raise UsageError(f"GEMM size and repeats must be >= 1, got n={n}, repeats={repeats}")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flop = 2.0 * n**3
    ort_rate = None
    if with_onnxruntime:
        from volo_export.runtime import OnnxRuntimeRunner, SessionSettings

        runner = OnnxRuntimeRunner(_matmul_model(b), SessionSettings(providers=("CPUExecutionProvider",),
                                                                      threads=threads, spinning=spinning))
        ort_rate = _best_rate(lambda: runner(a), flop, repeats, min_time_s)
    numpy_rate = _best_rate(lambda: a @ b, flop, repeats, min_time_s)
    return GemmPeak(n=n, threads=threads, onnxruntime_gflops=ort_rate, numpy_gflops=numpy_rate, repeats=repeats,
                    note="numpy uses its own BLAS thread pool (OPENBLAS/MKL/OMP_NUM_THREADS)")


def gemm_runner(n: int = 2048, threads: int = 0, spinning: bool = True) -> tuple[Runner, float]:
    """An FP32 n x n x n MatMul in ONNX Runtime as a runner (its input is ignored) and its FLOP count,
    so the GEMM peak can be timed in the same interleaved rounds as the backends."""
    from volo_export.runtime import OnnxRuntimeRunner, SessionSettings

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    runner = OnnxRuntimeRunner(_matmul_model(rng.standard_normal((n, n), dtype=np.float32)),
                               SessionSettings(providers=("CPUExecutionProvider",), threads=threads,
                                               spinning=spinning))
    return (lambda _x: runner(a)), 2.0 * n**3


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

def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    import platform

    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that decide GEMM speed (avx2, avx512f, avx512_vnni, amx...) present on this CPU."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def environment(threads: int) -> dict:
    """What a benchmark number depends on: CPU, cores usable by this process, threads, library versions."""
    import os
    import platform
    from importlib import metadata

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {}
    for dist in ("volo-export", "torch", "onnxruntime", "onnx", "numpy", "tensorrt"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu": cpu_model(), "cpu_flags": cpu_flags(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
        "threads": threads, "python": platform.python_version(), "platform": platform.platform(),
        "versions": versions,
    }
