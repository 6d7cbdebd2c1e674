"""ONNX -> TensorRT engine (`X.engine`, the bare serialized plan) + provenance sidecar (`X.engine.json`).

Everything decided without TensorRT happens first (metadata, profile, offline
check, build plan, trtexec command); then the product `--runtime` names
(`products.find_library`: TensorRT, else TensorRT-RTX) is imported, its version
gated, and the plan from `config.build_plan` replayed against the real builder.
Works on TensorRT 10 (strongly typed flag), 11 (strongly typed by default) and
TensorRT-RTX 1.x, which builds ahead of time on a machine without a GPU. The
builder's DETAILED layer table becomes the layer report (`trt.layers`) that the
command prints and the sidecar keeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from volo_export.errors import EngineError, InputDataError, TensorRTCheckFailed, UsageError, first_line
from volo_export.interrupt import PendingSignal, deferred_signals
from volo_export.io import atomic_output, distinct_outputs, ensure_writable, sha256_file
from volo_export.progress import SILENT, Progress
from volo_export.names import Precision
from volo_export.trt.check import DEFAULT_TRT, TRT_VERSIONS, check_model, first_violation, fp8_nodes
from volo_export.trt.config import (BuildPlan, BuildSettings, Enum, Profile, Ref, build_plan, compute_profile,
                                    input_spec, trtexec_command)
from volo_export.trt.layers import (LayerReport, WeightedNode, attention_matmuls, layer_report, parse_layer_table,
                                   weighted_nodes)
from volo_export.trt.parser import RealVerdict, make_logger, parse_onnx
from volo_export.trt.products import (Library, choice_note, find_library, fp8_gpu_problem, missing,
                                      refuse_unfit_targets, rtx_targets)
from volo_export.trt.provenance import (ENGINE_SUFFIXES, BuildRecord, EngineProvenance, Environment, ProductRecord,
                                        calibration_info, now_utc, sidecar_path, write_sidecar)
from volo_export.trt.rtx import header_mismatch, read_plan_header


@dataclass(frozen=True)
class EngineRequest:
    """What `volo-export engine` was asked for."""

    onnx: Path
    output: Path
    settings: BuildSettings = BuildSettings()
    check: bool = True
    model_name: str | None = None  # for an ONNX without volo-export metadata: the variant giving preprocessing, labels

    def __post_init__(self):
        if Path(self.output).suffix not in ENGINE_SUFFIXES:
            raise UsageError(f"-o {self.output}: an engine file ends with {' or '.join(ENGINE_SUFFIXES)} "
                             "(runners and the C++ app recognise it by that)")


@dataclass
class EngineResult:
    """What was written. `notes`: what the build chose or skipped (product, targets); `warnings`: the
    builder's; `layers`: the layer report (None when the builder gave no layer table)."""

    engine: Path
    sidecar: Path
    provenance: EngineProvenance
    seconds: float
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    layers: LayerReport | None = None


@dataclass(frozen=True)
class PreparedBuild:
    """Everything known before TensorRT is imported. `weighted`, `op_types` and `attention` describe the
    graph's nodes for the layer report; `fp8`: the graph builds FP8 layers (compute capability >= 8.9)."""

    request: EngineRequest
    metadata: dict[str, str]
    calibration: dict[str, str]
    profile: Profile
    output_name: str
    weighted: dict[str, WeightedNode] = field(default_factory=dict)
    op_types: dict[str, str] = field(default_factory=dict)
    attention: tuple[str, ...] = ()
    fp8: bool = False

    def trtexec(self, major: int) -> str:
        return trtexec_command(self.request.onnx, self.request.output, self.request.settings, self.profile, major)


def prepare(request: EngineRequest, trt_target: int = DEFAULT_TRT) -> PreparedBuild:
    """Run the offline check (rules of TensorRT `trt_target`) first, so a graph TensorRT rejects says why
    (exit 4) even when it is not volo-export's; then read the ONNX's metadata (or, for a foreign ONNX, the
    variant `request.model_name`) and input, and compute the profile. No TensorRT."""
    from volo_export.export.metadata import ArtifactInfo, MissingMetadata, info_or_variant, load_graph

    for lib in request.settings.plugins:
        if not Path(lib).is_file():
            raise InputDataError(f"plugin library not found: {lib}")
    proto = load_graph(request.onnx)
    if request.check:
        result = check_model(request.onnx, trt=min(trt_target, max(TRT_VERSIONS)))
        if not result.passed:
            raise TensorRTCheckFailed(f"{request.onnx.name} breaks TensorRT's ONNX parser rules "
                                      f"({len(result.errors)} error(s); first: {first_violation(result)}); "
                                      f"see volo-export check {request.onnx}")
        if result.plugins and not request.settings.plugins:
            raise TensorRTCheckFailed(f"{request.onnx.name} needs plugin(s) {', '.join(result.plugins)}: "
                                      "pass --plugins LIB")
    props = {p.key: p.value for p in proto.metadata_props}
    spec = input_spec(proto)
    try:
        info = info_or_variant(lambda: ArtifactInfo.from_props(props, source=str(request.onnx)), request.model_name,
                               str(request.onnx), spec.dims)
    except MissingMetadata as e:
        raise InputDataError(f"{e}; for a VOLO ONNX from elsewhere, name its variant with --model-name NAME "
                             "(preprocessing and labels)") from None
    fp8 = info.precision == Precision.FP8 or bool(fp8_nodes(proto))  # a foreign ONNX says it by its Q/DQ only
    refuse_unfit_targets(request.settings.compute_capabilities, info.precision, fp8)
    profile = compute_profile(spec, info.preprocessing.size, request.settings)
    outputs = [o.name for o in proto.graph.output]
    weighted = weighted_nodes(proto)
    return PreparedBuild(request, dict(sorted(info.to_props().items())), calibration_info(info), profile,
                         outputs[0] if outputs else "logits", weighted, {n.name: n.op_type for n in proto.graph.node},
                         tuple(attention_matmuls(proto, weighted)), fp8)


