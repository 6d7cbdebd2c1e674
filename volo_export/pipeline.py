"""checkpoint -> eager VOLO -> ONNX -> validation gate [-> FP16/INT8 -> gate] -> file at --output.

`export_onnx` is the function behind `volo-export onnx`, `quantize_onnx` the one
behind `volo-export quantize` (an existing FP32 export -> FP16/INT8). Each step is
a call into the stage modules; nothing lands at the output path unless every
gate passed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from volo_export.errors import UsageError, ValidationFailed
from volo_export.export.metadata import ArtifactInfo
from volo_export.export.to_onnx import ExportOptions, finalize, op_histogram, save_onnx, torch_to_onnx
from volo_export.io import atomic_output, ensure_writable
from volo_export.models.checkpoint import load_model
from volo_export.report import Report
from volo_export.runtime import OnnxRuntimeRunner, SessionSettings
from volo_export.tolerances import FP32
from volo_export.validate import InputSet, ValidationPlan, eager_predictor, run_gate, validation_inputs

if TYPE_CHECKING:
    from volo_export.precision.convert import PrecisionRequest

StageCallback = Callable[[str], None]
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class OnnxRequest:
    """Everything `volo-export onnx` was asked to do."""

    model: str
    output: Path
    checkpoint: Path | None = None
    export: ExportOptions = ExportOptions()
    validate: bool = True
    validate_images: Path | None = None
    plan: ValidationPlan = ValidationPlan()
    precision: "PrecisionRequest | None" = None  # None: FP32

    def __post_init__(self):
        if self.precision and self.precision.precision != "fp32" and not self.validate:
            raise UsageError(f"--no-validate is not available with --precision {self.precision.precision}: "
                             "reduced precision is always gated")


@dataclass
class OnnxResult:
    output: Path
    info: ArtifactInfo
    notices: list[str]
    op_types: dict[str, int]
    report: Report | None = None  # the written artifact's gate
    timings: dict[str, float] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)  # every gate run, in order (FP32 first)


def export_onnx(request: OnnxRequest, on_stage: StageCallback = lambda _: None,
                on_progress: ProgressCallback = lambda done, total: None) -> OnnxResult:
    """Export, validate (and lower precision, gated) and write the ONNX model; raises ValidationFailed
    (nothing written) on a miss."""
    ensure_writable(request.output)
    timings = {}
    t0 = time.perf_counter()
    on_stage(f"loading {request.model}" + (f" from {request.checkpoint}" if request.checkpoint else ""))
    loaded = load_model(request.model, request.checkpoint)
    timings["load_s"] = time.perf_counter() - t0

    on_stage("exporting to ONNX (outlook attention rewritten, no Col2Im)")
    t0 = time.perf_counter()
    info = ArtifactInfo.for_model(loaded.config, loaded.checkpoint_sha256, request.export.opset)
    proto = finalize(torch_to_onnx(loaded.model, request.export), info)
    timings["export_s"] = time.perf_counter() - t0

    result = OnnxResult(request.output, info, loaded.notices, dict(op_histogram(proto)), timings=timings)
    with atomic_output(request.output) as tmp:
        save_onnx(proto, tmp)
        if request.validate:
            on_stage("validating against eager PyTorch")
            t0 = time.perf_counter()
            result.report = gate_onnx(tmp, loaded, request, on_stage)
            result.reports.append(result.report)
            timings["validate_s"] = time.perf_counter() - t0
            if not result.report.passed:
                raise ValidationFailed(f"{request.output.name} failed validation, not written: "
                                       f"{result.report.failures[0]}", result.report)
        if request.precision and request.precision.precision != "fp32":
            from volo_export.precision.gate import Reference

            t0 = time.perf_counter()
            reference = Reference(eager_predictor(loaded.model), "eager PyTorch")
            lowered = lower_precision(proto, info, reference, request.precision, request.output,
                                       request.validate_images, on_stage, on_progress)
            result.info, result.report = lowered.info, lowered.report
            result.reports.append(lowered.report)
            result.op_types = dict(op_histogram(lowered.model))
            save_onnx(lowered.model, tmp)
            timings["precision_s"] = time.perf_counter() - t0
        del proto
    return result


@dataclass
class Lowered:
    """A gated FP16/INT8 model with its metadata."""

    model: object
    info: ArtifactInfo
    report: Report
    notes: list[str]


def lower_precision(fp32, info: ArtifactInfo, reference, precision: "PrecisionRequest", output: Path,
                    validate_images: Path | None, on_stage: StageCallback = lambda _: None,
                    on_progress: ProgressCallback = lambda done, total: None) -> Lowered:
    """FP32 ModelProto -> gated FP16/INT8 ModelProto with metadata (not written); raises ValidationFailed
    on a miss. `reference` is a precision.gate.Reference (eager PyTorch, or the FP32 ONNX)."""
    from volo_export.calibration.cache import graph_sha256
    from volo_export.precision.convert import convert_precision

    converted = convert_precision(fp32, info.preprocessing, reference, precision, output=output,
                                  model_name=info.model, validate_images=validate_images,
                                  on_stage=on_stage, on_progress=on_progress)
    if not converted.report.passed:
        raise ValidationFailed(f"{output.name} ({precision.precision}) failed its gate, not written: "
                               f"{converted.report.failures[0]}", converted.report)
    target = precision.target if precision.precision == "int8" else "any"
    extra = {**info.extra, **converted.extra, "fp32_graph_sha256": graph_sha256(fp32)}
    if converted.random_calibration:
        extra["calibration_random"] = "true"
    lowered_info = dataclasses.replace(info, precision=precision.precision, target=target, extra=extra)
    return Lowered(finalize(converted.model, lowered_info), lowered_info, converted.report, converted.notes)


@dataclass(frozen=True)
class QuantizeRequest:
    """Everything `volo-export quantize` was asked to do: an FP32 export in, FP16/INT8 out."""

    source: Path
    output: Path
    precision: "PrecisionRequest"
    checkpoint: Path | None = None
    validate_images: Path | None = None

    def __post_init__(self):
        if self.precision.precision == "fp32":
            raise UsageError("--precision fp32: the source already is FP32; choose fp16 or int8")


def quantize_onnx(request: QuantizeRequest, on_stage: StageCallback = lambda _: None,
                  on_progress: ProgressCallback = lambda done, total: None) -> OnnxResult:
    """Convert an existing FP32 volo-export ONNX to FP16/INT8, gated, written atomically.

    The gate compares with eager PyTorch when the model can be rebuilt exactly (its checkpoint,
    or bundled weights, with the sha256 recorded in the ONNX); otherwise with the FP32 ONNX
    itself, and the report says so.
    """
    import onnx

    from volo_export.export.metadata import read_info

    ensure_writable(request.output)
    source = Path(request.source)
    if source.resolve() == Path(request.output).resolve():
        raise UsageError("--output must differ from the FP32 model it is made from")
    info = read_info(source)
    if info.precision != "fp32":
        raise UsageError(f"{source} is already {info.precision}; convert the FP32 export instead")
    on_stage(f"reading {source}")
    proto = onnx.load(str(source))
    reference, notes = _reference_for(info, source, request.checkpoint, on_stage)
    lowered = lower_precision(proto, info, reference, request.precision, request.output, request.validate_images,
                               on_stage, on_progress)
    result = OnnxResult(request.output, lowered.info, notes, dict(op_histogram(lowered.model)),
                        report=lowered.report, reports=[lowered.report])
    with atomic_output(request.output) as tmp:
        save_onnx(lowered.model, tmp)
    return result


def _reference_for(info: ArtifactInfo, source: Path, checkpoint: Path | None, on_stage: StageCallback):
    """(Reference, notes): eager PyTorch when the exported weights can be reloaded, else the FP32 ONNX."""
    from volo_export.errors import UnknownModelError
    from volo_export.precision.gate import Reference

    onnx_reference = Reference(OnnxRuntimeRunner(source, SessionSettings(providers=("CPUExecutionProvider",))),
                               f"FP32 ONNX {source.name}")
    if info.random_weights:
        if checkpoint is not None:
            raise UsageError(f"{source} was exported with random weights; --checkpoint cannot rebuild them")
        return onnx_reference, [f"gate reference is the FP32 ONNX {source.name}, not eager PyTorch: its random "
                                "weights cannot be rebuilt"]
    on_stage(f"loading {info.model} to rebuild the eager reference")
    try:
        loaded = load_model(info.model, checkpoint)
    except UnknownModelError:
        return onnx_reference, [f"gate reference is the FP32 ONNX {source.name}: model {info.model!r} is not "
                                "registered here"]
    if loaded.checkpoint_sha256 == info.checkpoint_sha256:
        return Reference(eager_predictor(loaded.model), "eager PyTorch"), []
    if checkpoint is not None:
        raise UsageError(f"--checkpoint {checkpoint} is not the checkpoint {source.name} was exported from "
                         f"(sha256 {str(loaded.checkpoint_sha256)[:12]}... vs {str(info.checkpoint_sha256)[:12]}...)")
    return onnx_reference, [f"gate reference is the FP32 ONNX {source.name}, not eager PyTorch: pass the "
                            "--checkpoint it was exported from to compare with eager"]


def gate_onnx(path: Path, loaded, request: OnnxRequest, on_stage: StageCallback) -> Report:
    """Compare the ONNX file at `path` with the eager model on the request's validation inputs."""
    inputs, notes = validation_inputs(loaded.config.preprocessing, request.plan, request.validate_images)
    if request.export.batch:
        inputs = _rebatch(inputs, request.export.batch)
    runner = OnnxRuntimeRunner(path)
    lowering = request.precision is not None and request.precision.precision != "fp32"
    artifact = f"{request.output.name} (FP32 stage)" if lowering else request.output.name
    return run_gate(eager_predictor(loaded.model), runner, inputs, FP32, artifact=artifact,
                    model=loaded.config.name, precision="fp32", notes=notes)


def _rebatch(inputs, batch: int):
    """A static-batch graph only takes `batch` rows: regroup every input into batches of exactly that size."""
    rows = np.concatenate([s.array for s in inputs])
    reps = -(-batch // len(rows))
    rows = np.concatenate([rows] * reps)
    full = len(rows) // batch * batch
    return [InputSet(f"all inputs, static batch {batch} [{i}]", rows[i:i + batch]) for i in range(0, full, batch)]
