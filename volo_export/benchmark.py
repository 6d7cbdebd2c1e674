"""`volo-export bench`: one table comparing eager PyTorch, the naive export and volo-export's
artifacts, with the machine's GEMM peak as the yardstick.

    load model -> build each backend's artifact -> time all backends interleaved (with an
    FP32 GEMM probe in the same rounds) -> achieved GFLOP/s and fraction of the GEMM peak ->
    peak memory per backend in a fresh process -> BenchReport (rich table, JSON, markdown, plot)

GFLOP/s use the analytic count `2 * count_macs(config)` per image at the median latency.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volo_export.backends import DEFAULT_BACKENDS, EAGER, Backend, BuildContext, open_backend, resolve
from volo_export.bench import (FAILED, OK, BenchResult, BenchSettings, ProgressCallback, environment, gemm_peak,
                               gemm_runner, measure, unavailable, with_flops)
from volo_export.errors import VoloExportError

StageCallback = Callable[[str], None]

GEMM_PROBE = "gemm-probe"
MEMORY_METHOD = ("peak RSS while serving: VmHWM of a fresh process that loads only this backend, "
                 "with the high-water mark reset after loading (load-time transients excluded) and read "
                 "after warm-up + one timed call per batch size (ascending); includes the Python interpreter "
                 "and runtime libraries. delta = peak minus the same process's RSS before it imported the "
                 "runtime and loaded the model.")


@dataclass(frozen=True)
class BenchRequest:
    """What to benchmark. `threads` 0 = every core this process may use (same for every backend).

    `artifacts`: keep the produced ONNX files in this folder (default: a temporary folder).
    `prebuilt`: backend name -> an existing artifact to time instead of producing one.
    `spinning` False (default) keeps idle threads from busy-waiting between calls: ONNX Runtime's
    `allow_spinning` off, and OMP_WAIT_POLICY=PASSIVE for PyTorch when torch is not imported yet.
    Interleaved backends then do not steal each other's cores (on a 2-core machine spinning
    idle threads made eager PyTorch up to 20x slower).
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


@dataclass
class BackendInfo:
    name: str
    description: str
    status: str
    reason: str | None = None
    artifact: str | None = None
    build_s: float | None = None