def check_rules_for(library: Library | None) -> int:
    """The offline rules to check against before building with `library`: its TensorRT major (10, 11); the
    stricter TensorRT 10 rules for TensorRT-RTX or when nothing is installed (its own parser runs next)."""
    if library is None or library.rtx or library.major not in TRT_VERSIONS:
        return DEFAULT_TRT
    return library.major


def build_engine(request: EngineRequest, progress: Progress = SILENT,
                 environment: Callable[[], Environment] | None = None, library: Library | None = None) -> EngineResult:
    """Build, then write the plan and its sidecar atomically (both or neither). `environment`
    describes the build machine for the sidecar (default: probe this one); `library` is the TensorRT
    product to build with (default: the one `settings.runtime` finds installed)."""
    from volo_export.trt.environment import running_environment

    ensure_writable(request.output)
    settings = request.settings
    distinct_outputs({"MODEL": request.onnx, "--plugins": settings.plugins},
                     {"--output": request.output, "sidecar": sidecar_path(request.output),
                      "--timing-cache": settings.timing_cache})
    progress.stage(f"reading {request.onnx.name} and checking it against TensorRT's ONNX parser rules")
    library = library or find_library(settings.runtime)
    prepared = prepare(request, check_rules_for(library))  # a graph TensorRT rejects exits 4 before any version gate
    if library is None:
        raise EngineError(f"{missing(settings.runtime)}; to build elsewhere: {prepared.trtexec(DEFAULT_TRT)}")
    library.require_supported()
    # an FP8 graph for TensorRT-RTX without --compute-capability: the FP8 targets, not the portable default
    targets, fp8_note = rtx_targets(settings.compute_capabilities, prepared.fp8) if library.rtx else ((), None)
    if fp8_note:
        settings = replace(settings, compute_capabilities=targets)
        prepared = replace(prepared, request=replace(request, settings=settings))
    plan = build_plan(settings, prepared.profile, library)
    notes = [n for n in (choice_note(settings.runtime, library), fp8_note) if n]
    if library.rtx:
        notes.append(f"targets: {plan.targets}; kernels are compiled just in time on the GPU that runs it")
    notes += plan.notes
    env = (environment or running_environment)()
    if prepared.fp8 and not library.rtx and (problem := fp8_gpu_problem(
            env.compute_capability, env.gpu_name, f"{request.onnx.name} builds FP8 layers",
            f"{library.product.label} builds for the GPU it runs on; build on an FP8 GPU, or export an int8 or fp16 "
            "graph for this one")):
        raise UsageError(problem)
    t0 = time.perf_counter()
    built = build_serialized(library, request.onnx, plan, progress)
    seconds = time.perf_counter() - t0
    layers = (layer_report(parse_layer_table(built.layer_table), prepared.weighted, prepared.op_types,
                           prepared.attention) if built.layer_table else None)
    if layers is None:
        notes.append(f"{library.label} logged no layer table: no layer report")
    if library.rtx and (mismatch := header_mismatch(read_plan_header(built.plan), list(plan.compute_capabilities))):
        built.warnings.append(mismatch)
    progress.stage(f"writing {request.output.name} and {sidecar_path(request.output).name}")
    provenance = write_engine(prepared, plan, built.plan, env, layers)
    if plan.timing_cache and built.timing_cache is not None:
        with atomic_output(plan.timing_cache) as tmp:
            tmp.write_bytes(built.timing_cache)
    return EngineResult(request.output, sidecar_path(request.output), provenance, seconds, built.warnings, notes,
                        layers)


