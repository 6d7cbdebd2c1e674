"""What this CPU is: model name, the SIMD features that decide which kernels are fast, and usable cores.

Read from /proc/cpuinfo (Linux; elsewhere the model name from `platform` and no flags). The flags are
what the kernel (and, in a VM, the hypervisor) exposes: a CPU whose AMX is hidden by its hypervisor
reports no `amx_*` flags, and the runtimes cannot use AMX there either. Which path is fastest on which
tier is measured, not inferred from these flags (docs/CPU.md).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass


def _cpuinfo_field(key: str) -> str | None:
    """The first `key : value` of /proc/cpuinfo, None where it is missing."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The SIMD features that decide GEMM speed (avx2, avx512f, avx512_vnni, amx...) present on this CPU."""
    line = _cpuinfo_field("flags")
    return sorted(f for f in (line or "").split() if f.startswith(("avx", "amx", "fma")))


def cpuinfo_mhz() -> float | None:
    """The `cpu MHz` cpuinfo reports. In a VM without cpufreq this is often the TSC rate, not the clock."""
    value = _cpuinfo_field("cpu MHz")
    return float(value) if value else None


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class CpuIsa:
    """The instruction-set facts that pick kernels: FP32 FMA width, int8 dot products, bf16, AMX tiles."""

    flags: tuple[str, ...]

    def has(self, *names: str) -> bool:
        return any(n in self.flags for n in names)

    @property
    def avx512(self) -> bool:
        return self.has("avx512f")

    @property
    def vnni(self) -> bool:
        """int8 dot products in one instruction (VPDPBUSD): 4x the FP32 FMA rate per instruction."""
        return self.has("avx512_vnni", "avx_vnni", "amx_int8")

    @property
    def bf16(self) -> bool:
        """Native bfloat16 arithmetic (AVX512_BF16 dot products or AMX-BF16 tiles)."""
        return self.has("avx512_bf16", "amx_bf16")

    @property
    def amx(self) -> bool:
        return self.has("amx_tile", "amx_bf16", "amx_int8")

    @property
    def tier(self) -> str:
        """One name for the fastest matrix path this CPU exposes."""
        if self.amx:
            return "AMX"
        if self.avx512:
            extras = [name for name, on in (("VNNI", self.vnni), ("BF16", self.has("avx512_bf16")),
                                            ("FP16", self.has("avx512_fp16"))) if on]
            return "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
        if self.has("avx2"):
            return "AVX2" + (" (AVX-VNNI)" if self.vnni else "")
        return "no AVX2"


def cpu_isa(flags: list[str] | tuple[str, ...] | None = None) -> CpuIsa:
    """This CPU's ISA facts (or those of `flags`, for tests and reports from other machines)."""
    return CpuIsa(tuple(sorted(cpu_flags() if flags is None else flags)))