@dataclass
class BenchReport:
    """Everything one `volo-export bench` run measured."""

    model: str
    image_size: int
    gmacs_per_image: float
    threads: int
    settings: dict
    environment: dict
    gemm: dict
    backends: list[BackendInfo]
    results: list[BenchResult]
    memory_method: str | None
    notes: list[str] = field(default_factory=list)

    def row(self, backend: str, batch: int) -> BenchResult | None:
        return next((r for r in self.results if r.backend == backend and r.batch_size == batch), None)

    def ratio(self, r: BenchResult, baseline: str) -> float | None:
        """Throughput of `r` over `baseline`'s at the same batch size."""
        base = self.row(baseline, r.batch_size)
        if r.status != OK or base is None or base.status != OK or r.backend == baseline:
            return None
        return r.throughput / base.throughput

    def to_dict(self, with_samples: bool = False) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "results"}
        d["results"] = [r.to_dict(with_samples) for r in self.results]
        return d

    def write_json(self, path: Path) -> None:
        from volo_export.io import atomic_output

        with atomic_output(Path(path)) as tmp:
            tmp.write_text(json.dumps(self.to_dict(with_samples=True), indent=2) + "\n")

    def _rows(self) -> tuple[list[str], list[list[str]]]:
        baselines = [b for b in ("eager", "onnx-naive") if any(r.backend == b and r.status == OK for r in self.results)]
        header = ["backend", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "GFLOP/s", "% peak", "% peak cpu"]
        header += [f"x {b.removeprefix('onnx-')}" for b in baselines] + ["RSS MB"]
        rows, idle = [], {}
        for r in self.results:
            if r.status != OK:  # one row per backend and reason, after the measured ones
                idle.setdefault((r.backend, r.status, r.reason), []).append(str(r.batch_size))
                continue
            ratios = [self.ratio(r, b) for b in baselines]
            rows.append([
                r.backend, str(r.batch_size), f"{r.p50_ms:.1f}", f"{r.p90_ms:.1f}", f"{r.p99_ms:.1f}",
                f"{r.throughput:.2f}", _fmt(r.gflops, "{:.1f}"), _fmt(r.peak_fraction, "{:.0%}"),
                _fmt(r.cpu_peak_fraction, "{:.0%}"),
                *[_fmt(x, "{:.2f}x") for x in ratios], _fmt(r.peak_rss_mb, "{:.0f}"),
            ])
        all_batches = [str(b) for b in dict.fromkeys(r.batch_size for r in self.results)]
        for (backend, status, _), batches in idle.items():
            rows.append([backend, "all" if batches == all_batches else ",".join(batches), status]
                        + [""] * (len(header) - 3))
        return header, rows

    def footnotes(self) -> list[str]:
        """Why a backend did not run, once per backend (and memory-probe failures)."""
        seen, lines = set(), []
        for r in self.results:
            if r.reason and (r.backend, r.reason) not in seen:
                seen.add((r.backend, r.reason))
                lines.append(f"{r.backend}: {r.status if r.status != OK else 'note'}: {r.reason}")
        return lines

    def title(self) -> str:
        g = self.gemm
        return (f"{self.model} ({self.gmacs_per_image:.2f} GMACs/image), {self.threads} threads, "
                f"GEMM peak {g['peak_gflops']:.1f} GFLOP/s ({g['method']})")

    def table(self):
        from rich.table import Table

        header, rows = self._rows()
        table = Table(title=self.title())
        for col in header:
            table.add_column(col, justify="left" if col == "backend" else "right", no_wrap=True)
        for row in rows:
            table.add_row(*row)
        return table

    def environment_lines(self) -> list[str]:
        e, v = self.environment, self.environment["versions"]
        libs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
        gemm = self.gemm["standalone"]
        return [f"CPU: {e['cpu']} ({e['usable_cpus']} usable of {e['logical_cpus']} logical CPUs; "
                f"{' '.join(e['cpu_flags'])})", f"threads: {self.threads}; {libs}",
                f"GEMM {gemm['n']}^3 best-of-{gemm['repeats']} alone: ONNX Runtime {gemm['onnxruntime_gflops']:.1f}, "
                f"numpy {gemm['numpy_gflops']:.1f} GFLOP/s; % peak uses the same GEMM timed between the backends "
                f"(wall time); % peak cpu compares FLOP per CPU-second of this process, which other load "
                f"on the machine does not distort",
                f"up to {self.settings['iterations']} timed rounds after {self.settings['warmup']} warm-up, interleaved; "
                f"ORT optimization {self.settings['optimization']}, spinning {self.settings['ort_spinning']}, "
                f"OMP_WAIT_POLICY {e['omp_wait_policy']}"]

    def markdown(self) -> str:
        """A GitHub markdown table with the environment underneath (for the README)."""
        header, rows = self._rows()
        lines = [f"**{self.title()}**", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines += [""] + [f"- {line}" for line in self.footnotes() + self.environment_lines()]
        if self.memory_method:
            lines.append(f"- memory: {self.memory_method}")
        lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def plot(self, path: Path) -> None:
        """Throughput and median latency per backend and batch size, as a PNG (needs matplotlib)."""
        from volo_export.io import atomic_output

        require_matplotlib()
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ok = [r for r in self.results if r.status == OK]
        names = list(dict.fromkeys(r.backend for r in ok))
        batches = sorted({r.batch_size for r in ok})
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            xs = [j + i * width for j, b in enumerate(batches) if self.row(name, b) and self.row(name, b).status == OK]
            rs = [self.row(name, b) for b in batches if self.row(name, b) and self.row(name, b).status == OK]
            axes[0].bar(xs, [r.throughput for r in rs], width, label=name)
            axes[1].bar(xs, [r.p50_ms for r in rs], width, label=name)
        for ax, label in zip(axes, ("throughput (img/s)", "p50 latency (ms)")):
            ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(batches))],
                          [f"batch {b}" for b in batches])
            ax.set_ylabel(label)
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(self.title(), fontsize=9)
        fig.tight_layout()
        with atomic_output(Path(path)) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
        plt.close(fig)


def require_matplotlib() -> None:
    """Raise a one-line UsageError when matplotlib (the `plot` extra) is missing."""
    from volo_export.errors import UsageError

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install matplotlib (the volo-export \"plot\" extra)") from None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_benchmark(request: BenchRequest, on_stage: StageCallback = lambda _: None,
                  on_progress: ProgressCallback = lambda done, total, text: None) -> BenchReport:
    """Build every requested backend, time them interleaved, measure memory; see the module docstring."""
    notes = []
    if not request.spinning:  # libgomp reads this once, when torch loads it
        if "torch" in sys.modules and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            notes.append("torch was imported before OMP_WAIT_POLICY=PASSIVE could be set: eager threads may spin")
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from volo_export.models.checkpoint import load_model
    from volo_export.models.volo import count_macs

    backends = resolve(list(request.backends))
    threads = request.threads or usable_cpus()
    batch_sizes = request.settings.batch_sizes
    on_stage(f"loading {request.model}")
    loaded = load_model(request.model, request.checkpoint)
    ctx = BuildContext(loaded=loaded, threads=threads, optimization=request.optimization, spinning=request.spinning)
    flops = 2.0 * count_macs(loaded.config)
    notes += loaded.notices

    with tempfile.TemporaryDirectory(prefix="volo-bench-") as scratch:
        workdir = Path(request.artifacts or scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        infos, runners, artifacts, dead = _build_all(backends, ctx, request, workdir, on_stage)

        on_stage(f"measuring FP32 GEMM peak ({request.gemm_size}^3 MatMul, ONNX Runtime and numpy)")
        peak = gemm_peak(request.gemm_size, threads, spinning=request.spinning)
        probe, probe_flop = gemm_runner(request.gemm_size, threads, spinning=request.spinning)
        on_stage("timing " + ", ".join(runners) + f" + GEMM probe, interleaved, batch {list(batch_sizes)}")
        timed = measure({**runners, GEMM_PROBE: probe}, (loaded.config.in_chans, loaded.config.img_size,
                                                         loaded.config.img_size), request.settings, on_progress)
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
                on_stage(f"peak memory of {backend.name} in a fresh process")
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
    )


