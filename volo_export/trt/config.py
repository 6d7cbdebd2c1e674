"""What an engine build will do, decided without TensorRT.

`BuildSettings` (the user's options) + the ONNX input + the model's image size
-> `Profile` (min/opt/max input shapes) -> `BuildPlan`: the network creation
flags and every builder-config call as data (`BuilderCall`), which
`volo_export.trt.build` replays against the real `tensorrt` module and tests
inspect here. `trtexec_command` is the same build for users who run trtexec.

TensorRT 10 vs 11 vs TensorRT-RTX: precision lives in the ONNX graph (FP16
conversion, Q/DQ), so the network is strongly typed on all three: TensorRT 10
needs the `STRONGLY_TYPED` creation flag (and trtexec `--stronglyTyped`);
TensorRT 11 and TensorRT-RTX only build strongly typed networks (11 dropped the
flag's meaning, along with the FP16/INT8 builder flags and trtexec
`--fp16/--int8`, which this project never uses). TensorRT-RTX targets compute
capabilities instead of the build machine's GPU and has neither a lean runtime
(`--version-compatible`) nor timing caches; `build_plan` refuses or skips what
does not apply to the product in one line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from volo_export.errors import UsageError
from volo_export.trt.products import (RTX_DEFAULT_DESCRIPTION, RUNTIME_CHOICES, Library, cc_versions,
                                      parse_compute_capabilities)

# Batch profile defaults: 1 (latency), 8 (TensorRT tunes kernels for opt), 32 (throughput).
DEFAULT_MIN_BATCH = 1
DEFAULT_OPT_BATCH = 8
DEFAULT_MAX_BATCH = 32
DEFAULT_OPT_LEVEL = 3  # TensorRT's own default; 0..5
MAX_OPT_LEVEL = 5

# --hardware-compat value -> (TensorRT enum member, trtexec spelling)
HARDWARE_COMPAT = {
    "none": (None, None),
    "ampere-plus": ("AMPERE_PLUS", "ampere+"),
    "same-compute-capability": ("SAME_COMPUTE_CAPABILITY", "sameComputeCapability"),
}
# The first TensorRT with HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY.
SAME_CC_SINCE = (10, 9)


@dataclass(frozen=True)
class BuildSettings:
    """Options of `volo-export engine`. Batches left None get the defaults above (see `resolve_batches`)."""

    min_batch: int | None = None
    opt_batch: int | None = None
    max_batch: int | None = None
    workspace_mib: int | None = None  # None: TensorRT's default (the device's memory)
    opt_level: int = DEFAULT_OPT_LEVEL
    timing_cache: Path | None = None
    hardware_compat: str = "none"
    version_compatible: bool = False
    plugins: tuple[Path, ...] = ()
    strongly_typed: bool = True
    runtime: str = "auto"  # auto | tensorrt | rtx (products.RUNTIME_CHOICES)
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets ('sm86', ...); () = its portable default

    def __post_init__(self):
        for flag, value in (("--min-batch", self.min_batch), ("--opt-batch", self.opt_batch),
                            ("--max-batch", self.max_batch)):
            if value is not None and value < 1:
                raise UsageError(f"{flag} must be >= 1, got {value}")
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise UsageError(f"--workspace must be >= 1 MiB, got {self.workspace_mib}")
        if not 0 <= self.opt_level <= MAX_OPT_LEVEL:
            raise UsageError(f"--opt-level must be 0..{MAX_OPT_LEVEL}, got {self.opt_level}")
        if self.hardware_compat not in HARDWARE_COMPAT:
            raise UsageError(f"--hardware-compat {self.hardware_compat!r}: choose {', '.join(HARDWARE_COMPAT)}")
        if self.runtime not in RUNTIME_CHOICES:
            raise UsageError(f"--runtime {self.runtime!r}: choose {', '.join(RUNTIME_CHOICES)}")
        object.__setattr__(self, "compute_capabilities", parse_compute_capabilities(self.compute_capabilities))
        if self.compute_capabilities and self.runtime == "tensorrt":
            raise UsageError(_CC_ON_TENSORRT)


@dataclass(frozen=True)
class InputSpec:
    """The network input as the ONNX declares it: dims are ints or symbolic names."""

    name: str
    dims: tuple[int | str, ...]
    elem_type: str = "float32"

    @property
    def static_batch(self) -> int | None:
        return self.dims[0] if self.dims and isinstance(self.dims[0], int) else None


@dataclass(frozen=True)
class Profile:
    """One optimization profile: (N, C, H, W) shapes for min, opt and max."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def batches(self) -> tuple[int, int, int]:
        return self.min[0], self.opt[0], self.max[0]

    @property
    def fixed(self) -> bool:
        return self.min == self.max

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        """From a sidecar's "profile"; a ValueError (one line) unless it holds a name and three (N, C, H, W)
        shapes of positive whole numbers with min <= opt <= max."""
        shapes = [d[k] for k in ("min", "opt", "max")]
        if not isinstance(d["input"], str) or not all(
                isinstance(s, list) and len(s) == 4 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                            for v in s) for s in shapes):
            raise ValueError(f"profile {d!r} is not an input name and three (N, C, H, W) shapes of positive integers")
        if not all(a <= b <= c for a, b, c in zip(*shapes)):
            raise ValueError(f"profile shapes are not min <= opt <= max: {shapes}")
        return cls(d["input"], *(tuple(s) for s in shapes))


