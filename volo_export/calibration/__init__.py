"""Calibration for INT8: where the images come from (`data`), the ranges each method derives from
the FP32 graph's activation statistics (`methods`, statistics from `volo_export.activations`) and
the cache that lets a re-run skip the FP32 passes (`cache`). `calibrate` is the stage's entry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from volo_export.activations import collect_stats
from volo_export.calibration import cache
from volo_export.calibration.data import CalibrationData
from volo_export.calibration.methods import Range, compute_ranges
from volo_export.export.metadata import graph_sha256
from volo_export.models.variants import Preprocessing
from volo_export.progress import SILENT, Progress


def calibrate(fp32, tensors: list[str], calib: CalibrationData, method: str, prep: Preprocessing, cache_path: Path,
              progress: Progress = SILENT, fp32_sha256: str | None = None) -> tuple[dict[str, Range], str]:
    """Ranges of `tensors` on the calibration samples: from the cache at `cache_path` when everything they
    depend on matches, else computed and cached there. Returns the ranges and a line saying which
    happened and why. `fp32_sha256`: `graph_sha256(fp32)` when the caller has it already."""
    names = [str(f.relative_to(calib.root)) if calib.root else f.name for f in calib.files]
    key = cache.CacheKey(fp32_sha256 or graph_sha256(fp32), calib.digest, dataclasses.asdict(prep), method, len(calib.array),
                         tuple(zip(names, calib.file_hashes)))
    found = cache.lookup(cache_path, key, tensors)
    if found.hit:
        progress.stage(found.reason)
        return found.ranges, found.reason
    progress.stage(f"calibrating {len(tensors)} tensors on {len(calib.array)} samples ({method}); {found.reason}")
    stats = collect_stats(fp32, tensors, calib.array, histogram=method != "minmax", progress=progress)
    ranges = compute_ranges(stats, method)
    cache.save(cache_path, key, ranges)
    return ranges, (f"calibrated {len(tensors)} tensors ({method}, {len(calib.array)} samples): {found.reason}; "
                    f"ranges saved to {cache_path} (kept for the next run, also when a gate fails)")
