"""ONNX -> TensorRT engine (`X.engine`, the bare serialized plan) + provenance sidecar (`X.engine.json`).

Everything decided without TensorRT happens first (metadata, profile, offline
check, build plan, trtexec command); then `tensorrt` is imported and the plan
from `config.build_plan` is replayed against the real builder. Works on
TensorRT 10 (strongly typed flag) and 11 (strongly typed by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from volo_export.errors import EngineError, InputDataError, TensorRTCheckFailed, UsageError
from volo_export.io import atomic_output, ensure_writable, sha256_file
from volo_export.progress import SILENT, Progress
from volo_export.trt.check import TRT_VERSIONS, check_model, first_violation
from volo_export.trt.config import (BuildPlan, BuildSettings, Enum, Profile, Ref, build_plan, compute_profile,
                                    input_spec, trt_major, trtexec_command)
from volo_export.trt.provenance import (ENGINE_SUFFIXES, EngineProvenance, Environment, calibration_info, now_utc,
                                        sidecar_path, write_sidecar)


@dataclass(frozen=True)
class EngineRequest:
    """What `volo-export engine` was asked for."""

    onnx: Path
    output: Path
    settings: BuildSettings = BuildSettings()
    check: bool = True

    def __post_init__(self):
        if Path(self.output).suffix not in ENGINE_SUFFIXES:
            raise UsageError(f"-o {self.output}: an engine file ends with {' or '.join(ENGINE_SUFFIXES)} "
                             "(runners and the C++ app recognise it by that)")


@dataclass
class EngineResult:
    engine: Path
    sidecar: Path
    provenance: EngineProvenance
    seconds: float
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PreparedBuild:
    """Everything known before TensorRT is imported."""

    request: EngineRequest
    metadata: dict[str, str]
    calibration: dict[str, str]
    profile: Profile
    output_name: str

    def trtexec(self, major: int) -> str:
        return trtexec_command(self.request.onnx, self.request.output, self.request.settings, self.profile, major)


def prepare(request: EngineRequest, trt_target: int = 10) -> PreparedBuild:
    """Read the ONNX's metadata and input, compute the profile, run the offline check. No TensorRT."""
    from volo_export.export.metadata import ArtifactInfo, load_graph

    for lib in request.settings.plugins:
        if not Path(lib).is_file():
            raise InputDataError(f"plugin library not found: {lib}")
    proto = load_graph(request.onnx)
    props = {p.key: p.value for p in proto.metadata_props}
    info = ArtifactInfo.from_props(props, source=str(request.onnx))
    profile = compute_profile(input_spec(proto), info.preprocessing.size, request.settings)
    if request.check:
        result = check_model(request.onnx, trt=min(trt_target, max(TRT_VERSIONS)))
        if not result.passed:
            raise TensorRTCheckFailed(f"{request.onnx.name} breaks TensorRT's ONNX parser rules "
                                      f"({len(result.errors)} error(s); first: {first_violation(result)}); "
                                      f"see volo-export check {request.onnx}")
        if result.plugins and not request.settings.plugins:
            raise TensorRTCheckFailed(f"{request.onnx.name} needs plugin(s) {', '.join(result.plugins)}: "
                                      "pass --plugins LIB")
    outputs = [o.name for o in proto.graph.output]
    return PreparedBuild(request, dict(sorted(info.to_props().items())), calibration_info(info), profile,
                         outputs[0] if outputs else "logits")


def build_engine(request: EngineRequest, progress: Progress = SILENT,
                 environment: Callable[[], Environment] | None = None) -> EngineResult:
    """Build, then write the plan and its sidecar atomically (both or neither). `environment`
    describes the build machine for the sidecar (default: probe this one)."""
    from volo_export.trt.environment import running_environment, tensorrt_version
    from volo_export.trt.infer import import_tensorrt

    ensure_writable(request.output)
    progress.stage(f"reading {request.onnx.name} and checking it against TensorRT's ONNX parser rules")
    installed = tensorrt_version()
    prepared = prepare(request, trt_major(installed) if installed else 10)
    try:
        trt = import_tensorrt()
    except EngineError as e:
        raise EngineError(f"{e}; to build elsewhere: {prepared.trtexec(10)}") from None
    env = (environment or running_environment)()
    plan = build_plan(request.settings, prepared.profile, trt_major(trt.__version__))
    t0 = time.perf_counter()
    serialized, cache, warnings = _build(trt, request.onnx, plan, progress)
    seconds = time.perf_counter() - t0
    progress.stage(f"writing {request.output.name} and {sidecar_path(request.output).name}")
    provenance = write_engine(prepared, plan, serialized, env)
    if plan.timing_cache and cache is not None:
        with atomic_output(plan.timing_cache) as tmp:
            tmp.write_bytes(cache)
    return EngineResult(request.output, sidecar_path(request.output), provenance, seconds, warnings + list(plan.notes))


