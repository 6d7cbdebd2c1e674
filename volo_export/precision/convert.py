"""FP32 ONNX -> FP16 or INT8 ONNX, gated: the one function behind `--precision` and `quantize`.

    FP32 graph -> target.prepare (FP16: overflow scan; INT8: calibration -> ranges, cached)
               -> target.build -> gate vs the reference on held-out images -> Report
               -> miss: keep the most sensitive nodes float, build and gate again (targets with a fallback)

`lower_precision` adds the metadata (precision, target, calibration, FP32 graph hash).
Nothing is written here and nothing raises on a miss: the caller writes the model
when `report.passed` (see `pipeline`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from volo_export.calibration.data import DEFAULT_CALIB_SIZE, CalibrationData, load_calibration_data
from volo_export.calibration.methods import DEFAULT_METHOD, check_method
from volo_export.errors import UsageError
from volo_export.export.metadata import ArtifactInfo, graph_sha256
from volo_export.export.to_onnx import finalize
from volo_export.models.variants import Preprocessing
from volo_export.gate import InputSet, Reference, Report, gate_artifact, gate_inputs, plan_for
from volo_export.gate.inputs import DEFAULT_HELDOUT_IMAGES
from volo_export.gate.report import FallbackStep
from volo_export.precision.fallback import fallback_schedule
from volo_export.names import ANY_TARGET, CalibMethod, HighPrecision, IoDtype, Precision, Target
from volo_export.precision.form import FormOptions, Job, PrecisionForm
from volo_export.precision.forms import (form_for, forms, lowered_precisions, precisions_where,
                                         precisions_with_io_dtype, precisions_with_targets)
from volo_export.progress import SILENT, Progress
from volo_export.tolerances import GateOverrides, tolerance_for


if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class PrecisionRequest:
    """How to lower the FP32 graph's precision, and how to gate the result. Names may be given as plain
    strings (`precision="int8"`); they are stored as the vocabulary's members."""

    precision: Precision = Precision.FP32  # fp32: nothing to lower (the export's own gate still takes `gate`)
    target: Target | None = None  # None: the precision's default form
    io_dtype: IoDtype = IoDtype.FLOAT32
    high_precision: HighPrecision | None = None  # None: the form's default (TensorRT INT8/FP8: fp16)
    calib_data: str | None = None
    calib_size: int = DEFAULT_CALIB_SIZE
    calib_method: CalibMethod = DEFAULT_METHOD
    calib_cache: Path | None = None  # None: beside the output, <output stem>.calib.json
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    fallback: bool = True
    gate: GateOverrides = GateOverrides()
    validate_count: int = DEFAULT_HELDOUT_IMAGES

    def __post_init__(self):
        """Every option error surfaces here, before minutes of export work: the form says what it takes."""
        check_method(self.calib_method)
        for name, kind in (("precision", Precision), ("target", Target), ("io_dtype", IoDtype),
                           ("calib_method", CalibMethod), ("high_precision", HighPrecision)):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _member(kind, getattr(self, name), name))
        form = form_for(self.precision, self.target) if self.precision != Precision.FP32 else None
        if form is not None:
            form.require()  # this machine can build and gate it
        elif self.target not in (None, Target.TENSORRT):
            raise UsageError(f"--target {self.target} applies to --precision "
                             f"{'/'.join(precisions_with_targets())} only (the FP32 graph runs everywhere)")
        if self.calib_size < 1:
            raise UsageError(f"--calib-size must be >= 1, got {self.calib_size}")
        if self.validate_count < 1:
            raise UsageError(f"--validate-count must be >= 1, got {self.validate_count}")
        calibrated = "/".join(precisions_where("needs_calibration"))
        if form is not None and form.needs_calibration and not self.calib_data:
            raise UsageError(f"--precision {self.precision} needs --calib-data DIR|FILE.npy|FILE.npz (images like "
                             "the ones the model will see); '--calib-data random' only to test the pipeline")
        if form is None or not form.needs_calibration:
            given = [name for name, on in (("--calib-data", self.calib_data), ("--calib-cache", self.calib_cache))
                     if on]
            if given:
                raise UsageError(f"{given[0]} applies to --precision {calibrated} only")
        if self.io_dtype not in (form.io_dtypes if form else (IoDtype.FLOAT32,)):
            raise UsageError(f"--io-dtype {self.io_dtype} applies to --precision "
                             f"{'/'.join(precisions_with_io_dtype(self.io_dtype))} only")
        if self.high_precision is not None and self.high_precision not in (form.high_precisions if form else ()):
            takes = [f"--precision {f.precision} --target {f.target}" for f in forms() if f.high_precisions]
            raise UsageError(f"--high-precision applies to {' and '.join(takes)} only (the other forms have no "
                             "choice of what the unquantised part computes in)")
        if not (form and form.accepts_exclusions) and (self.exclude_nodes or self.exclude_op_types):
            raise UsageError("--exclude-nodes/--exclude-op-types apply to --precision "
                             f"{'/'.join(precisions_where('accepts_exclusions'))} only")

    @property
    def lowers(self) -> bool:
        """True where a form lowers the precision: there is a graph to convert (or, bf16, to stamp and gate)."""
        return self.precision in lowered_precisions()

    @property
    def form(self) -> PrecisionForm:
        """The form that lowers this request (a UsageError for fp32, which has none)."""
        return form_for(self.precision, self.target)

    def cache_path(self, output: Path) -> Path:
        return self.calib_cache or Path(output).with_suffix(".calib.json")

    def form_options(self, output: Path) -> FormOptions:
        """What the form's `prepare` reads of this request, for the artifact written at `output`."""
        return FormOptions(io_dtype=self.io_dtype, exclude_nodes=self.exclude_nodes,
                           exclude_op_types=self.exclude_op_types, calib_method=self.calib_method,
                           calib_cache=self.cache_path(output), high_precision=self.high_precision)

    def named_inputs(self) -> dict[str, Path | None]:
        """The files this request reads, by option (for `io.distinct_outputs`)."""
        data = self.calib_data
        return {"--calib-data": Path(data) if data not in (None, "random") else None}

    def named_outputs(self, output: Path) -> dict[str, Path | None]:
        """The files this request writes beside `output`, by option: the calibration cache when it calibrates."""
        return {"--calib-cache": self.cache_path(output) if self.calib_data else None}


