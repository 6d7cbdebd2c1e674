"""`--runtime auto`: the fastest runtime for an artifact on this machine, measured once and cached.

Rules, fixed:
- an engine (.engine/.plan/.trt) runs in TensorRT, the only runtime that reads it;
- an ONNX on a machine whose ONNX Runtime has a GPU provider (TensorRT EP, CUDA EP) runs there,
  by the provider preference of `onnxruntime_runner` (a GPU is not compared with CPU runtimes).

Measured, on CPU: every runtime that computes the artifact right is a candidate (ONNX Runtime;
OpenVINO when installed, except for `--target cpu` INT8, which it miscomputes; a `bf16`
artifact only where bf16 arithmetic really happens, i.e. OpenVINO on a CPU with bf16). They are
timed interleaved (`timing.measure`: one warm-up, three rounds, rotating order) at the
batch size the command will run, the fastest median wins, and the verdict is cached in
`~/.cache/volo-export/runtime-choice.json`, keyed by the artifact (path, size, mtime), the CPU
(model and SIMD flags), threads, batch and the runtimes' versions. It is measured because no rule
on CPU flags picked the faster runtime on every machine we measured (docs/CPU.md has the figures).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from volo_export.errors import RuntimeUnavailable, VoloExportError
from volo_export.export.metadata import ArtifactInfo, read_info
from volo_export.names import Precision, Runtime
from volo_export.progress import SILENT, Progress

MEASURE_BATCH = 8  # when the caller does not say which batch it will run
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass
class Choice:
    """Which runtime `auto` picked and why: `ms` holds the measured medians (None: decided by rule)."""

    runtime: str
    reason: str
    ms: dict[str, float] | None = None
    cached: bool = False
    skipped: dict[str, str] = field(default_factory=dict)  # runtime -> why it was not a candidate
    failed: dict[str, str] = field(default_factory=dict)  # candidate -> why it did not open (always said)

    def line(self) -> str:
        """One line for the user: the choice and its evidence, and any candidate that failed to open."""
        text = f"--runtime auto chose {self.runtime}: {self.reason}"
        if self.ms:
            text += " (" + ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(self.ms.items(), key=lambda kv: kv[1]))
            text += ", cached)" if self.cached else ")"
        for name, why in self.failed.items():
            text += f"; {name} did not open: {why}"
        return text


def cpu_candidates(info: ArtifactInfo | None, name: str) -> tuple[list[str], dict[str, str]]:
    """CPU runtimes that compute this artifact right, and why the others are left out."""
    from volo_export.runtime.openvino_runner import check_bf16_cpu, import_openvino, refusal

    skipped = {}
    try:
        import_openvino()
        why_not = refusal(info, name)
        if why_not is None and info is not None and info.precision == Precision.BF16:
            check_bf16_cpu()
    except RuntimeUnavailable as e:
        why_not = str(e)
    if why_not:
        skipped[Runtime.OPENVINO] = why_not
    if info is not None and info.precision == Precision.BF16:
        skipped[Runtime.ONNXRUNTIME] = "ONNX Runtime's CPU provider has no bf16 kernels (it would compute in float32)"
    candidates = [r for r in (Runtime.ONNXRUNTIME, Runtime.OPENVINO) if r not in skipped]
    return candidates, skipped


def choice_key(path: Path, threads: int, batch: int) -> str:
    """What a measured verdict depends on: this file, this CPU, threads, batch, the runtimes' versions."""
    from volo_export.export.metadata import library_versions
    from volo_export.hardware import cpu_flags, cpu_model, usable_cpus

    stat = Path(path).stat()
    versions = library_versions(("onnxruntime", "openvino"))
    return json.dumps({"artifact": [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns],
                       "cpu": cpu_model(), "flags": cpu_flags(), "threads": threads or usable_cpus(),
                       "batch": batch, "versions": versions}, sort_keys=True)


def default_cache_file() -> Path | None:
    from volo_export.io import user_cache_dir

    return user_cache_dir("runtime-choice.json")


