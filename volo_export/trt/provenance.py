"""The engine sidecar `X.engine.json`: what built the plan, for which model, and can it load here?

The `.engine` file is the bare serialized plan (trtexec and C++ load it as is);
everything else lives beside it in the sidecar:

    format                "volo-export.engine/1"
    engine                {file, sha256, bytes}
    onnx                  {file, sha256}
    runtime               {product: "tensorrt" | "tensorrt-rtx", version, compute_capabilities (TensorRT-RTX
                          targets; [] = its portable default), targets (in words), plan_header (TensorRT-RTX)}
    environment           {tensorrt, tensorrt_rtx, cuda_runtime, driver, gpu_name, compute_capability} of the
                          build machine (a TensorRT-RTX build may have no GPU)
    build                 every BuildSettings field + trt_major + network_flags
    layers                the engine's layers by kind and precision, every MatMul/Gemm/Conv's precision in the
                          graph and in the engine (`trt.layers.LayerReport`), or null
    profile               {input, min, opt, max}  (N, C, H, W) shapes
    io                    {input, output}
    trtexec               the equivalent trtexec command
    calibration           the ONNX metadata's `calib*` keys (e.g. calibration cache sha256)
    metadata              the ONNX's `volo_export.*` metadata_props (ArtifactInfo.to_props)
    volo_export_version, created_utc

`compatibility(provenance, running)` compares it with the running machine and
explains each mismatch in one line, before TensorRT gets to fail opaquely. A
TensorRT-RTX engine is judged by its product version and its target compute
capabilities, not by the (absent) GPU it was built on.
Pure: the running environment comes in as data (see `environment.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from volo_export.errors import EngineError, InputDataError, first_line
from volo_export.export.metadata import PREFIX, ArtifactInfo, check_input_shape
from volo_export.names import Precision
from volo_export.records import from_record, to_record
from volo_export.trt.config import Profile
from volo_export.trt.layers import LayerReport
from volo_export.trt.products import (COMPUTE_CAPABILITIES, PRODUCTS, RTX, RTX_DEFAULT_DESCRIPTION, TENSORRT,
                                      fp8_gpu_problem, gpu_in_targets, version_numbers)

SIDECAR_FORMAT = "volo-export.engine/1"
SIDECAR_SUFFIX = ".json"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")  # what an engine file may be called
# The smallest plan TensorRT 10 writes for a one-layer network is tens of KiB (header,
# kernels, weights); anything under 1 KiB cannot be a plan.
MIN_PLAN_BYTES = 1024


@dataclass(frozen=True)
class Environment:
    """The TensorRT/CUDA/GPU stack of a machine; None where unknown or absent."""

    tensorrt: str | None = None
    cuda_runtime: str | None = None
    driver: str | None = None
    gpu_name: str | None = None
    compute_capability: str | None = None
    tensorrt_rtx: str | None = None

    @property
    def trt_version(self) -> tuple[int, ...] | None:
        return _version_tuple(self.tensorrt)

    def version_of(self, product: str) -> str | None:
        """The installed version of `product` (products.TENSORRT or RTX)."""
        return self.tensorrt_rtx if product == RTX else self.tensorrt

    def describe(self, product: str = TENSORRT) -> str:
        version = self.version_of(product)
        label = PRODUCTS[product].label
        trt = f"{label} {version}" if version else f"no {label}"
        if not self.compute_capability:
            return f"{trt}, no CUDA GPU"
        return f"{trt} on {self.gpu_name or 'unknown GPU'} (sm_{self.compute_capability.replace('.', '')})"


@dataclass(frozen=True)
class BuildRecord:
    """The sidecar's `build`: every `config.BuildSettings` field (paths as strings) plus what the plan made
    of them. Defaults stand in for fields older sidecars lack."""

    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    workspace_mib: int | None = None
    opt_level: int | None = None
    timing_cache: str | None = None
    hardware_compat: str = "none"
    version_compatible: bool = False
    plugins: tuple[str, ...] = ()
    strongly_typed: bool = True
    runtime: str | None = None  # the --runtime choice (config.BuildSettings.runtime)
    compute_capabilities: tuple[str, ...] = ()
    trt_major: int | None = None
    network_flags: tuple[str, ...] = ()
    builder_calls: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings, trt_major: int | None, network_flags, builder_calls) -> "BuildRecord":
        """The record of `settings` (config.BuildSettings) built as `trt_major` with these flags and calls."""
        return from_record(cls, {**to_record(settings), "trt_major": trt_major, "network_flags": list(network_flags),
                                 "builder_calls": [str(c) for c in builder_calls]})


@dataclass(frozen=True)
class ProductRecord:
    """The sidecar's `runtime`: the product that built the plan (`products.TENSORRT` or `RTX`), its version,
    the TensorRT-RTX target compute capabilities ([] = its portable default), the targets in words and
    the TensorRT-RTX plan header. Sidecars from before TensorRT-RTX have none: TensorRT."""

    product: str = TENSORRT
    version: str | None = None
    compute_capabilities: tuple[str, ...] = ()
    targets: str = ""
    plan_header: dict | None = field(default=None, metadata={"omit_none": True})


@dataclass
class EngineProvenance:
    """The sidecar's content. `metadata` is the model's ArtifactInfo as flat ONNX metadata_props."""

    engine_file: str
    engine_sha256: str
    engine_bytes: int
    onnx_file: str
    onnx_sha256: str
    environment: Environment
    build: BuildRecord
    profile: Profile
    trtexec: str
    metadata: dict[str, str]
    input_name: str = "input"
    output_name: str = "logits"
    calibration: dict[str, str] = field(default_factory=dict)
    volo_export_version: str = ""
    created_utc: str = ""
    format: str = SIDECAR_FORMAT
    runtime: ProductRecord = ProductRecord()
    layers: dict | None = None  # trt.layers.LayerReport.to_dict()

    @property
    def product(self) -> str:
        """products.TENSORRT or RTX (sidecars from before TensorRT-RTX: TensorRT)."""
        return self.runtime.product

    @property
    def product_version(self) -> str | None:
        return self.runtime.version or self.environment.version_of(self.product)

    @property
    def compute_capabilities(self) -> list[str]:
        """TensorRT-RTX target compute capabilities ('8.6', ...); [] = its portable default."""
        return list(self.runtime.compute_capabilities)

    @property
    def info(self) -> ArtifactInfo:
        source = f"sidecar of {self.engine_file}"
        info = ArtifactInfo.from_props(self.metadata, source=source)
        for shape in (self.profile.min, self.profile.opt, self.profile.max):
            check_input_shape(shape, info, source)
        return info

    @property
    def fp8(self) -> bool:
        """The engine runs FP8 layers: its graph is an fp8 graph, or its layer report counts FP8 layers (a foreign
        ONNX with float8 Q/DQ)."""
        return (self.metadata.get(PREFIX + "precision") == Precision.FP8
                or bool((self.layers or {}).get("by_precision", {}).get(Precision.FP8)))

    @property
    def hardware_compat(self) -> str:
        return self.build.hardware_compat

    @property
    def version_compatible(self) -> bool:
        return self.build.version_compatible

    @property
    def plugins(self) -> list[str]:
        return list(self.build.plugins)

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "engine": {"file": self.engine_file, "sha256": self.engine_sha256, "bytes": self.engine_bytes},
            "onnx": {"file": self.onnx_file, "sha256": self.onnx_sha256},
            "runtime": to_record(self.runtime),
            "environment": to_record(self.environment),
            "build": to_record(self.build),
            "profile": to_record(self.profile),
            "io": {"input": self.input_name, "output": self.output_name},
            "trtexec": self.trtexec,
            "calibration": self.calibration,
            "metadata": self.metadata,
            "layers": self.layers,
            "volo_export_version": self.volo_export_version,
            "created_utc": self.created_utc,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "EngineProvenance":
        return cls(engine_file=d["engine"]["file"], engine_sha256=d["engine"]["sha256"],
                   engine_bytes=int(d["engine"]["bytes"]), onnx_file=d["onnx"]["file"],
                   onnx_sha256=d["onnx"]["sha256"], environment=from_record(Environment, d["environment"]),
                   build=from_record(BuildRecord, d["build"]), profile=Profile.from_dict(d["profile"]),
                   trtexec=d["trtexec"],
                   metadata=dict(d["metadata"]), input_name=d["io"]["input"], output_name=d["io"]["output"],
                   calibration=dict(d.get("calibration", {})), volo_export_version=d.get("volo_export_version", ""),
                   created_utc=d.get("created_utc", ""), format=d["format"],
                   runtime=from_record(ProductRecord, d.get("runtime") or {}),
                   layers=None if d.get("layers") is None else LayerReport.from_dict(d["layers"]).to_dict())


def calibration_info(info: ArtifactInfo) -> dict[str, str]:
    """The calibration facts the ONNX carries (ArtifactInfo.extra keys starting with 'calib')."""
    return {k: v for k, v in sorted(info.extra.items()) if k.startswith("calib")}


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def sidecar_path(engine: Path) -> Path:
    """`d1.engine` -> `d1.engine.json`."""
    engine = Path(engine)
    return engine.with_name(engine.name + SIDECAR_SUFFIX)


def write_sidecar(provenance: EngineProvenance, path: Path) -> None:
    """Write the sidecar JSON to `path` (callers write into an atomic_output staging folder)."""
    Path(path).write_text(json.dumps(provenance.to_dict(), indent=2) + "\n", encoding="utf-8")


def read_sidecar(engine: Path) -> EngineProvenance:
    """The provenance beside `engine`; a missing or malformed sidecar is a one-line InputDataError."""
    path = sidecar_path(engine)
    if not path.is_file():
        raise InputDataError(f"{Path(engine).name} has no sidecar {path.name} beside it: volo-export needs it for "
                             "the model's preprocessing, labels and profile (build with volo-export engine)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputDataError(f"{path.name} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InputDataError(f"{path.name} is not a volo-export engine sidecar (format {found!r}, "
                             f"expected {SIDECAR_FORMAT!r})")
    try:
        return EngineProvenance.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputDataError(f"{path.name} is incomplete or damaged ({type(e).__name__}: {first_line(e)})") from None


def verify_plan_file(engine: Path, provenance: EngineProvenance) -> None:
    """Cheap checks that need no TensorRT: the file exists, is big enough, and is the plan the sidecar
    describes (size, then sha256)."""
    from volo_export.io import input_file, sha256_file

    engine = Path(engine)
    input_file(engine, "engine")
    size = engine.stat().st_size
    if size < MIN_PLAN_BYTES:
        raise InputDataError(f"{engine.name} is {size} bytes: too small to be a TensorRT plan")
    if size != provenance.engine_bytes or sha256_file(engine) != provenance.engine_sha256:
        what = "size" if size != provenance.engine_bytes else "sha256"
        raise InputDataError(f"{engine.name} does not match its sidecar ({what} differs): the file was replaced "
                             "or damaged; rebuild it with volo-export engine")


# ------------------------------------------------------------- compatibility


@dataclass(frozen=True)
class Mismatch:
    """One difference between build and run machines. `error` means the engine will not load."""

    severity: str
    message: str


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    return version_numbers(version) or None


def _cc(value: str | None) -> tuple[int, int] | None:
    v = _version_tuple(value)
    return (v[0], v[1] if len(v) > 1 else 0) if v else None


def compatibility(provenance: EngineProvenance, running: Environment) -> list[Mismatch]:
    """Every reason the engine may not load (error) or may run worse (warning) on `running`."""
    name, built = provenance.engine_file, provenance.environment
    if provenance.product == RTX:
        return _rtx_mismatches(provenance, running)
    out: list[Mismatch] = []
    out += _trt_mismatches(name, built, running, provenance.version_compatible)
    out += _fp8_mismatches(provenance, running) or _gpu_mismatches(name, built, running, provenance.hardware_compat)
    b_cuda, r_cuda = _version_tuple(built.cuda_runtime), _version_tuple(running.cuda_runtime)
    if b_cuda and r_cuda and b_cuda[0] != r_cuda[0]:
        out.append(Mismatch("warning", f"{name} was built against CUDA {built.cuda_runtime}, this machine runs CUDA "
                            f"{running.cuda_runtime}: TensorRT builds for different CUDA majors are different "
                            "libraries; rebuild if loading fails"))
    return out


def _rtx_mismatches(provenance: EngineProvenance, running: Environment) -> list[Mismatch]:
    """A TensorRT-RTX engine loads with the TensorRT-RTX version that built it, on a GPU it targets."""
    name, built, here = provenance.engine_file, provenance.product_version, running.tensorrt_rtx
    if here is None:
        return [Mismatch("error", f"{name} is a TensorRT-RTX {built} engine but TensorRT-RTX is not installed here "
                         f"({PRODUCTS[RTX].install})")]
    if version_numbers(here)[:2] != version_numbers(built)[:2]:
        return [Mismatch("error", f"{name} was built with TensorRT-RTX {built} but this machine runs TensorRT-RTX "
                         f"{here}: a plan loads only on the TensorRT-RTX version that built it; rebuild it "
                         "(volo-export engine --runtime rtx, no GPU needed)")]
    if running.compute_capability is None:
        return [Mismatch("error", f"{name} needs an NVIDIA RTX GPU to run but none is visible here "
                         "(CUDA_VISIBLE_DEVICES, driver); TensorRT-RTX only builds without one")]
    if fp8 := _fp8_mismatches(provenance, running):
        return fp8
    targets = provenance.compute_capabilities
    if not gpu_in_targets(running.compute_capability, targets):
        built_for = f"compute capability {', '.join(targets)}" if targets else RTX_DEFAULT_DESCRIPTION
        sm = f"sm{running.compute_capability.replace('.', '')}"
        fix = (f"rebuild with --compute-capability {sm}" if sm in COMPUTE_CAPABILITIES else
               f"TensorRT-RTX builds for RTX GPUs only ({', '.join(COMPUTE_CAPABILITIES)}); use TensorRT here")
        return [Mismatch("error", f"{name} was built for {built_for} but this GPU is {running.gpu_name or 'a GPU'} "
                         f"(compute capability {running.compute_capability}): {fix}")]
    return []


def _fp8_mismatches(provenance: EngineProvenance, running: Environment) -> list[Mismatch]:
    """An FP8 engine on a GPU below compute capability 8.9: said before any target or GPU mismatch, whose advice
    (rebuild for this GPU) could not help."""
    problem = provenance.fp8 and fp8_gpu_problem(running.compute_capability, running.gpu_name,
                                                 f"{provenance.engine_file} has FP8 layers",
                                                 "use an int8 or fp16 engine on this GPU")
    return [Mismatch("error", problem)] if problem else []


def _trt_mismatches(name: str, built: Environment, running: Environment, version_compatible: bool) -> list[Mismatch]:
    b, r = built.trt_version, running.trt_version
    if r is None:
        needs = f"TensorRT {built.tensorrt}" if built.tensorrt else "TensorRT"
        return [Mismatch("error", f"{name} needs {needs} but TensorRT is not installed here "
                         "(pip install tensorrt on a machine with an NVIDIA GPU)")]
    if b is None:
        return [Mismatch("warning", f"the sidecar of {name} does not say which TensorRT built it")]
    if version_compatible:
        if r[0] != b[0] or r[:2] < b[:2]:
            return [Mismatch("error", f"{name} is version-compatible from TensorRT {built.tensorrt} on, within "
                             f"TensorRT {b[0]}.x; this machine runs TensorRT {running.tensorrt}: rebuild here")]
        return []
    if r[:2] != b[:2]:
        return [Mismatch("error", f"{name} was built with TensorRT {built.tensorrt} but this machine runs TensorRT "
                         f"{running.tensorrt}: a plan loads only on the TensorRT version that built it; rebuild "
                         "here (volo-export engine) or build with --version-compatible")]
    if r != b:
        return [Mismatch("warning", f"{name} was built with TensorRT {built.tensorrt}, this machine runs "
                         f"{running.tensorrt} (same minor): usually loads; rebuild if it does not")]
    return []


def _gpu_mismatches(name: str, built: Environment, running: Environment, hardware_compat: str) -> list[Mismatch]:
    b, r = _cc(built.compute_capability), _cc(running.compute_capability)
    if r is None:
        return [Mismatch("error", f"{name} needs an NVIDIA GPU but none is visible here (CUDA_VISIBLE_DEVICES, "
                         "driver)")]
    if b is None:
        return [Mismatch("warning", f"the sidecar of {name} does not say which GPU built it")]
    where = f"{built.gpu_name or 'a GPU'} (compute capability {built.compute_capability})"
    here = f"{running.gpu_name or 'this GPU'} (compute capability {running.compute_capability})"
    if hardware_compat == "ampere-plus":
        if r < (8, 0):
            return [Mismatch("error", f"{name} is hardware-compatible with Ampere and newer (compute capability "
                             f">= 8.0) but this GPU is {here}")]
        return []
    if r != b:
        hint = "" if hardware_compat == "same-compute-capability" else \
            " or build with --hardware-compat ampere-plus"
        return [Mismatch("error", f"{name} was built on {where} but this is {here}: plans are specific to the GPU "
                         f"architecture; rebuild here{hint}")]
    if built.gpu_name and running.gpu_name and built.gpu_name != running.gpu_name:
        return [Mismatch("warning", f"{name} was built on {built.gpu_name}, running on {running.gpu_name} (same "
                         "compute capability): it loads, but kernels were timed on the other GPU")]
    return []


def ensure_compatible(provenance: EngineProvenance, running: Environment) -> list[str]:
    """Raise EngineError with the first blocking mismatch; return the warnings as lines."""
    problems = compatibility(provenance, running)
    errors = [p.message for p in problems if p.severity == "error"]
    if errors:
        raise EngineError(errors[0])
    return [p.message for p in problems]


# ---------------------------------------------------------- environment parsing


def cuda_version_from_int(value: int) -> str | None:
    """cudaRuntimeGetVersion/cudaDriverGetVersion's 12080 -> '12.8'; 0 or less -> None."""
    if value <= 0:
        return None
    return f"{value // 1000}.{(value % 1000) // 10}"


def parse_nvidia_smi(text: str) -> tuple[str | None, str | None, str | None]:
    """First line of `nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader`
    -> (gpu name, compute capability, driver version)."""
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            cc = parts[1] if _cc(parts[1]) else None
            return parts[0], cc, parts[2] or None
    return None, None, None


def visible_gpu_index(cuda_visible_devices: str | None) -> str | None:
    """The device nvidia-smi should query for CUDA device 0: CUDA_VISIBLE_DEVICES' first entry
    ('2,3' -> '2', 'GPU-uuid' -> the uuid); unset -> '0'; empty or '-1' -> None (no GPU visible)."""
    if cuda_visible_devices is None:
        return "0"
    first = cuda_visible_devices.split(",")[0].strip()
    if not first or first == "-1":
        return None
    return first
