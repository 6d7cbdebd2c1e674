"""The calibration cache: computed ranges, reused only when everything that shaped them matches.

A cache file records the FP32 graph's hash, the calibration data (file names and
content hashes), the preprocessing, the method and the sample count next to the
ranges. `lookup` returns the ranges when all of them match the current run and
otherwise says which one differs, so the caller can recompute and tell the user why.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volo_export.calibration.methods import Range
from volo_export.errors import first_line

FORMAT = "volo-export-calibration-cache/1"


@dataclass(frozen=True)
class CacheKey:
    """Everything calibrated ranges depend on."""

    graph_sha256: str
    data_sha256: str
    preprocessing: dict
    method: str
    size: int
    files: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (name, sha256), for messages only


@dataclass
class Lookup:
    """Outcome of a cache lookup: ranges on a hit, else the reason for the miss."""

    ranges: dict[str, Range] | None
    reason: str

    @property
    def hit(self) -> bool:
        return self.ranges is not None


def lookup(path: Path, key: CacheKey, needed: list[str]) -> Lookup:
    """The cached ranges at `path` if they were computed under `key` and cover `needed` tensors."""
    path = Path(path)
    if not path.is_file():
        return Lookup(None, f"no calibration cache at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return Lookup(None, f"calibration cache {path} is unreadable ({type(e).__name__}); recomputing")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        return Lookup(None, f"{path} is not a volo-export calibration cache (format {found!r}); recomputing")
    try:
        cached, ranges = _parse(data)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        return Lookup(None, f"calibration cache {path} is damaged ({first_line(e)}); ignoring it and recomputing")
    reason = mismatch(cached, key)
    if reason:
        return Lookup(None, f"calibration cache {path} is stale: {reason}")
    missing = [n for n in needed if n not in ranges]
    if missing:
        return Lookup(None, f"calibration cache {path} lacks ranges for {len(missing)} tensor(s) (e.g. {missing[0]})")
    return Lookup({n: ranges[n] for n in needed}, f"reusing calibration cache {path} (same graph, data, "
                  f"preprocessing, method {key.method}, {key.size} samples)")


def _parse(data: dict) -> tuple[CacheKey, dict[str, Range]]:
    """A cache file's key and ranges, every field checked for its type (a cache is untrusted input:
    anything that does not validate is ignored by `lookup`, never half-used)."""
    key = data["key"]
    strings = {k: key[k] for k in ("graph_sha256", "data_sha256", "method")}
    if not all(isinstance(v, str) for v in strings.values()):
        raise TypeError("key fields are not strings")
    if not isinstance(key["preprocessing"], dict) or not isinstance(key["size"], int) or isinstance(key["size"], bool):
        raise TypeError("preprocessing or size has the wrong type")
    files = key.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, list) and len(f) == 2 and all(isinstance(x, str) for x in f)
                                              for f in files):
        raise TypeError("files is not a list of [name, sha256]")
    if not isinstance(data["ranges"], dict):
        raise TypeError(f"ranges is a {type(data['ranges']).__name__}, not a mapping")
    ranges = {}
    for name, v in data["ranges"].items():
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                             and math.isfinite(x) for x in v) and v[0] <= v[1]):
            raise ValueError(f"range of {name!r} is {v!r}, not [lo, hi] with finite lo <= hi")
        ranges[name] = Range(float(v[0]), float(v[1]))
    return CacheKey(**strings, preprocessing=key["preprocessing"], size=key["size"],
                    files=tuple(tuple(f) for f in files)), ranges


def mismatch(cached: CacheKey, current: CacheKey) -> str | None:
    """Why ranges computed under `cached` do not apply to `current` (None when they do)."""
    if cached.graph_sha256 != current.graph_sha256:
        return "the FP32 graph changed (other weights, model, opset or export)"
    before, now = _plain(cached.preprocessing), _plain(current.preprocessing)
    if before != now:
        changed = sorted(k for k in now if before.get(k) != now[k])
        return f"preprocessing changed ({', '.join(changed) or 'fields'})"
    if cached.method != current.method:
        return f"method changed ({cached.method} -> {current.method})"
    if cached.size != current.size:
        return f"calibration size changed ({cached.size} -> {current.size} samples)"
    if cached.data_sha256 != current.data_sha256:
        return "calibration data changed" + _file_changes(cached.files, current.files)
    return None


def _plain(d: dict) -> dict:
    """As JSON stores it (tuples become lists), so a dict read back compares equal to a fresh one."""
    return json.loads(json.dumps(d, sort_keys=True))


def _file_changes(old: tuple, new: tuple) -> str:
    if not old or not new:
        return ""
    before, after = dict(old), dict(new)
    added = len(set(after) - set(before))
    removed = len(set(before) - set(after))
    edited = sum(1 for k in set(before) & set(after) if before[k] != after[k])
    parts = [f"{n} {what}" for n, what in ((added, "added"), (removed, "removed"), (edited, "modified")) if n]
    return f" ({', '.join(parts)} file(s))" if parts else ""


def save(path: Path, key: CacheKey, ranges: dict[str, Range]) -> None:
    """Write the cache atomically."""
    from volo_export.io import atomic_output

    body = {"format": FORMAT, "key": {**asdict(key), "files": [list(f) for f in key.files]},
            "ranges": {n: r.to_list() for n, r in sorted(ranges.items())}}
    with atomic_output(Path(path)) as tmp:
        tmp.write_text(json.dumps(body, indent=1) + "\n")