def _build_all(backends: list[Backend], ctx: BuildContext, request: BenchRequest, workdir: Path,
               on_stage: StageCallback):
    """Produce and open each backend. Returns (infos, runners, artifact paths, {name: (status, reason)} of the rest)."""
    infos, runners, artifacts, dead = [], {}, {}, {}
    for backend in backends:
        reason = backend.why_unavailable()
        if reason:
            dead[backend.name] = ("unavailable", reason)
            infos.append(BackendInfo(backend.name, backend.description, "unavailable", reason))
            continue
        t0 = time.perf_counter()
        try:
            artifact = request.prebuilt.get(backend.name)
            if artifact is None and backend.produce is not None:
                artifact = workdir / f"{ctx.loaded.config.name}.{backend.name}.onnx"
                on_stage(f"building {backend.name}: {backend.description}")
                backend.produce(ctx, artifact)
            runners[backend.name] = open_backend(backend, ctx, artifact)
        except (VoloExportError, RuntimeError, MemoryError, ImportError) as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            dead[backend.name] = (FAILED, reason)
            infos.append(BackendInfo(backend.name, backend.description, FAILED, reason))
            continue
        if artifact is not None:
            artifacts[backend.name] = Path(artifact)
        infos.append(BackendInfo(backend.name, backend.description, OK, artifact=str(artifact) if artifact else None,
                                 build_s=time.perf_counter() - t0))
    return infos, runners, artifacts, dead


# --- where the time goes: ONNX Runtime's own profiler ---------------------------------------------

@dataclass
class OpTime:
    """Kernel time of one op type per run (ms), its share, how many nodes ran, and GFLOP/s where known."""

    op_type: str
    ms_per_run: float
    share: float
    nodes: int
    gflops: float | None = None


def profile_onnx(path: Path, batch_size: int, threads: int = 0, runs: int = 3,
                 optimization: str = "all") -> list[OpTime]:
    """Run `path` `runs` times at `batch_size` under ONNX Runtime's profiler and average kernel time
    by op type, largest first (the first run, with its allocations, is included). MatMul, FusedMatMul
    and Gemm get GFLOP/s from their shapes (K = last axis of the first input)."""
    import math

    from volo_export.bench import make_input
    from volo_export.runtime import OnnxRuntimeRunner, SessionSettings

    with tempfile.TemporaryDirectory(prefix="volo-profile-") as tmp:
        runner = OnnxRuntimeRunner(Path(path), SessionSettings(
            providers=("CPUExecutionProvider",), threads=threads or usable_cpus(), optimization=optimization,
            spinning=False, profile_prefix=str(Path(tmp) / "ort")))
        size = runner.info.preprocessing.size
        x = make_input((3, size, size), batch_size)
        for _ in range(runs):
            runner(x)
        events = json.loads(runner.end_profiling().read_text())
    time_us, nodes, flop = {}, {}, {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op = e["args"]["op_name"]
        time_us[op] = time_us.get(op, 0) + e["dur"]
        nodes[op] = nodes.get(op, 0) + 1
        if op in ("MatMul", "FusedMatMul", "Gemm"):
            a = list(e["args"]["input_type_shape"][0].values())[0]
            out = list(e["args"]["output_type_shape"][0].values())[0]
            flop[op] = flop.get(op, 0) + 2 * math.prod(out) * a[-1]
    total = sum(time_us.values()) or 1
    rows = [OpTime(op, us / 1e3 / runs, us / total, nodes[op] // runs,
                   flop[op] / (us / 1e6) / 1e9 if op in flop and us else None)
            for op, us in time_us.items()]
    return sorted(rows, key=lambda r: -r.ms_per_run)


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
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from volo_export.benchmark import memory_probe_main; "
         "memory_probe_main(sys.argv[1])", json.dumps(spec)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    if probe.returncode != 0:
        for r in results:
            if r.backend == backend.name and r.status == OK:
                r.reason = f"memory probe failed: {(probe.stderr.strip().splitlines() or ['?'])[-1][:200]}"
        return
    measured = json.loads(probe.stdout.strip().splitlines()[-1])
    for r in results:
        got = measured.get(str(r.batch_size))
        if r.backend == backend.name and got:
            r.peak_rss_mb, r.rss_delta_mb = got["peak_rss_mb"], got["rss_delta_mb"]


def memory_probe_main(spec_json: str) -> None:
    """Child process: load one backend, run each batch size once after a warm-up, print
    {batch: {peak_rss_mb, rss_delta_mb}} as one JSON line on stdout."""
    from volo_export.backends import BACKENDS
    from volo_export.bench import current_rss_mb, make_input, peak_rss_mb, reset_peak_rss

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