def input_spec(model_proto) -> InputSpec:
    """The first real graph input of an ONNX ModelProto (initializers listed as inputs are skipped)."""
    from onnx import helper

    initializers = {t.name for t in model_proto.graph.initializer}
    inputs = [v for v in model_proto.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        raise UsageError(f"the ONNX has {len(inputs)} inputs; volo-export engines take exactly one image input")
    value = inputs[0]
    tt = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim)
    dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type).name if tt.elem_type else "unknown"
    return InputSpec(value.name, dims, dtype)


def resolve_batches(settings: BuildSettings, static_batch: int | None = None) -> tuple[int, int, int]:
    """(min, opt, max) batch. Defaults 1 / 8 / 32; opt is clamped into [min, max]; a static-batch
    ONNX fixes all three (asking for another batch is an error)."""
    asked = {"--min-batch": settings.min_batch, "--opt-batch": settings.opt_batch, "--max-batch": settings.max_batch}
    if static_batch is not None:
        wrong = [f"{k} {v}" for k, v in asked.items() if v is not None and v != static_batch]
        if wrong:
            raise UsageError(f"the ONNX has a static batch of {static_batch}, so {', '.join(wrong)} cannot apply; "
                             "re-export with dynamic batch (volo-export onnx without --batch)")
        return static_batch, static_batch, static_batch
    lo = settings.min_batch or DEFAULT_MIN_BATCH
    hi = settings.max_batch or max(DEFAULT_MAX_BATCH, lo, settings.opt_batch or 0)
    opt = settings.opt_batch or min(max(DEFAULT_OPT_BATCH, lo), hi)
    if not lo <= opt <= hi:
        raise UsageError(f"batch profile needs min <= opt <= max, got {lo} / {opt} / {hi}")
    return lo, opt, hi


def compute_profile(spec: InputSpec, image_size: int, settings: BuildSettings) -> Profile:
    """The optimization profile for an (N, C, H, W) image input; H and W come from the ONNX when
    static (and must equal the metadata's `image_size`), else from the metadata."""
    if len(spec.dims) != 4:
        raise UsageError(f"input '{spec.name}' has rank {len(spec.dims)}; expected (N, C, H, W)")
    _, channels, height, width = spec.dims
    if not isinstance(channels, int):
        raise UsageError(f"input '{spec.name}' has a dynamic channel dimension; expected a fixed C")
    for axis, dim in (("height", height), ("width", width)):
        if isinstance(dim, int) and dim != image_size:
            raise UsageError(f"input '{spec.name}' {axis} is {dim} but the model metadata says image size "
                             f"{image_size}; the ONNX and its metadata disagree")
    lo, opt, hi = resolve_batches(settings, spec.static_batch)
    shape = (channels, image_size, image_size)
    return Profile(spec.name, (lo, *shape), (opt, *shape), (hi, *shape))


# ------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Enum:
    """A TensorRT enum member by its Python path, e.g. 'MemoryPoolType.WORKSPACE'."""

    path: str

    def __str__(self) -> str:
        return f"trt.{self.path}"


