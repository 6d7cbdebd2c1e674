"""The timing engine: interleaved latency/throughput measurement and its result rows.

`measure` knows nothing about VOLO: it takes named runners
`runner(x: float32 (N, *sample_shape)) -> array` and, per batch size, warms every
runner up and then times them round-robin (one call each per round, the order
rotating every round), so slow drifts of a shared machine (other processes,
thermal state) hit every backend alike and the ratios between backends stay
meaningful. `with_flops` adds achieved GFLOP/s and the fraction of a peak.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from volo_export.errors import UsageError, VoloExportError, first_line
from volo_export.progress import SILENT, Progress

Runner = Callable[[np.ndarray], np.ndarray]

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
    progress: Progress = SILENT,
) -> list[BenchResult]:
    """Time every runner at every batch size, interleaved; returns rows ordered by (batch size, runner order).
    Progress counts the planned warm-up + timed calls.

    A runner that raises RuntimeError/MemoryError (e.g. out of memory at a
    large batch) or a VoloExportError gets a "failed" row with the message
    for that batch size; the others go on.
    """
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
                failed[name] = first_line(e, typed=True)[:300]
                return None
            return time.perf_counter() - t0, time.process_time() - c0

        for w in range(settings.warmup):
            for name in names:
                call(name)
                done += 1
                progress.advance(done, total, f"batch {batch}: warm-up {w + 1}/{settings.warmup} {name}")
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
                progress.advance(done, total, f"batch {batch}: round {i + 1}/{settings.iterations} {name}")
            rounds += 1
            over_budget = settings.time_budget_s is not None and time.perf_counter() - start > settings.time_budget_s
            if over_budget and rounds >= settings.min_iterations:
                done += (settings.iterations - rounds) * len(names)
                progress.advance(done, total, f"batch {batch}: time budget reached after {rounds} rounds")
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
