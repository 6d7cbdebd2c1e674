"""The machine's theoretical limit, from its ISA, core count and clock, each figure with how it was obtained.

    peak = cores x clock x (instructions per cycle per core) x (operations per instruction)

- clock: measured with a chain of dependent 64-bit `imul` (3 cycles each on every x86-64 core since
  Nehalem and Zen). cpuinfo's "cpu MHz" is reported next to it, but in a VM without cpufreq it is
  often the TSC rate (2300 MHz on a 3.35 GHz Xeon here), not the clock.
- instructions per cycle: measured for `vfmadd231ps` (FP32 FMA, ymm and zmm), `vpdpbusd` (INT8 VNNI)
  and `vdpbf16ps` (AVX512_BF16) with 12 independent accumulators, taken to the port count it
  reaches (0.5/1/2/4: the measurement in a shared VM reads lower, 1.95 quiet and 1.71 loaded for 2).
  "FMA units per core" is not in cpuinfo (Zen 4 splits a 512-bit FMA in two, Intel servers have
  one or two 512-bit units), so this is measured, never looked up.
- operations per instruction: FP32 FMA 2 x lanes (32 per zmm); VNNI 4 int8 products + adds per
  32-bit lane (128 per zmm); vdpbf16ps 2 bf16 products + adds per lane (64 per zmm). Without VNNI,
  int8 takes VPMADDUBSW + VPMADDWD + VPADDD: 2x the FP32 rate at best. AMX (where present) is
  Intel's documented 1024 BF16 / 2048 INT8 operations per cycle per core, not measured here.

The probes are machine code (`isa_probe.S`, assembled) run through ctypes in a child process, so a
CPU that lies about a flag costs a failed probe, not the benchmark. Non-x86-64 machines, or where
executable memory is refused, get no measured figures and the report says so.
"""

from __future__ import annotations

import base64
import json
import platform
import sys
import zlib
from dataclasses import asdict, dataclass, field

from volo_export.bench.child import run_child
from volo_export.hardware import CpuIsa, cpu_isa, cpuinfo_mhz, usable_cpus

# isa_probe.S, assembled (gcc -c, objcopy -O binary --only-section=.text), zlib + base64; sha256 of the
# raw bytes: 1b2dec9e742596e103b1a60900cd5cdfcc6d53b5b2b0ebb5f92ccedf25d16ac5.
_CODE = ("eNrt0aFOxEAQxvFHuGfhLVZOMOdr0IvBbHGIUzwKtrIN1+QazK27dbeoruKKahNCmf0Hg+AchISK72dmOvnSNZvpojarhyV/KXO3"
         "urt6n+dHs5nat3Wt2Wn2moPmqOk1J83YOp07nTudO507nbt1v30uK58JmZhJmSEzbYuyajJdxmdCJmbSf/uWH/6kP7wdb/I/L4bS"
         "vNS4wz0e8Ig9nnAsLPuWfcu+Zd+yb9l/LU3lMWDEhANOxbXaYIceA0ZMy53zd3jL+59/S6Gr0FXoKnQVugpdha5CV6Gr0FXo+rm/"
         "3Pn2zu+85a259BgwYsIBtavaYIceA0ZMy53zd7685QdVELBY")
# Function -> (offset in the code, operations per instruction, what the instruction is).
_PROBES = {
    "imul_chain": (0, None, "dependent imul r64 (clock)"),
    "fma_ymm": (415, 16, "vfmadd231ps ymm (FP32 FMA, AVX2)"),
    "fma_zmm": (787, 32, "vfmadd231ps zmm (FP32 FMA, AVX-512)"),
    "vnni_zmm": (1247, 128, "vpdpbusd zmm (INT8, AVX512_VNNI)"),
    "bf16_zmm": (1707, 64, "vdpbf16ps zmm (BF16, AVX512_BF16)"),
}
_NEEDS = {"fma_ymm": ("fma", "avx2"), "fma_zmm": ("avx512f",), "vnni_zmm": ("avx512_vnni",), "bf16_zmm": ("avx512_bf16",)}
_IMULS, _SIMD = 100, 60  # instructions per loop iteration
AMX_OPS_PER_CYCLE = {"bf16": 1024, "int8": 2048}


@dataclass
class IsaProbe:
    """What the probes measured on one core: clock (GHz) and instructions per cycle per probe."""

    clock_ghz: float | None
    per_cycle: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _run_probe(name: str, iterations: int) -> float:
    """Seconds for `iterations` loops of probe `name` (this process; x86-64 Linux/macOS only)."""
    import ctypes
    import mmap
    import time

    code = zlib.decompress(base64.b64decode(_CODE))
    memory = mmap.mmap(-1, len(code), prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    memory.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory)) + _PROBES[name][0]
    function = ctypes.CFUNCTYPE(None, ctypes.c_long)(address)
    function(iterations * 5)  # warm up (and let the core reach its clock)
    best = float("inf")
    for _ in range(50):  # ~2 ms runs, the fastest of many: on a shared machine some run undisturbed
        t0 = time.perf_counter()
        function(iterations)
        best = min(best, time.perf_counter() - t0)
    return best


