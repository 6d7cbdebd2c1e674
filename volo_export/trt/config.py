"""What an engine build will do, decided without TensorRT.

`BuildSettings` (the user's options) + the ONNX input + the model's image size
-> `Profile` (min/opt/max input shapes) -> `BuildPlan`: the network creation
flags and every builder-config call as data (`BuilderCall`), which
`volo_export.trt.build` replays against the real `tensorrt` module and tests
inspect here. `trtexec_command` is the same build for users who run trtexec.

TensorRT 10 vs 11: precision lives in the ONNX graph (FP16 conversion, Q/DQ),
so the network is strongly typed on both: TensorRT 10 needs the
`STRONGLY_TYPED` creation flag (and trtexec `--stronglyTyped`); TensorRT 11
only builds strongly typed networks and dropped the flag's meaning, along
with the FP16/INT8 builder flags and trtexec `--fp16/--int8`, which this
project never uses.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volo_export.errors import UsageError

# Batch profile defaults: 1 (latency), 8 (TensorRT tunes kernels for opt), 32 (throughput).
DEFAULT_MIN_BATCH = 1
DEFAULT_OPT_BATCH = 8
DEFAULT_MAX_BATCH = 32
DEFAULT_OPT_LEVEL = 3  # TensorRT's own default; 0..5
MAX_OPT_LEVEL = 5
SUPPORTED_TRT_MAJORS = (10, 11)

# --hardware-compat value -> (TensorRT enum member, trtexec spelling)
HARDWARE_COMPAT = {
    "none": (None, None),
    "ampere-plus": ("AMPERE_PLUS", "ampere+"),
    "same-compute-capability": ("SAME_COMPUTE_CAPABILITY", "sameComputeCapability"),
}


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["timing_cache"] = str(self.timing_cache) if self.timing_cache else None
        d["plugins"] = [str(p) for p in self.plugins]
        return d


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

    def to_dict(self) -> dict:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        return cls(d["input"], tuple(d["min"]), tuple(d["opt"]), tuple(d["max"]))


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


def trt_major(version: str) -> int:
    """'10.13.0.35' -> 10; refuses versions this project does not build for."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise UsageError(f"cannot read TensorRT version {version!r}") from None
    if major < SUPPORTED_TRT_MAJORS[0]:
        raise UsageError(f"TensorRT {version} is too old: volo-export builds strongly typed engines with "
                         f"TensorRT {' or '.join(map(str, SUPPORTED_TRT_MAJORS))}")
    return major


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
    """Everything the builder is told: network flags, config calls in order, cache and plugins."""

    trt_major: int
    network_flags: tuple[str, ...]
    calls: tuple[BuilderCall, ...]
    profile: Profile
    timing_cache: Path | None = None
    plugins: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> list[str]:
        flags = " | ".join(f"1 << NetworkDefinitionCreationFlag.{f}" for f in self.network_flags) or "0"
        lines = [f"network = builder.create_network({flags})"]
        lines += [f"registry.load_library('{p}')" for p in self.plugins]
        lines += [str(c) for c in self.calls]
        if self.timing_cache:
            lines.append(f"timing cache: load/save {self.timing_cache}")
        return lines


def build_plan(settings: BuildSettings, profile: Profile, major: int) -> BuildPlan:
    """Network flags and builder-config calls for TensorRT `major` (10 or 11)."""
    if major < SUPPORTED_TRT_MAJORS[0]:
        raise UsageError(f"TensorRT {major} is not supported; use {' or '.join(map(str, SUPPORTED_TRT_MAJORS))}")
    notes = []
    if major == 10:
        flags = ("STRONGLY_TYPED",) if settings.strongly_typed else ()
        if not settings.strongly_typed:
            notes.append("weakly typed network: TensorRT may choose precisions itself (FP32 unless flags say so)")
    else:
        if not settings.strongly_typed:
            raise UsageError(f"TensorRT {major} builds only strongly typed networks; drop --weakly-typed")
        flags = ()  # strongly typed is the only mode; the flag is deprecated and ignored
    calls: list[BuilderCall] = []
    if settings.workspace_mib:
        calls.append(BuilderCall("config", "set_memory_pool_limit",
                                 (Enum("MemoryPoolType.WORKSPACE"), settings.workspace_mib << 20)))
    calls.append(BuilderCall("config", "builder_optimization_level", (settings.opt_level,), assign=True))
    level = HARDWARE_COMPAT[settings.hardware_compat][0]
    if level:
        calls.append(BuilderCall("config", "hardware_compatibility_level",
                                 (Enum(f"HardwareCompatibilityLevel.{level}"),), assign=True))
    if settings.version_compatible:
        calls.append(BuilderCall("config", "set_flag", (Enum("BuilderFlag.VERSION_COMPATIBLE"),)))
    calls.append(BuilderCall("profile", "set_shape", (profile.input, profile.min, profile.opt, profile.max)))
    calls.append(BuilderCall("config", "add_optimization_profile", (Ref("profile"),)))
    return BuildPlan(major, flags, tuple(calls), profile, settings.timing_cache, tuple(settings.plugins),
                     tuple(notes))


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
