"""TensorRT-RTX specifics that need no TensorRT: the plan header, engine-validity diagnostics and the
runtime-cache file.

- Plan header: a TensorRT-RTX plan starts with a 64-byte header (`Runtime.engine_header_size`):
  b"vtrt" at 0, the plan size (uint64) at 16, version bytes (major, minor, patch, build) at 24,
  and at 32 a uint64 bit mask of the compute capabilities it was built for. Reverse engineered
  from 1.7.1 plans built for each target and undocumented, so it only cross-checks the sidecar
  (which is the record); the default build sets 0x7e (8.0 ... 12.1) plus 0x40, an architecture
  the Python enum does not name.
- Validity: `Runtime.get_engine_validity(plan)` reads that header on the user's GPU before
  deserialising (documented since 1.1) and returns (EngineValidity, diagnostics bit flags).
- Runtime cache: kernels TensorRT-RTX compiles just in time on the GPU are kept in a runtime cache
  (`IRuntimeConfig.create_runtime_cache`), saved per engine and TensorRT-RTX version under
  `~/.cache/volo-export/tensorrt-rtx/`, beside ONNX Runtime's TensorRT engine cache. A cache from
  another GPU, driver or version is rejected by TensorRT-RTX itself and rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volo_export.io import user_cache_dir

PLAN_MAGIC = b"vtrt"
HEADER_BYTES = 64
_CC_BITS = {0x1: "7.5", 0x2: "8.0", 0x4: "8.6", 0x8: "8.9", 0x10: "12.0", 0x20: "12.1"}

# EngineInvalidityDiagnostics bits (TensorRT-RTX 1.7) -> what they mean for the user.
_INVALIDITY = {
    1: "it was built with another TensorRT-RTX version (rebuild it with this one)",
    2: "it was not built for this GPU's compute capability (rebuild with --compute-capability for it)",
    4: "the CUDA driver is too old for it (update the driver)",
    8: "the CUDA runtime is too old for it",
    16: "this GPU has too little memory for it",
    32: "the plan is malformed (rebuild it)",
    64: "a CUDA error occurred while checking it (is the GPU usable?)",
}

RUNTIME_CACHE_DIR = "tensorrt-rtx"


@dataclass(frozen=True)
class PlanHeader:
    version: tuple[int, ...]
    compute_capabilities: tuple[str, ...]
    unknown_bits: int
    plan_bytes: int

    def to_dict(self) -> dict:
        return {"version": ".".join(map(str, self.version)), "compute_capabilities": list(self.compute_capabilities),
                "unknown_bits": self.unknown_bits, "plan_bytes": self.plan_bytes}


def read_plan_header(blob: bytes) -> PlanHeader | None:
    """The header of a TensorRT-RTX plan (its first 64 bytes suffice); None for anything else."""
    if len(blob) < HEADER_BYTES or blob[:4] != PLAN_MAGIC:
        return None
    mask = int.from_bytes(blob[32:40], "little")
    return PlanHeader(tuple(blob[24:28]), tuple(cc for bit, cc in _CC_BITS.items() if mask & bit),
                      mask & ~sum(_CC_BITS), int.from_bytes(blob[16:24], "little"))


def header_mismatch(header: PlanHeader | None, targets: list[str]) -> str | None:
    """Why the plan's header disagrees with the compute capabilities it was built for (None: agrees, or
    the default targets, or no header to read)."""
    if header is None or not targets or sorted(header.compute_capabilities) == sorted(targets):
        return None
    return (f"the plan's header names compute capability {', '.join(header.compute_capabilities) or 'none'}, "
            f"but it was built for {', '.join(targets)}")


def validity_problem(validity: str, diagnostics: int, engine: str) -> str | None:
    """One line for an `get_engine_validity` answer that is not VALID (None when it is, or merely SUBOPTIMAL)."""
    if validity in ("VALID", "SUBOPTIMAL"):
        return None
    reasons = [text for bit, text in _INVALIDITY.items() if diagnostics & bit]
    unknown = diagnostics & ~sum(_INVALIDITY)
    if unknown:
        reasons.append(f"diagnostics {unknown:#x}")
    return f"TensorRT-RTX cannot load {engine}: " + ("; ".join(reasons) or "it could not read this GPU's properties "
                                                      "(no usable CUDA GPU or driver?)")


def runtime_cache_path(engine_sha256: str, version: str, root: Path | None = None) -> Path | None:
    """Where the JIT kernels of one engine (by its sha256) under one TensorRT-RTX version are kept (None: no
    cache home, no runtime cache)."""
    folder = Path(root) if root is not None else user_cache_dir(RUNTIME_CACHE_DIR)
    return None if folder is None else folder / f"{engine_sha256[:24]}-{version}.runtime-cache"
