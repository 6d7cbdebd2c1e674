"""What one `volo-export bench` run measured (`BenchReport`): rows per backend and batch size,
ratios between backends, the GEMM yardstick, the environment; as data and JSON. Tables,
markdown and plots of it are in `bench.render`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volo_export.bench.timing import OK, BenchResult


@dataclass
class BackendInfo:
    name: str
    description: str
    status: str
    reason: str | None = None
    artifact: str | None = None
    build_s: float | None = None
    gate: dict | None = None  # the artifact's gate Report (FP16/INT8 backends), as JSON data


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

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows) of the table: measured rows first, then one per idle backend."""
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


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)