@dataclass(frozen=True)
class Ref:
    """Another builder object of the plan (e.g. the optimization profile)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class BuilderCall:
    """`target.name(*args)`, or `target.name = args[0]` when `assign`. target: 'config' or 'profile'."""

    target: str
    name: str
    args: tuple = ()
    assign: bool = False

    def __str__(self) -> str:
        if self.assign:
            return f"{self.target}.{self.name} = {self.args[0]}"
        return f"{self.target}.{self.name}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True)
class BuildPlan:
    """Everything the builder is told: network flags, config calls in order, cache and plugins, for
    `library` (the product and version that will build). `notes`: options skipped, with the reason."""

    library: Library
    network_flags: tuple[str, ...]
    calls: tuple[BuilderCall, ...]
    profile: Profile | None  # the image input's (None: a plan for another graph, profile calls given in `calls`)
    timing_cache: Path | None = None
    plugins: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default=())
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets as versions ('8.6'); () = its default

    @property
    def trt_major(self) -> int | None:
        """TensorRT's major version (10, 11); None for TensorRT-RTX, a product line of its own."""
        return None if self.library.rtx else self.library.major

    @property
    def targets(self) -> str:
        """The GPUs the plan is for, in words."""
        if not self.library.rtx:
            return "the GPU it is built on"
        if self.compute_capabilities:
            return f"compute capability {', '.join(self.compute_capabilities)} (--compute-capability)"
        return RTX_DEFAULT_DESCRIPTION

    def describe(self) -> list[str]:
        flags = " | ".join(f"1 << NetworkDefinitionCreationFlag.{f}" for f in self.network_flags) or "0"
        lines = [f"network = builder.create_network({flags})"]
        lines += [f"registry.load_library('{p}')" for p in self.plugins]
        lines += [str(c) for c in self.calls]
        if self.timing_cache:
            lines.append(f"timing cache: load/save {self.timing_cache}")
        return lines


_CC_ON_TENSORRT = ("--compute-capability applies to TensorRT-RTX only (--runtime rtx): TensorRT builds for the GPU "
                   "it runs on (see --hardware-compat)")


def network_flags(library: Library, strongly_typed: bool = True) -> tuple[str, ...]:
    """NetworkDefinitionCreationFlag members to set. TensorRT 10: STRONGLY_TYPED (precision from the graph).
    TensorRT 11: none (strongly typed is the only mode; the flag is deprecated and ignored). TensorRT-RTX:
    strongly typed is the only mode too, and NVIDIA's samples still set the flag "to avoid a warning"."""
    if not strongly_typed and (library.rtx or library.major > 10):
        raise UsageError(f"{library.label} builds only strongly typed networks; drop --no-strongly-typed")
    return ("STRONGLY_TYPED",) if strongly_typed and (library.rtx or library.major == 10) else ()


def _refuse_inapplicable(settings: BuildSettings, library: Library) -> list[str]:
    """One-line errors for options the product cannot honour; notes for the ones it skips."""
    if not library.rtx:
        if settings.compute_capabilities:
            raise UsageError(_CC_ON_TENSORRT)
        if settings.hardware_compat == "same-compute-capability" and library.numbers < SAME_CC_SINCE:
            raise UsageError(f"--hardware-compat same-compute-capability needs TensorRT >= "
                             f"{'.'.join(map(str, SAME_CC_SINCE))}; this is {library.label} (use ampere-plus)")
        return []
    if settings.version_compatible:
        raise UsageError("--version-compatible does not apply to TensorRT-RTX: it ships no lean runtime to load such "
                         "a plan; its engines are portable by compute capability instead (--compute-capability)")
    if settings.hardware_compat != "none":
        raise UsageError("--hardware-compat does not apply to TensorRT-RTX: choose the target GPUs with "
                         "--compute-capability (default: portable across Ampere, Ada and Blackwell RTX GPUs)")
    if settings.timing_cache:
        return [f"--timing-cache {settings.timing_cache} skipped: timing caches are no-ops in TensorRT-RTX (deprecated "
                "since 1.2) and loading one needs a GPU; kernels are compiled on the GPU and kept in its runtime cache"]
    return []