def probe_main(flags_json: str) -> None:
    """Child process: measure the clock and every probe this CPU's flags allow; print one JSON line."""
    flags = set(json.loads(flags_json))
    hz = 3 * _IMULS * 20_000 / _run_probe("imul_chain", 20_000)  # ~2 ms per run
    per_cycle = {}
    for name, needs in _NEEDS.items():
        if all(f in flags for f in needs):
            per_cycle[name] = _SIMD * 10_000 / _run_probe(name, 10_000) / hz
    sys.stdout.write(json.dumps({"clock_ghz": hz / 1e9, "per_cycle": per_cycle}) + "\n")


def measure_isa(isa: CpuIsa | None = None, timeout_s: float = 60) -> IsaProbe:
    """Run the probes in a child process; an IsaProbe with `error` set where they cannot run here."""
    isa = isa or cpu_isa()
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return IsaProbe(None, error=f"no probes for {platform.machine()} (x86-64 only)")
    got, why = run_child("volo_export.bench.isa:probe_main", json.dumps(list(isa.flags)), timeout_s)
    if why is not None:
        return IsaProbe(None, error=f"probe {why}")
    return IsaProbe(got["clock_ghz"], got["per_cycle"])


@dataclass
class PeakFigure:
    """One theoretical peak: G(FL)OP/s for `cores`, and how each factor was obtained."""

    dtype: str  # fp32, int8, bf16
    gops: float | None
    instruction: str
    per_cycle: float | None  # instructions per cycle per core (rounded to the port count)
    ops_per_instruction: int | None
    how: str


@dataclass
class TheoreticalPeak:
    """cores x clock x instructions/cycle x ops/instruction for FP32, INT8 and BF16."""

    cores: int
    clock_ghz: float | None
    clock_how: str
    cpuinfo_mhz: float | None
    tier: str
    figures: dict[str, PeakFigure]

    def gops(self, dtype: str) -> float | None:
        figure = self.figures.get(dtype)
        return figure.gops if figure else None

    def to_dict(self) -> dict:
        return asdict(self)


PORT_COUNTS = (0.5, 1.0, 2.0, 4.0)  # SIMD instructions per cycle per core that x86 cores issue
MEASURE_SLACK = 0.9  # a probe on a shared VM reads low (1.71 for 2 ports under load), never far high


def _ports(x: float) -> float:
    """The port count behind a measured rate: the smallest count the rate reaches within its slack
    (rounding to the nearest half turned 1.71 into 1.5, a 'peak' below the GEMMs measured beside it)."""
    return next((n for n in PORT_COUNTS if n >= x * MEASURE_SLACK), PORT_COUNTS[-1])


def theoretical_peak(cores: int | None = None, isa: CpuIsa | None = None,
                     probe: IsaProbe | None = None) -> TheoreticalPeak:
    """The theoretical FP32/INT8/BF16 peaks of `cores` cores (default: usable ones), from a probe
    (default: measured now)."""
    isa = isa or cpu_isa()
    cores = cores or usable_cpus()
    probe = probe or measure_isa(isa)
    hz = probe.clock_ghz
    clock_how = ("measured, dependent imul chain" if hz else f"not measured ({probe.error})")
    figures: dict[str, PeakFigure] = {}

    def measured(dtype: str, name: str):
        rate = probe.per_cycle.get(name)
        ops = _PROBES[name][1]
        if rate is None or hz is None:
            return PeakFigure(dtype, None, _PROBES[name][2], None, ops, "not measured here")
        ipc = _ports(rate)
        return PeakFigure(dtype, cores * hz * ipc * ops, _PROBES[name][2], ipc, ops,
                          f"{ipc:g}/cycle/core (measured {rate:.2f})")

    fma = "fma_zmm" if isa.avx512 else "fma_ymm"
    figures["fp32"] = measured("fp32", fma)
    if isa.amx and hz:
        for dtype in ("int8", "bf16"):
            figures[dtype] = PeakFigure(dtype, cores * hz * AMX_OPS_PER_CYCLE[dtype], f"AMX {dtype} tiles", None,
                                        AMX_OPS_PER_CYCLE[dtype], "Intel's documented rate per core, not measured")
        return TheoreticalPeak(cores, hz, clock_how, cpuinfo_mhz(), isa.tier, figures)
    if isa.has("avx512_vnni"):
        figures["int8"] = measured("int8", "vnni_zmm")
    else:
        base = figures["fp32"]
        figures["int8"] = PeakFigure("int8", base.gops * 2 if base.gops else None,
                                     "vpmaddubsw + vpmaddwd (no VNNI)", None, None,
                                     "2x the FP32 rate (two instructions per 32 int8 multiply-adds), derived")
    if isa.has("avx512_bf16"):
        figures["bf16"] = measured("bf16", "bf16_zmm")
    return TheoreticalPeak(cores, hz, clock_how, cpuinfo_mhz(), isa.tier, figures)
