"""FP32 ONNX -> FP16 or INT8 ONNX, gated: the one function behind `--precision`.

    FP32 graph ─┬─ fp16: overflow scan -> to_fp16 ───────────────────────────┐
                └─ int8: calibration data -> ranges (cache) -> Q/DQ graph ────┤
                                                                              ▼
                           gate vs the reference on held-out images -> Report
                           int8 miss: keep the most sensitive nodes float, re-gate

Nothing is written here; the caller writes the returned model only when
`result.report.passed`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from volo_export.calibration import cache as calib_cache
from volo_export.calibration.data import DEFAULT_CALIB_SIZE, CalibrationData, load_calibration_data
from volo_export.calibration.methods import DEFAULT_METHOD, Range, check_method, compute_ranges
from volo_export.calibration.stats import collect_stats, fixed_batch, sample_batches
from volo_export.errors import UsageError
from volo_export.models.variants import Preprocessing
from volo_export.precision.gate import (DEFAULT_GATE_IMAGES, GateOverrides, Reference, heldout_inputs, memoized,
                                        tolerance_for)
from volo_export.precision.int8 import QuantTarget, find_targets
from volo_export.precision.targets import TARGETS, int8_target
from volo_export.report import FallbackStep, Report
from volo_export.validate import InputSet, run_gate

PRECISIONS = ("fp32", "fp16", "int8")
StageCallback = Callable[[str], None]
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class PrecisionRequest:
    """How to lower the FP32 graph's precision, and how to gate the result."""

    precision: str = "fp32"
    target: str = "tensorrt"
    io_dtype: str = "float32"
    calib_data: str | None = None
    calib_size: int = DEFAULT_CALIB_SIZE
    calib_method: str = DEFAULT_METHOD
    calib_cache: Path | None = None  # None: beside the output, <output stem>.calib.json
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    fallback: bool = True
    gate: GateOverrides = GateOverrides()
    validate_count: int = DEFAULT_GATE_IMAGES

    def __post_init__(self):
        """Every option error surfaces here, before minutes of export work."""
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.target not in TARGETS:
            raise UsageError(f"--target {self.target!r}: choose one of {', '.join(TARGETS)}")
        check_method(self.calib_method)
        if self.calib_size < 1:
            raise UsageError(f"--calib-size must be >= 1, got {self.calib_size}")
        if self.validate_count < 1:
            raise UsageError(f"--validate-count must be >= 1, got {self.validate_count}")
        if self.precision == "int8" and not self.calib_data:
            raise UsageError("--precision int8 needs --calib-data DIR|FILE.npy|FILE.npz (images like the ones the "
                             "model will see); '--calib-data random' only to test the pipeline")
        if self.precision != "int8":
            given = [name for name, on in (("--calib-data", self.calib_data), ("--calib-cache", self.calib_cache))
                     if on]
            if given:
                raise UsageError(f"{given[0]} applies to --precision int8 only")
        if self.precision != "fp16" and self.io_dtype != "float32":
            raise UsageError("--io-dtype float16 applies to --precision fp16 only")
        if self.precision == "fp16" and self.target == "cpu":
            raise UsageError("--target cpu is for int8: ONNX Runtime CPU has no fast float16 kernels, so the "
                             "FP16 graph is TensorRT's (it still runs and is validated on CPU)")
        if self.precision == "fp32" and (self.exclude_nodes or self.exclude_op_types):
            raise UsageError("--exclude-nodes/--exclude-op-types apply to --precision fp16/int8 only")

    def cache_path(self, output: Path) -> Path:
        return self.calib_cache or Path(output).with_suffix(".calib.json")


@dataclass
class PrecisionResult:
    """The converted model (write it only if `report.passed`), its gate report and metadata additions."""

    model: object
    report: Report
    extra: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    random_calibration: bool = False