def write_engine(prepared: PreparedBuild, plan: BuildPlan, serialized: bytes, env: Environment,
                 layers: LayerReport | None = None) -> EngineProvenance:
    """Write the bare plan to the request's output and its sidecar beside it, atomically (both or neither)."""
    request = prepared.request
    library = plan.library
    header = read_plan_header(serialized[:64]) if library.rtx else None
    runtime = ProductRecord(library.product.key, library.version, tuple(plan.compute_capabilities), plan.targets,
                            header.to_dict() if header else None)
    with atomic_output(request.output) as tmp:
        tmp.write_bytes(serialized)  # nothing prepended: trtexec and C++ load the file as is
        provenance = EngineProvenance(
            engine_file=request.output.name, engine_sha256=sha256_file(tmp), engine_bytes=len(serialized),
            onnx_file=request.onnx.name, onnx_sha256=sha256_file(request.onnx), environment=env,
            build=BuildRecord.of(request.settings, plan.trt_major, plan.network_flags, plan.calls),
            profile=prepared.profile, trtexec="" if library.rtx else prepared.trtexec(plan.trt_major),
            metadata=prepared.metadata, input_name=prepared.profile.input, output_name=prepared.output_name,
            calibration=prepared.calibration, volo_export_version=_own_version(), created_utc=now_utc(),
            runtime=runtime, layers=layers.to_dict() if layers else None)
        write_sidecar(provenance, sidecar_path(tmp))
    return provenance


def _own_version() -> str:
    from volo_export.export.metadata import library_versions

    return library_versions(("volo-export",))["volo-export"] or "unknown"


def _make_monitor(trt, progress: Progress, interrupt: PendingSignal):
    """A trt.IProgressMonitor that shows the build's phases and cancels it once a signal is pending."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return progress.phase_step(phase_name, step) and not interrupt.pending

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
    """Replay the plan's builder calls on the real objects. A member this TensorRT lacks, or a call that
    answers False (e.g. set_compute_capability), is a one-line EngineError."""
    for call in plan.calls:
        target = objects[call.target]
        try:
            args = [resolve_arg(a, trt, objects) for a in call.args]
            if call.assign:
                setattr(target, call.name, args[0])
                continue
            answer = getattr(target, call.name)(*args)
        except AttributeError:
            raise EngineError(f"{plan.library.label} has no {call}: this option needs another TensorRT version") \
                from None
        if answer is False:
            raise EngineError(f"{plan.library.label} refused {call}")


@dataclass
class BuiltPlan:
    """What the builder returned: the serialized plan, the timing cache (when the plan keeps one), its
    warnings and its DETAILED layer table."""

    plan: bytes
    timing_cache: bytes | None
    warnings: list[str]
    layer_table: str | None  # the builder's "Layers:" message


def build_serialized(library: Library, onnx_path: Path, plan: BuildPlan, progress: Progress = SILENT) -> BuiltPlan:
    """Parse `onnx_path` (every parser error: TensorRTCheckFailed, carrying a RealVerdict) and build it with
    the plan's calls replayed (a failed build: EngineError). The part of `build_engine` that needs no
    volo-export metadata, so any ONNX with any plan builds here (the parser-agreement tests use it).
    Ctrl-C and SIGTERM stop it (`interrupt.deferred_signals`: TensorRT would swallow them in its callbacks)."""
    with deferred_signals() as interrupt:
        return _build_serialized(library, onnx_path, plan, progress, interrupt)


def _build_serialized(library: Library, onnx_path: Path, plan: BuildPlan, progress: Progress,
                      interrupt: PendingSignal) -> BuiltPlan:
    from volo_export.trt.infer import load_plugins

    trt = library.module
    logger = make_logger(trt)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    load_plugins(builder.get_plugin_registry(), plan.plugins)
    progress.stage(f"parsing {onnx_path.name} with {library.label}'s ONNX parser")
    network, issues = parse_onnx(trt, builder, logger, onnx_path, plan.network_flags)
    if interrupt.pending:
        return None  # deferred_signals delivers the signal
    if issues:
        verdict = RealVerdict(onnx_path.name, library.label, False, issues)
        raise TensorRTCheckFailed(f"{verdict.summary()}; see volo-export check {onnx_path}", verdict)
    config = builder.create_builder_config()
    objects = {"config": config, "profile": builder.create_optimization_profile()}
    apply_calls(plan, trt, objects)
    if plan.timing_cache:
        data = plan.timing_cache.read_bytes() if plan.timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(data), False)
    if hasattr(config, "progress_monitor"):
        config.progress_monitor = _make_monitor(trt, progress, interrupt)
    progress.stage(f"building the engine ahead of time for {plan.targets} (no GPU needed)" if library.rtx else
                   "building the engine (TensorRT times kernels: minutes for a full-size VOLO)")
    serialized = builder.build_serialized_network(network, config)
    if interrupt.pending:
        return None  # deferred_signals delivers the signal: nothing is written
    if serialized is None:
        raise EngineError(f"{library.label} could not build {onnx_path.name}: "
                          f"{first_line(logger.errors[0]) if logger.errors else 'build cancelled or failed'}")
    cache = bytes(memoryview(config.get_timing_cache().serialize())) if plan.timing_cache else None
    return BuiltPlan(bytes(memoryview(serialized)), cache, logger.warnings, logger.layer_table)
