"""Ranges from activation statistics: minmax, percentile and entropy (KL divergence).

Each method gives one clipping threshold `amax` per tensor; the range is the
observed (min, max) clipped to [-amax, amax]. Symmetric INT8 uses amax; an
asymmetric (uint8) graph uses the clipped (min, max).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from volo_export.activations import TensorStats
from volo_export.errors import UsageError
from volo_export.names import CalibMethod

METHODS = tuple(CalibMethod)
# The default, chosen by measurement (benchmarks/calibration_methods.py; the figures are in
# docs/PRECISION.md): as accurate as the best method, good with few samples, and it never clips a
# value seen in calibration.
DEFAULT_METHOD = CalibMethod.MINMAX
PERCENTILE = 99.999
ENTROPY_TARGET_BINS = 128  # int8: 127 positive levels + zero


@dataclass(frozen=True)
class Range:
    """The calibrated range of one tensor."""

    lo: float
    hi: float

    @property
    def amax(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def to_list(self) -> list[float]:
        return [self.lo, self.hi]


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UsageError(f"unknown calibration method {method!r}; choose one of: {', '.join(METHODS)}")
    return method


def compute_ranges(stats: dict[str, TensorStats], method: str) -> dict[str, Range]:
    """One Range per tensor from its statistics with `method`."""
    check_method(method)
    out = {}
    for name, s in stats.items():
        if not np.isfinite(s.minimum):  # never saw a value
            out[name] = Range(0.0, 0.0)
            continue
        if method == CalibMethod.MINMAX or s.hist is None or s.edge == 0:
            amax = s.amax
        elif method == CalibMethod.PERCENTILE:
            amax = percentile_amax(s.hist, s.edge, PERCENTILE)
        else:
            amax = entropy_amax(s.hist, s.edge)
        out[name] = Range(max(s.minimum, -amax), min(s.maximum, amax))
    return out


def percentile_amax(hist: np.ndarray, edge: float, percentile: float) -> float:
    """Smallest bin edge below which `percentile` % of |x| lies."""
    cdf = np.cumsum(hist) / max(hist.sum(), 1)
    i = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(i + 1, len(hist)) * edge / len(hist))


def entropy_amax(hist: np.ndarray, edge: float, target_bins: int = ENTROPY_TARGET_BINS) -> float:
    """TensorRT's entropy calibration: the threshold whose 128-level quantisation of the |x|
    histogram loses the least information (KL divergence), outliers folded into the last bin.
    Bin 0 (exact zeros and values within one bin of zero) is left out."""
    hist = hist.astype(np.float64)
    # Exact zeros (half of every ReLU output) quantise exactly at any threshold; left in, their
    # spike in bin 0 dominates the divergence and drags the threshold far down.
    hist[0] = 0.0
    n = len(hist)
    nonzero_total = hist.sum()
    if nonzero_total == 0:
        return 0.0
    last = int(np.nonzero(hist)[0][-1]) + 1
    if last <= target_bins:
        return float(last * edge / n)
    best_i, best_kl = n, np.inf
    step = max(1, (n - target_bins) // 480)
    for i in range(target_bins, n + 1, step):
        ref = hist[:i].copy()
        ref[-1] += hist[i:].sum()
        kl = _kl_after_quantisation(ref, hist[:i], target_bins)
        if kl < best_kl:
            best_i, best_kl = i, kl
    return float(best_i * edge / n)


def _kl_after_quantisation(ref: np.ndarray, clipped: np.ndarray, target_bins: int) -> float:
    """KL(ref || expand(quantise(clipped))): merge `clipped` into `target_bins` groups, spread each group's
    count evenly over its non-empty bins, compare with `ref` (the clipped histogram plus outliers)."""
    i = len(clipped)
    starts = (np.arange(target_bins) * i) // target_bins
    group = np.repeat(np.arange(target_bins), np.diff(np.append(starts, i)))
    nonempty = clipped > 0
    sums = np.bincount(group, weights=clipped, minlength=target_bins)
    counts = np.bincount(group, weights=nonempty, minlength=target_bins)
    q = np.where(nonempty, sums[group] / np.maximum(counts[group], 1), 0.0)
    p = ref / ref.sum()
    q_total = q.sum()
    if q_total == 0:
        return np.inf
    q = q / q_total
    mask = p > 0
    if np.any(q[mask] == 0):
        return np.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))