def _member(kind, value, name: str):
    """`value` as a member of the vocabulary enum `kind` (a plain string accepted), or a one-line error."""
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"--{name.replace('_', '-')} {value!r}: choose one of {', '.join(kind)}") from None


@dataclass
class LoweringData:
    """What a lowering reads from the user's files, loaded before any expensive work so that bad input
    fails fast: calibration samples (INT8), the gate's held-out inputs, notes about both."""

    calibration: CalibrationData | None
    inputs: list[InputSet]
    notes: list[str]


def lowering_data(prep: Preprocessing, request: PrecisionRequest, validate_images: Path | None = None,
                  progress: Progress = SILENT) -> LoweringData:
    """Read and check the calibration data and the gate images of `request` (one-line errors)."""
    calib = None
    if request.form.needs_calibration:
        progress.stage(f"reading calibration data from {request.calib_data}")
        calib = load_calibration_data(request.calib_data, prep, request.calib_size, progress)
    inputs, notes = gate_inputs(prep, plan_for(request.precision, validate_images, request.validate_count), calib)
    return LoweringData(calib, inputs, (calib.notes if calib else []) + notes)


@dataclass
class Lowered:
    """The lowered model with its metadata (write it only if `report.passed`) and its gate's report."""

    model: onnx.ModelProto
    info: ArtifactInfo
    report: Report
    notes: list[str] = field(default_factory=list)


def lower_precision(fp32, info: ArtifactInfo, reference: Reference, request: PrecisionRequest, output: Path,
                    data: LoweringData, progress: Progress = SILENT) -> Lowered:
    """FP32 ModelProto (with metadata `info`) -> gated FP16/INT8 ModelProto with its metadata, from the
    user's files already read (`lowering_data`). Not written."""
    target = request.form
    calib, inputs = data.calibration, data.inputs
    fp32_sha256 = graph_sha256(fp32)
    job = Job(request.form_options(output), info.preprocessing, inputs, calib, progress, fp32_sha256)
    prepared = target.prepare(fp32, job)
    notes = data.notes + prepared.notes
    label = f"{request.precision} ({target.stamp})" if target.stamp != ANY_TARGET else str(request.precision)

    def lowered_info(built, more: dict | None = None) -> ArtifactInfo:
        """The metadata of `built` (the gate's runners read its precision before it is written)."""
        extra = {**info.extra, **prepared.extra, **built.extra, **(more or {}), "fp32_graph_sha256": fp32_sha256}
        if calib is not None and calib.random:
            extra["calibration_random"] = "true"
        return dataclasses.replace(info, precision=str(request.precision), target=str(target.stamp), extra=extra)

    def attempt(keep: list[str]):
        built = target.build(fp32, prepared, keep)
        runner = target.runner(built.model, lowered_info(built))
        report = gate_artifact(runner, reference, inputs, tolerance_for(target.tolerance, runner.runtime, request.gate),
                               artifact=Path(output).name, model=info.model, precision=label, notes=notes)
        return built, report

    progress.stage(f"{request.precision.upper()}: {target.describe}; gating against {reference.name} "
                   f"on {target.gate_runtime}")
    built, report = attempt([])
    fell_back: list[str] = []
    if not report.passed and request.fallback and target.has_fallback:
        built, report, fell_back = _fallback(fp32, target, prepared, attempt, report, progress)
    report.kept = built.kept + fell_back
    final = lowered_info(built, {"kept_float32": json.dumps(report.kept)})
    return Lowered(finalize(built.model, final), final, report, notes)


def _fallback(fp32, target: PrecisionForm, prepared, attempt, first: Report, progress: Progress):
    """Keep growing sets of the most sensitive nodes in float until the gate passes (or the cap).
    Returns (the last Built, its report, lines naming the nodes kept float by the fallback)."""
    progress.stage(f"{target.precision.upper()} missed the gate ({first.failures[0]}); measuring per-layer sensitivity")
    scores = target.sensitivity(fp32, prepared)
    order = sorted(scores, key=lambda n: -scores[n])
    steps = [_step([], first)]
    report, kept = first, []
    for kept_nodes in fallback_schedule(order):
        progress.stage(f"{target.precision.upper()} fallback: keeping the {len(kept_nodes)} most sensitive node(s) "
                       f"in {prepared.extra.get('high_precision', HighPrecision.FP32)}")
        built, report = attempt(kept_nodes)
        steps.append(_step(kept_nodes, report))
        kept = kept_nodes
        if report.passed:
            break
    report.steps = steps
    if not report.passed:
        report.failures.insert(0, f"{target.precision.upper()} misses the gate even with {len(kept)} of {len(order)} "
                                  "quantisable nodes left unquantised")
    return built, report, [f"{n} (sensitive, relative error {scores[n]:.3g})" for n in kept]


def _step(kept: list[str], report: Report) -> FallbackStep:
    pooled = report.comparisons[-1]
    return FallbackStep(kept=list(kept), min_cosine=min(c.min_cosine for c in report.comparisons),
                        top1_agreement=pooled.top1_agreement, accuracy=pooled.accuracy, passed=report.passed,
                        failure=report.failures[0] if report.failures else None)
