"""What one `volo-export bench` run measured (`BenchReport`): rows per backend and batch size,
ratios between backends, the GEMM yardstick, the environment; as data and JSON. Tables,
markdown and plots of it are in `bench.render`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from volo_export.results import Table
from volo_export.timing import OK, BenchResult


@dataclass
class BackendInfo:
    name: str
    description: str
    status: str
    reason: str | None = None
    artifact: str | None = None
    build_s: float | None = None
    gate: dict | None = None  # the artifact's gate Report (FP16/INT8 backends), as JSON data
    precision: str = "fp32"  # the arithmetic it runs in: picks its yardstick (bench.limits)


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
    limits: dict | None = None  # bench.limits.Limits as data: every library's GEMM, the theoretical peak

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

    def tables(self) -> list[Table]:
        return [Table.of(self.title(), *self.rows())]

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """(header, rows) of the table: measured rows first, then one per idle backend."""
        baselines = [b for b in ("eager", "onnx-naive", "onnx-fp32")
                     if any(r.backend == b and r.status == OK for r in self.results)]
        header = ["backend", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "GFLOP/s", "% peak", "% peak cpu"]
        if self.limits:
            header += ["% best GEMM", "% FMA peak"]
        header += [f"x {b.removeprefix('onnx-') if b != 'onnx-fp32' else b}" for b in baselines] + ["RSS MB"]
        precision = {b.name: b.precision for b in self.backends}
        rows, idle = [], {}
        for r in self.results:
            if r.status != OK:  # one row per backend and reason, after the measured ones
                idle.setdefault((r.backend, r.status, r.reason), []).append(str(r.batch_size))
                continue
            ratios = [self.ratio(r, b) for b in baselines]
            limits = [_fmt(x, "{:.0%}") for x in self.limit_fractions(precision.get(r.backend, "fp32"), r.gflops)]
            rows.append([
                r.backend, str(r.batch_size), f"{r.p50_ms:.1f}", f"{r.p90_ms:.1f}", f"{r.p99_ms:.1f}",
                f"{r.throughput:.2f}", _fmt(r.gflops, "{:.1f}"), _fmt(r.peak_fraction, "{:.0%}"),
                _fmt(r.cpu_peak_fraction, "{:.0%}"), *(limits if self.limits else []),
                *[_fmt(x, "{:.2f}x") for x in ratios], _fmt(r.peak_rss_mb, "{:.0f}"),
            ])
        all_batches = [str(b) for b in dict.fromkeys(r.batch_size for r in self.results)]
        for (backend, status, _), batches in idle.items():
            rows.append([backend, "all" if batches == all_batches else ",".join(batches), status]
                        + [""] * (len(header) - 3))
        return header, rows

    def limit_fractions(self, precision: str, gops: float | None) -> tuple[float | None, float | None]:
        """(fraction of the best library GEMM, fraction of the theoretical peak) of a row's GOP/s, each in
        the data type the row computes in (bench.limits.COMPUTE_DTYPE)."""
        from volo_export.bench.limits import COMPUTE_DTYPE

        if not self.limits or not gops:
            return None, None
        dtype = COMPUTE_DTYPE.get(precision, "fp32")
        best = self.limits["best"].get(dtype, {}).get("gops")
        peak = (self.limits["theoretical"]["figures"].get(dtype) or {}).get("gops")
        return (gops / best if best else None), (gops / peak if peak else None)

    def limit_lines(self) -> list[str]:
        """How the limits were obtained: every library's GEMM per data type and the theoretical peak."""
        if not self.limits:
            return []
        lim = self.limits
        out = ["% peak = of ONNX Runtime's FP32 GEMM timed between the backends (how well a graph uses ONNX "
               "Runtime); % best GEMM = of the best library GEMM in the row's data type (fp16 rows compute in "
               "fp32 on CPU); % FMA peak = of the theoretical peak in that type. INT8 rows count int8 operations."]
        for dtype, unit in (("fp32", "GFLOP/s"), ("bf16", "GFLOP/s"), ("int8", "GOP/s")):
            rates = [g for g in lim["gemms"] if g["dtype"] == dtype]
            if rates:
                parts = [f"{g['library']} {g['gops']:.0f}" if g["gops"] else f"{g['library']} failed ({g['error']})"
                         for g in rates]
                out.append(f"{dtype} GEMM {lim['n']}^3, {lim['threads']} threads, best of standalone blocks "
                           f"({unit}): " + ", ".join(parts))
        th = lim["theoretical"]
        clock = f"{th['clock_ghz']:.2f} GHz ({th['clock_how']})" if th["clock_ghz"] else th["clock_how"]
        out.append(f"theoretical peak = {th['cores']} cores x clock x instructions/cycle x ops/instruction; ISA "
                   f"{th['tier']}; clock {clock}; cpuinfo MHz {th['cpuinfo_mhz']} (in a VM often the TSC, not the "
                   "clock)")
        for f in th["figures"].values():
            value = (f"{f['gops']:.0f} G{'' if f['dtype'] == 'int8' else 'FL'}OP/s" if f["gops"]
                     else "not measured")
            out.append(f"theoretical {f['dtype']}: {value} ({f['instruction']}, {f['how']})")
        return out

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
        isa = f"ISA {e['isa']}; " if e.get("isa") else ""
        return [f"CPU: {e['cpu']} ({e['usable_cpus']} usable of {e['logical_cpus']} logical CPUs; {isa}"
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