def build_plan(settings: BuildSettings, profile: Profile, library: Library) -> BuildPlan:
    """Network flags and builder-config calls for `library` (TensorRT 10/11 or TensorRT-RTX 1.x)."""
    notes = _refuse_inapplicable(settings, library)
    flags = network_flags(library, settings.strongly_typed)
    if not settings.strongly_typed:
        notes.append("weakly typed network: TensorRT may choose precisions itself (FP32 unless flags say so)")
    calls: list[BuilderCall] = []
    if settings.workspace_mib:
        calls.append(BuilderCall("config", "set_memory_pool_limit",
                                 (Enum("MemoryPoolType.WORKSPACE"), settings.workspace_mib << 20)))
    calls.append(BuilderCall("config", "builder_optimization_level", (settings.opt_level,), assign=True))
    # DETAILED: the builder logs the engine's layer table (types, precisions, ONNX nodes) for the layer report.
    calls.append(BuilderCall("config", "profiling_verbosity", (Enum("ProfilingVerbosity.DETAILED"),), assign=True))
    level = HARDWARE_COMPAT[settings.hardware_compat][0]
    if level:
        calls.append(BuilderCall("config", "hardware_compatibility_level",
                                 (Enum(f"HardwareCompatibilityLevel.{level}"),), assign=True))
    if settings.version_compatible:
        calls.append(BuilderCall("config", "set_flag", (Enum("BuilderFlag.VERSION_COMPATIBLE"),)))
    if settings.compute_capabilities:
        calls.append(BuilderCall("config", "num_compute_capabilities", (len(settings.compute_capabilities),),
                                 assign=True))
        calls += [BuilderCall("config", "set_compute_capability", (Enum(f"ComputeCapability.{name.upper()}"), i))
                  for i, name in enumerate(settings.compute_capabilities)]
    calls.append(BuilderCall("profile", "set_shape", (profile.input, profile.min, profile.opt, profile.max)))
    calls.append(BuilderCall("config", "add_optimization_profile", (Ref("profile"),)))
    timing_cache = None if library.rtx else settings.timing_cache
    return BuildPlan(library, flags, tuple(calls), profile, timing_cache, tuple(settings.plugins), tuple(notes),
                     tuple(cc_versions(settings.compute_capabilities)))


def _shape(profile_shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in profile_shape)


def trtexec_command(onnx: Path, engine: Path, settings: BuildSettings, profile: Profile, major: int) -> str:
    """The trtexec invocation that builds the same engine (TensorRT `major`'s flag spelling)."""
    q = shlex.quote
    args = ["trtexec", f"--onnx={q(str(onnx))}", f"--saveEngine={q(str(engine))}"]
    if major == 10 and settings.strongly_typed:
        args.append("--stronglyTyped")  # TensorRT 11: the default, and the flag is a deprecated no-op
    if not profile.fixed:
        for flag, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
            args.append(f"--{flag}Shapes={q(profile.input)}:{_shape(shape)}")
    if settings.workspace_mib:
        args.append(f"--memPoolSize=workspace:{settings.workspace_mib}M")
    args.append(f"--builderOptimizationLevel={settings.opt_level}")
    if settings.timing_cache:
        args.append(f"--timingCacheFile={q(str(settings.timing_cache))}")
    if HARDWARE_COMPAT[settings.hardware_compat][1]:
        args.append(f"--hardwareCompatibilityLevel={HARDWARE_COMPAT[settings.hardware_compat][1]}")
    if settings.version_compatible:
        args.append("--versionCompatible")
    args += [f"--staticPlugins={q(str(p))}" for p in settings.plugins]
    return " ".join(args)


def trtexec_for(onnx: Path, major: int = 10, settings: BuildSettings = BuildSettings(),
                output: Path | None = None) -> str:
    """The trtexec command that builds `onnx` with `settings` (no TensorRT, no check). The image size
    comes from the volo-export metadata, else from a static input height."""
    from volo_export.export.metadata import PREFIX, load_graph

    onnx = Path(onnx)
    proto = load_graph(onnx)
    spec = input_spec(proto)
    size = next((int(p.value) for p in proto.metadata_props if p.key == PREFIX + "image_size"), None)
    if size is None and len(spec.dims) == 4 and isinstance(spec.dims[2], int):
        size = spec.dims[2]
    if size is None:
        raise UsageError(f"{onnx.name}: dynamic image size and no volo-export metadata; no profile to print")
    profile = compute_profile(spec, size, settings)
    return trtexec_command(onnx, output or onnx.with_suffix(".engine"), settings, profile, major)
