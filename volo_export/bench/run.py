"""`volo-export bench`: one table comparing eager PyTorch, the naive export and volo-export's
artifacts, with the machine's GEMM peak as the yardstick.

    load model -> build each backend's artifact -> time all backends interleaved (with an
    FP32 GEMM probe in the same rounds) -> achieved GFLOP/s and fraction of the GEMM peak ->
    peak memory per backend in a fresh process -> BenchReport (bench.report; tables: bench.render)

GFLOP/s use the analytic count `2 * count_macs(config)` per image at the median latency.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volo_export.bench.backends import BACKENDS, DEFAULT_BACKENDS, EAGER, Backend, BuildContext, backends_named, open_backend
from volo_export.bench.child import run_child
from volo_export.bench.limits import measure_limits
from volo_export.bench.machine import environment, gemm_peak, gemm_runner, usable_cpus
from volo_export.bench.report import BackendInfo, BenchReport
from volo_export.errors import UsageError, VoloExportError, first_line
from volo_export.progress import SILENT, Progress
from volo_export.timing import FAILED, OK, BenchResult, BenchSettings, measure, unavailable, with_flops

GEMM_PROBE = "gemm-probe"
MEMORY_METHOD = ("peak RSS while serving: VmHWM of a fresh process that loads only this backend, "
                 "with the high-water mark reset after loading (load-time transients excluded) and read "
                 "after warm-up + one timed call per batch size (ascending); includes the Python interpreter "
                 "and runtime libraries. delta = peak minus the same process's RSS before it imported the "
                 "runtime and loaded the model.")
MEMORY_PROBE_TIMEOUT_S = 600  # one backend loaded and run once per batch size in a fresh process


@dataclass(frozen=True)
class BenchRequest:
    """What to benchmark. `threads` 0 = every core this process may use (same for every backend).

    `artifacts`: keep the produced ONNX files in this folder (default: a temporary folder).
    `prebuilt`: backend name -> an existing artifact to time instead of producing one.
    `spinning` False (default) keeps idle threads from busy-waiting between calls: ONNX Runtime's
    `allow_spinning` off, and OMP_WAIT_POLICY=PASSIVE for PyTorch when torch is not imported yet.
    Interleaved backends then do not steal each other's cores (docs/PERFORMANCE.md: what spinning cost).
    """

    model: str
    checkpoint: Path | None = None
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    settings: BenchSettings = BenchSettings()
    threads: int = 0
    optimization: str = "all"
    gemm_size: int = 2048
    memory: bool = True
    artifacts: Path | None = None
    prebuilt: dict[str, Path] = field(default_factory=dict)
    spinning: bool = False
    limits: bool = True  # measure every library's GEMM and the theoretical peak (bench.limits)

    def __post_init__(self):
        if self.threads < 0:
            raise UsageError(f"--threads must be >= 0 (0 = every usable core), got {self.threads}")
        if self.gemm_size < 1:
            raise UsageError(f"--gemm-size must be >= 1, got {self.gemm_size}")


def run_benchmark(request: BenchRequest, progress: Progress = SILENT,
                  registry: Mapping[str, Backend] = BACKENDS) -> BenchReport:
    """Build every requested backend (from `registry`), time them interleaved, measure memory; see the
    module docstring."""
    notes = []
    if not request.spinning:  # libgomp reads this once, when torch loads it
        if "torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            notes.append("torch was imported before OMP_WAIT_POLICY=PASSIVE could be set: eager threads may spin")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from volo_export.models.checkpoint import load_model
    from volo_export.models.volo import count_macs

    backends = backends_named(list(request.backends), registry)
    threads = request.threads or usable_cpus()
    batch_sizes = request.settings.batch_sizes
    progress.stage(f"loading {request.model}")
    loaded = load_model(request.model, request.checkpoint)
    ctx = BuildContext(loaded=loaded, threads=threads, optimization=request.optimization, spinning=request.spinning)
    flops = 2.0 * count_macs(loaded.config)
    notes += loaded.notices

    with tempfile.TemporaryDirectory(prefix="volo-bench-") as scratch:
        workdir = Path(request.artifacts or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        infos, runners, artifacts, dead = _build_all(backends, ctx, request, workdir, progress)

        progress.stage(f"measuring FP32 GEMM peak ({request.gemm_size}^3 MatMul, ONNX Runtime and numpy)")
        peak = gemm_peak(request.gemm_size, threads, spinning=request.spinning)
        limits = None
        if request.limits:
            progress.stage(f"measuring the limits: every library's {request.gemm_size}^3 GEMM (FP32/BF16/INT8), "
                           "clock and FMA throughput")
            limits = measure_limits(peak, request.gemm_size, threads, spinning=request.spinning)
        probe, probe_flop = gemm_runner(request.gemm_size, threads, spinning=request.spinning)
        progress.stage("timing " + ", ".join(runners) + f" + GEMM probe, interleaved, batch {list(batch_sizes)}")
        timed = measure({**runners, GEMM_PROBE: probe}, (loaded.config.in_chans, loaded.config.img_size,
                                                         loaded.config.img_size), request.settings, progress)
        probes = {r.batch_size: r for r in timed if r.backend == GEMM_PROBE and r.status == OK}
        gemm_rates = {b: probe_flop / (r.p50_ms / 1e3) / 1e9 for b, r in probes.items()}
        gemm_cpu_rates = {b: probe_flop / (r.cpu_p50_ms / 1e3) / 1e9 for b, r in probes.items() if r.cpu_p50_ms}
        results = []
        for b in batch_sizes:
            rows = [r for r in timed if r.batch_size == b and r.backend != GEMM_PROBE]
            rows = with_flops(rows, flops, gemm_rates.get(b), gemm_cpu_rates.get(b))
            by_name = {r.backend: r for r in rows}
            for backend in backends:
                if backend.name in by_name:
                    results.append(by_name[backend.name])
                else:
                    results += unavailable(backend.name, [b], dead[backend.name][1], dead[backend.name][0])
        del runners

        if request.memory:
            for backend in backends:
                if backend.name in dead:
                    continue
                progress.stage(f"peak memory of {backend.name} in a fresh process")
                _attach_memory(results, backend, request, threads, artifacts.get(backend.name))

    gemm = {
        "n": request.gemm_size, "threads": threads, "method": f"ORT {request.gemm_size}^3 MatMul, interleaved median",
        "peak_gflops": max(gemm_rates.values()) if gemm_rates else peak.gflops,
        "interleaved_gflops_by_batch": gemm_rates, "interleaved_gflop_per_cpu_s_by_batch": gemm_cpu_rates,
        "standalone": peak.to_dict(),
    }
    return BenchReport(
        model=loaded.config.name, image_size=loaded.config.img_size, gmacs_per_image=flops / 2e9, threads=threads,
        settings={**asdict(request.settings), "ort_spinning": request.spinning,
                  "optimization": request.optimization}, environment=environment(threads), gemm=gemm, backends=infos,
        results=results, memory_method=MEMORY_METHOD if request.memory else None, notes=notes,
        limits=limits.to_dict() if limits else None,
    )


def _build_all(backends: list[Backend], ctx: BuildContext, request: BenchRequest, workdir: Path,
               progress: Progress):
    """Produce and open each backend. Returns (infos, runners, artifact paths, {name: (status, reason)} of the rest)."""
    infos, runners, artifacts, dead = [], {}, {}, {}
    produced: dict = {}  # producer -> (artifact, gate): backends that run the same artifact build it once
    for backend in backends:
        reason = backend.why_unavailable()
        if reason:
            dead[backend.name] = ("unavailable", reason)
            infos.append(BackendInfo(backend.name, backend.description, "unavailable", reason))
            continue
        t0 = time.perf_counter()
        gate = None
        try:
            artifact = request.prebuilt.get(backend.name)
            if artifact is None and backend.produce in produced:
                artifact, gate = produced[backend.produce]
            elif artifact is None and backend.produce is not None:
                artifact = workdir / f"{ctx.loaded.config.name}.{backend.name}.onnx"
                progress.stage(f"building {backend.name}: {backend.description}")
                gate = backend.produce(ctx, artifact)
                produced[backend.produce] = (artifact, gate)
            runners[backend.name] = open_backend(backend, ctx, artifact)
        except (VoloExportError, MemoryError) as e:  # our typed errors (export, load, gate) and OOM
            reason = first_line(e, typed=True)[:300]
            dead[backend.name] = (FAILED, reason)
            infos.append(BackendInfo(backend.name, backend.description, FAILED, reason))
            continue
        if artifact is not None:
            artifacts[backend.name] = Path(artifact)
        infos.append(BackendInfo(backend.name, backend.description, OK, artifact=str(artifact) if artifact else None,
                                 build_s=time.perf_counter() - t0, gate=gate.to_dict() if gate else None,
                                 precision=backend.precision))
    return infos, runners, artifacts, dead


# --- peak memory in a fresh process -----------------------------------------------------------------

def _attach_memory(results: list[BenchResult], backend: Backend, request: BenchRequest, threads: int,
                   artifact: Path | None) -> None:
    """Run the memory probe for one backend and copy its numbers into the matching result rows."""
    batches = sorted(r.batch_size for r in results if r.backend == backend.name and r.status == OK)
    if not batches:
        return
    spec = {"backend": backend.name, "model": request.model, "threads": threads,
            "checkpoint": str(request.checkpoint) if request.checkpoint else None,
            "artifact": str(artifact) if artifact else None, "optimization": request.optimization,
            "spinning": request.spinning,
            "batch_sizes": batches}
    measured, why = run_child("volo_export.bench.run:memory_probe_main", json.dumps(spec), MEMORY_PROBE_TIMEOUT_S)
    if why is not None:
        for r in results:
            if r.backend == backend.name and r.status == OK:
                r.reason = f"memory probe {why}"
        return
    for r in results:
        got = measured.get(str(r.batch_size))
        if r.backend == backend.name and got:
            r.peak_rss_mb, r.rss_delta_mb = got["peak_rss_mb"], got["rss_delta_mb"]


def memory_probe_main(spec_json: str) -> None:
    """Child process: load one backend, run each batch size once after a warm-up, print
    {batch: {peak_rss_mb, rss_delta_mb}} as one JSON line on stdout."""
    from volo_export.bench.machine import current_rss_mb, peak_rss_mb, reset_peak_rss
    from volo_export.timing import make_input

    spec = json.loads(spec_json)
    base = current_rss_mb()
    backend = BACKENDS[spec["backend"]]
    loaded = None
    if backend.runtime == EAGER:
        from volo_export.models.checkpoint import load_model

        loaded = load_model(spec["model"], Path(spec["checkpoint"]) if spec["checkpoint"] else None)
    ctx = BuildContext(loaded=loaded, threads=spec["threads"], optimization=spec["optimization"],
                       spinning=spec["spinning"])
    runner = open_backend(backend, ctx, Path(spec["artifact"]) if spec["artifact"] else None)
    info = getattr(runner, "info", None)
    size = loaded.config.img_size if loaded else info.preprocessing.size
    reset_peak_rss()
    out = {}
    for b in spec["batch_sizes"]:
        x = make_input((3, size, size), b)
        runner(x)
        runner(x)
        peak = peak_rss_mb()
        out[str(b)] = {"peak_rss_mb": peak, "rss_delta_mb": peak - base if base is not None else None}
    sys.stdout.write(json.dumps(out) + "\n")