def convert_precision(fp32, prep: Preprocessing, reference: Reference, request: PrecisionRequest, *,
                      output: Path, model_name: str, validate_images: Path | None = None,
                      on_stage: StageCallback = lambda _: None,
                      on_progress: ProgressCallback = lambda done, total: None) -> PrecisionResult:
    """Convert the FP32 ModelProto to `request.precision` and gate it against `reference`."""
    reference = Reference(memoized(reference.predict), reference.name)
    if request.precision == "fp16":
        return _fp16(fp32, prep, reference, request, output, model_name, validate_images, on_stage)
    return _int8(fp32, prep, reference, request, output, model_name, validate_images, on_stage, on_progress)


def _gate(model, inputs: list[InputSet], reference: Reference, tol, *, artifact: str, model_name: str,
          precision: str, notes: list[str], optimization: str = "all") -> Report:
    from volo_export.runtime import OnnxRuntimeRunner, SessionSettings

    runner = OnnxRuntimeRunner(model.SerializeToString(),
                               SessionSettings(providers=("CPUExecutionProvider",), optimization=optimization))
    return run_gate(reference.predict, runner, inputs, tol, artifact=artifact, model=model_name, precision=precision,
                    notes=notes, reference_name=reference.name)


def _fp16(fp32, prep, reference, request, output, model_name, validate_images, on_stage) -> PrecisionResult:
    from volo_export.calibration.stats import float_tensor_names
    from volo_export.precision.fp16 import Fp16Options, keep_op_types, overflow_nodes, to_fp16
    from volo_export.tolerances import FP16_SAFE_ABS

    on_stage("FP16: scanning activations for float16 overflow")
    inputs, notes = heldout_inputs(prep, calibration=None, validate_images=validate_images,
                                   count=request.validate_count, static_batch=fixed_batch(fp32))
    floats = [n for n, t in float_tensor_names(fp32).items() if t == 1]
    scan = inputs[0].array if fixed_batch(fp32) else inputs[0].array[:2]
    stats = collect_stats(fp32, floats, scan, batch=len(scan), histogram=False)
    overflow = overflow_nodes(fp32, stats, FP16_SAFE_ABS)
    on_stage("FP16: converting the graph (LayerNorm, Softmax, reductions and overflowing nodes stay float32)")
    options = Fp16Options(io_dtype=request.io_dtype, keep_op_types=keep_op_types(request.exclude_op_types),
                          keep_nodes=request.exclude_nodes)
    converted = to_fp16(fp32, options, overflow)
    on_stage("FP16: gating against the reference on ONNX Runtime CPU")
    report = _gate(converted.model, inputs, reference, tolerance_for("fp16", request.gate), artifact=output.name,
                   model_name=model_name, precision="fp16", notes=notes)
    report.kept = converted.kept
    extra = {"io_dtype": request.io_dtype, "kept_float32": json.dumps(converted.kept)}
    return PrecisionResult(converted.model, report, extra, notes)


def _int8(fp32, prep, reference, request, output, model_name, validate_images, on_stage,
          on_progress) -> PrecisionResult:
    target = int8_target(request.target)
    on_stage(f"reading calibration data from {request.calib_data}")
    calib = load_calibration_data(request.calib_data, prep, request.calib_size, on_progress)
    notes = list(calib.notes)
    inputs, gate_notes = heldout_inputs(prep, calibration=calib, validate_images=validate_images,
                                        count=request.validate_count, static_batch=fixed_batch(fp32))
    notes += gate_notes
    everything = find_targets(fp32, target.selection())
    targets = find_targets(fp32, target.selection(request.exclude_nodes, request.exclude_op_types))
    if not targets:
        raise UsageError("nothing left to quantise: every MatMul/Gemm/Conv is excluded")
    # Every target's tensors, so one cache serves --target tensorrt and cpu alike.
    tensors = list(dict.fromkeys(t for name in TARGETS
                                 for t in int8_target(name).calibration_tensors(fp32, everything)))
    ranges, message = calibrate(fp32, tensors, calib, request.calib_method, prep, request.cache_path(output),
                                on_stage, on_progress)
    notes.append(message)
    if target.gate_note:
        notes.append(target.gate_note)
    tol = tolerance_for("int8", request.gate)

    def attempt(chosen: list[QuantTarget]):
        model = target.build(fp32, chosen, ranges)
        return model, _gate(model, inputs, reference, tol, artifact=output.name, model_name=model_name,
                            precision=f"int8 ({request.target})", notes=notes,
                            optimization=target.gate_optimization)

    on_stage(f"INT8: {len(targets)} nodes quantised ({target.describe}); gating on ONNX Runtime CPU")
    model, report = attempt(targets)
    chosen = {t.node for t in targets}
    kept: list[str] = [f"{t.node} ({'excluded' if t.node in request.exclude_nodes else 'op type excluded'})"
                       for t in everything if t.node not in chosen]
    floated = 0
    if not report.passed and request.fallback:
        model, report, fell_back = _fallback(fp32, targets, ranges, calib, attempt, report, on_stage)
        kept += fell_back
        floated = len(fell_back)
    report.kept = kept
    extra = {
        "calibration": json.dumps({**calib.summary(), "method": request.calib_method}, sort_keys=True),
        "quantized_nodes": str(len(targets) - floated),
        "kept_float32": json.dumps(kept),
    }
    return PrecisionResult(model, report, extra, notes, calib.random)


