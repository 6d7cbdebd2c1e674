"""The timing engine: result fields, ordering, interleaving, failures, GEMM peak. No timed assertions."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import RecordingProgress
from volo_export.bench.machine import gemm_peak, peak_rss_mb
from volo_export.errors import UsageError
from volo_export.timing import FAILED, OK, BenchSettings, measure, summarize, unavailable, with_flops


def _identity_runner(calls: list):
    def run(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape[0])
        return x.reshape(x.shape[0], -1)[:, :3]
    return run


def test_measure_rows_fields_and_order():
    log_a, log_b = [], []
    settings = BenchSettings(batch_sizes=(1, 4), warmup=1, iterations=5)
    rows = measure({"a": _identity_runner(log_a), "b": _identity_runner(log_b)}, (3, 8, 8), settings)
    assert [(r.backend, r.batch_size) for r in rows] == [("a", 1), ("b", 1), ("a", 4), ("b", 4)]
    for r in rows:
        assert r.status == OK and r.iterations == 5 and len(r.latencies_ms) == 5
        assert 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms
        assert r.throughput == pytest.approx(r.batch_size / (r.p50_ms / 1e3))
        assert r.cpu_p50_ms is not None and r.cpu_p50_ms >= 0
    assert log_a == [1] * 6 + [4] * 6  # warm-up + timed calls, with the right batch


def test_measure_interleaves_and_rotates_order():
    order = []
    runners = {n: (lambda x, n=n: order.append(n)) for n in ("a", "b", "c")}
    measure(runners, (2,), BenchSettings(batch_sizes=(1,), warmup=0, iterations=3))
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_measure_reports_a_failing_runner_and_keeps_the_others():
    def broken(x):
        if x.shape[0] > 1:
            raise RuntimeError("out of memory\nmore text")
        return x

    rows = measure({"ok": lambda x: x, "broken": broken}, (2,), BenchSettings(batch_sizes=(1, 2), iterations=2))
    by = {(r.backend, r.batch_size): r for r in rows}
    assert by["broken", 1].status == OK
    assert by["broken", 2].status == FAILED and by["broken", 2].reason == "RuntimeError: out of memory"
    assert by["broken", 2].p50_ms is None and by["ok", 2].status == OK


def test_time_budget_stops_early_but_keeps_min_iterations():
    import time

    rows = measure({"slow": lambda x: time.sleep(0.01)}, (1,),
                   BenchSettings(batch_sizes=(1,), warmup=0, iterations=1000, min_iterations=3, time_budget_s=0.001))
    assert rows[0].iterations == 3


def test_progress_reaches_total():
    seen = RecordingProgress()
    measure({"a": lambda x: x}, (1,), BenchSettings(batch_sizes=(1, 2), warmup=1, iterations=2), seen)
    assert seen.advances[-1] == (6, 6) and [d for d, _ in seen.advances] == list(range(1, 7))


def test_summarize_percentiles():
    r = summarize("x", 2, [i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert r.p50_ms == pytest.approx(50.5) and r.p90_ms == pytest.approx(90.1) and r.p99_ms == pytest.approx(99.01)
    assert r.throughput == pytest.approx(2 / 0.0505)


def test_with_flops_and_unavailable_rows():
    rows = [summarize("x", 4, [0.5, 0.5, 0.5])] + unavailable("trt", [4], "tensorrt not installed")
    rows[0].cpu_p50_ms = 1000.0
    out = with_flops(rows, flops_per_sample=1e9, peak_gflops=16.0, peak_gflop_per_cpu_s=8.0)
    assert out[0].gflops == pytest.approx(8.0) and out[0].peak_fraction == pytest.approx(0.5)
    assert out[0].cpu_peak_fraction == pytest.approx(0.5)  # 4 GFLOP in 1 CPU-second vs 8
    assert out[1].status == "unavailable" and out[1].reason == "tensorrt not installed" and out[1].gflops is None
    assert rows[0].gflops is None  # inputs untouched


def test_settings_reject_nonsense():
    with pytest.raises(UsageError):
        BenchSettings(batch_sizes=(0,))
    with pytest.raises(UsageError):
        BenchSettings(iterations=0)


def test_gemm_peak_is_positive():
    peak = gemm_peak(n=256, threads=1, repeats=1, min_time_s=0.01)
    assert peak.onnxruntime_gflops > 0 and peak.numpy_gflops > 0
    assert peak.gflops == max(peak.onnxruntime_gflops, peak.numpy_gflops)


def test_peak_rss_is_positive():
    assert peak_rss_mb() > 10