def read_cache(cache: Path | None) -> dict:
    if cache is None:
        return {}
    try:
        data = json.loads(Path(cache).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_entry(entry, candidates: list[str]) -> str | None:
    """Why a runtime-choice.json entry cannot be used (None: it can). The file is untrusted: an entry
    that does not validate is measured again and overwritten."""
    if not isinstance(entry, dict):
        return f"an entry is a {type(entry).__name__}, not a mapping"
    if entry.get("runtime") not in candidates:
        return f"its runtime {entry.get('runtime')!r} is not one of {', '.join(candidates)}"
    ms = entry.get("ms")
    if ms is not None and not (isinstance(ms, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
            for k, v in ms.items())):
        return f"its timings {ms!r} are not runtime -> milliseconds"
    return None


def write_cache(cache: Path | None, key: str, choice: Choice) -> None:
    """Add one verdict to the cache file (atomically); a cache that cannot be written is no error."""
    from volo_export.io import atomic_output

    if cache is None:  # no cache home
        return
    data = read_cache(cache)
    data[key] = {"runtime": choice.runtime, "ms": choice.ms, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cache) as tmp:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    except (OSError, VoloExportError):
        pass


def fastest(runners: dict, size: int, batch: int, progress: Progress = SILENT) -> dict[str, float]:
    """Median ms per call of each runner at `batch`, interleaved (1 warm-up, 3 rounds, rotating order)."""
    from volo_export.timing import OK, BenchSettings, measure

    rows = measure(runners, (3, size, size), BenchSettings(batch_sizes=(batch,), warmup=1, iterations=3), progress)
    return {r.backend: r.p50_ms for r in rows if r.status == OK}


def choose(path: Path, open_one, threads: int = 0, batch: int | None = None, cache: Path | None = None,
           progress: Progress = SILENT):
    """(runner, Choice) for an ONNX file on CPU. `open_one(runtime) -> Runner` opens a candidate."""
    path = Path(path)
    try:
        info = read_info(path)
    except VoloExportError:
        info = None
    candidates, skipped = cpu_candidates(info, path.name)
    if len(candidates) == 1:
        only = candidates[0]
        reason = "the only CPU runtime that runs it as intended here" if skipped else "the only CPU runtime installed"
        return open_one(only), Choice(only, reason, skipped=skipped)
    if not candidates:  # a bf16 artifact where no runtime does bf16: float32 in ONNX Runtime, said so
        return open_one(Runtime.ONNXRUNTIME), Choice(Runtime.ONNXRUNTIME, "no runtime here computes bf16; it runs in float32",
                                             skipped=skipped)
    batch = batch or MEASURE_BATCH
    cache = Path(cache) if cache else default_cache_file()
    key = choice_key(path, threads, batch)
    known = read_cache(cache).get(key)
    problem = cached_entry(known, candidates) if known is not None else None
    if known is not None and problem is None:
        choice = Choice(known["runtime"], f"fastest at batch {batch} when measured on this machine",
                        known.get("ms"), cached=True, skipped=skipped)
        return open_one(choice.runtime), choice
    if problem:
        progress.stage(f"--runtime auto: ignoring the cached verdict in {cache} ({problem}); measuring again")
    progress.stage(f"--runtime auto: timing {', '.join(candidates)} on {path.name} at batch {batch} (once; cached)")
    runners, failed = {}, {}
    for name in candidates:
        try:
            runners[name] = open_one(name)
        except VoloExportError as e:
            failed[name] = skipped[name] = str(e)
    size = (info.preprocessing.size if info else None) or _input_size(path)
    ms = fastest(runners, size, batch, progress) if len(runners) > 1 else {}
    if not ms:
        name = next(iter(runners)) if runners else Runtime.ONNXRUNTIME
        return runners.get(name) or open_one(name), Choice(name, "the only candidate that opened", skipped=skipped,
                                                           failed=failed)
    best = min(ms, key=ms.get)
    choice = Choice(best, f"fastest at batch {batch} on this machine", ms, skipped=skipped, failed=failed)
    write_cache(cache, key, choice)
    return runners[best], choice


def _input_size(path: Path) -> int:
    """Image size of an ONNX without metadata, from its input shape (N, 3, S, S)."""
    from volo_export.export.metadata import load_graph

    dims = load_graph(path).graph.input[0].type.tensor_type.shape.dim
    return dims[-1].dim_value or 224


def with_choice(runner, choice: Choice):
    """The runner, with the choice's line added to its notices (shown by predict/validate)."""
    runner.notices = [*getattr(runner, "notices", []), choice.line()]
    return runner