def calibrate(fp32, tensors: list[str], calib: CalibrationData, method: str, prep: Preprocessing, cache_path: Path,
              on_stage: StageCallback, on_progress: ProgressCallback) -> tuple[dict[str, Range], str]:
    """Ranges of `tensors` on the calibration samples: from the cache when it matches, else computed
    (and cached). Returns the ranges and a line saying which happened and why."""
    names = [str(f.relative_to(calib.root)) if calib.root else f.name for f in calib.files]
    key = calib_cache.CacheKey(calib_cache.graph_sha256(fp32), calib.digest, dataclasses.asdict(prep), method,
                               len(calib.array), tuple(zip(names, calib.file_hashes)))
    found = calib_cache.lookup(cache_path, key, tensors)
    if found.hit:
        on_stage(found.reason)
        return found.ranges, found.reason
    on_stage(f"calibrating {len(tensors)} tensors on {len(calib.array)} samples ({method}); {found.reason}")
    stats = collect_stats(fp32, tensors, calib.array, histogram=method != "minmax", on_progress=on_progress)
    ranges = compute_ranges(stats, method)
    calib_cache.save(cache_path, key, ranges)
    return ranges, f"calibrated {len(tensors)} tensors ({method}, {len(calib.array)} samples): {found.reason}; " \
                   f"ranges saved to {cache_path}"


def _fallback(fp32, targets, ranges, calib, attempt, first: Report, on_stage):
    """Keep growing sets of the most sensitive nodes in float until the gate passes (or the cap)."""
    from volo_export.precision.fallback import fallback_schedule, node_sensitivity

    on_stage(f"INT8 missed the gate ({first.failures[0]}); measuring per-layer sensitivity")
    scores = node_sensitivity(fp32, targets, ranges, next(iter(sample_batches(calib.array, 8, fixed_batch(fp32)))))
    order = sorted(scores, key=lambda n: -scores[n])
    steps = [_step([], first)]
    model, report, kept = None, first, []
    for kept_nodes in fallback_schedule(order):
        on_stage(f"INT8 fallback: keeping the {len(kept_nodes)} most sensitive node(s) in float32")
        model, report = attempt([t for t in targets if t.node not in set(kept_nodes)])
        steps.append(_step(kept_nodes, report))
        kept = kept_nodes
        if report.passed:
            break
    report.steps = steps
    if not report.passed:
        report.failures.insert(0, f"INT8 misses the gate even with {len(kept)} of {len(targets)} quantisable "
                                  "nodes kept in float32")
    fell_back = [f"{n} (sensitive, relative error {scores[n]:.3g})" for n in kept]
    return model, report, fell_back


def _step(kept: list[str], report: Report) -> FallbackStep:
    pooled = report.comparisons[-1]
    return FallbackStep(kept=list(kept), min_cosine=min(c.min_cosine for c in report.comparisons),
                        top1_agreement=pooled.top1_agreement, accuracy=pooled.accuracy, passed=report.passed,
                        failure=report.failures[0] if report.failures else None)