def write_engine(prepared: PreparedBuild, plan: BuildPlan, serialized: bytes, env: Environment) -> EngineProvenance:
    """Write the bare plan to the request's output and its sidecar beside it, atomically (both or neither)."""
    request = prepared.request
    with atomic_output(request.output) as tmp:
        tmp.write_bytes(serialized)  # nothing prepended: trtexec and C++ load the file as is
        provenance = EngineProvenance(
            engine_file=request.output.name, engine_sha256=sha256_file(tmp), engine_bytes=len(serialized),
            onnx_file=request.onnx.name, onnx_sha256=sha256_file(request.onnx), environment=env,
            build={**request.settings.to_dict(), "trt_major": plan.trt_major,
                   "network_flags": list(plan.network_flags), "builder_calls": [str(c) for c in plan.calls]},
            profile=prepared.profile, trtexec=prepared.trtexec(plan.trt_major), metadata=prepared.metadata,
            input_name=prepared.profile.input, output_name=prepared.output_name,
            calibration=prepared.calibration, volo_export_version=_own_version(), created_utc=now_utc())
        write_sidecar(provenance, sidecar_path(tmp))
    return provenance


def _own_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("volo-export")
    except PackageNotFoundError:
        return "unknown"


def _make_logger(trt):
    class CollectingLogger(trt.ILogger):
        """Keeps errors (for a one-line message) and warnings (shown after the build)."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity, msg):
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(str(msg))
            elif severity == trt.ILogger.WARNING:
                self.warnings.append(str(msg))

    return CollectingLogger()


def _make_monitor(trt, progress: Progress):
    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return progress.phase_step(phase_name, step)

        def phase_finish(self, phase_name):
            progress.phase_finish(phase_name)

    return Monitor()


def resolve_arg(arg, trt, objects: dict):
    """A plan argument -> the real value: Enum -> trt enum member, Ref -> builder object."""
    if isinstance(arg, Enum):
        value = trt
        for part in arg.path.split("."):
            value = getattr(value, part)
        return value
    if isinstance(arg, Ref):
        return objects[arg.name]
    return arg


def apply_calls(plan: BuildPlan, trt, objects: dict) -> None:
    """Replay the plan's builder calls on the real objects."""
    for call in plan.calls:
        target = objects[call.target]
        args = [resolve_arg(a, trt, objects) for a in call.args]
        if call.assign:
            setattr(target, call.name, args[0])
        else:
            getattr(target, call.name)(*args)


def _parser_error(parser, logger) -> str:
    if parser.num_errors:
        err = parser.get_error(0)
        node = err.node_name() if hasattr(err, "node_name") else ""
        return f"node {node}: {err.desc()}" if node else err.desc()
    return logger.errors[0] if logger.errors else "unknown parser error"


def _build(trt, onnx_path: Path, plan: BuildPlan, progress: Progress) -> tuple[bytes, bytes | None, list[str]]:
    """Returns (serialized plan, serialized timing cache or None, builder warnings)."""
    from volo_export.trt.infer import load_plugins

    logger = _make_logger(trt)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    load_plugins(builder.get_plugin_registry(), plan.plugins)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    progress.stage(f"parsing {onnx_path.name} with TensorRT {trt.__version__}'s ONNX parser")
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {_parser_error(parser, logger)}")
    config = builder.create_builder_config()
    objects = {"config": config, "profile": builder.create_optimization_profile()}
    apply_calls(plan, trt, objects)
    if plan.timing_cache:
        data = plan.timing_cache.read_bytes() if plan.timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(data), False)
    if hasattr(config, "progress_monitor"):
        config.progress_monitor = _make_monitor(trt, progress)
    progress.stage("building the engine (TensorRT times kernels: minutes for a full-size VOLO)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT could not build {onnx_path.name}: "
                          f"{logger.errors[0] if logger.errors else 'build cancelled or failed'}")
    cache = bytes(memoryview(config.get_timing_cache().serialize())) if plan.timing_cache else None
    return bytes(memoryview(serialized)), cache, logger.warnings
