"""The use cases that write an ONNX file: `volo-export onnx` and `volo-export quantize`.

    export_onnx:   checkpoint -> eager VOLO -> ONNX (export.export_model) -> FP32 gate
                   [-> FP16/INT8 (precision.lower_precision) -> its gate] -> file at --output
    quantize_onnx: FP32 ONNX file -> FP16/INT8 -> gate (eager reference rebuilt when it can be) -> file

Every step is a call into a stage; a failed gate becomes ValidationFailed here
(`errors.raise_if_failed`), and nothing lands at the output path unless every gate passed.
The result carries what the CLI shows, TensorRT check verdict included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from volo_export.errors import UsageError, raise_if_failed
from volo_export.export.metadata import ArtifactInfo
from volo_export.export.to_onnx import ExportOptions, export_model, op_histogram, save_onnx
from volo_export.gate import Report, eager_reference, gate_artifact, gate_inputs, onnx_reference, plan_for, rebuild_eager
from volo_export.io import atomic_output, distinct_outputs, ensure_writable, write_json
from volo_export.models.checkpoint import load_model
from volo_export.models.variants import get_config
from volo_export.names import Precision
from volo_export.precision.convert import PrecisionRequest, lower_precision, lowering_data
from volo_export.precision.forms import artifact_form
from volo_export.progress import SILENT, Progress
from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings
from volo_export.tolerances import GateOverrides, tolerance_for


@dataclass(frozen=True)
class OnnxRequest:
    """Everything `volo-export onnx` was asked to do. `report`: also write the written artifact's gate
    report there (JSON), committed together with the model."""

    model: str
    output: Path
    checkpoint: Path | None = None
    export: ExportOptions = ExportOptions()
    validate: bool = True
    validate_images: Path | None = None
    precision: PrecisionRequest = PrecisionRequest(precision=Precision.FP32)
    report: Path | None = None

    def __post_init__(self):
        if self.precision.lowers and not self.validate:
            raise UsageError(f"--no-validate is not available with --precision {self.precision.precision}: "
                             "reduced precision is always gated")
        for option, given in (("--validate-images", self.validate_images), ("--report", self.report)):
            if given is not None and not self.validate:
                raise UsageError(f"{option} needs validation; drop --no-validate")


@dataclass
class OnnxResult:
    """What was written and what every gate said (the written artifact's gate last)."""

    output: Path
    info: ArtifactInfo
    notices: list[str]
    op_types: dict[str, int]
    reports: list[Report] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    trt_check: str = ""  # the offline TensorRT check's one-line verdict on the written file

    @property
    def report(self) -> Report | None:
        """The written artifact's gate (None with --no-validate)."""
        return self.reports[-1] if self.reports else None


RANDOM_WEIGHTS = ("no --checkpoint: exporting RANDOM weights; the model's outputs are meaningless "
                  "(use only to test the pipeline)")


def export_onnx(request: OnnxRequest, progress: Progress = SILENT) -> OnnxResult:
    """Export, gate (and lower precision, gated) and write the ONNX model (and its report); raises
    ValidationFailed (no model written) on a miss. Every file the user named is read and checked
    first, so bad input fails in seconds, not after the export."""
    for path in (request.output, request.report):
        if path is not None:
            ensure_writable(path)
    distinct_outputs({"--checkpoint": request.checkpoint, "--validate-images": request.validate_images,
                      **request.precision.named_inputs()},
                     {"--output": request.output, "--report": request.report,
                      **request.precision.named_outputs(request.output)})
    prep = get_config(request.model).preprocessing
    fp32_inputs = gate_inputs(prep, plan_for(Precision.FP32, request.validate_images)) if request.validate else None
    lowering = request.precision.lowers
    data = lowering_data(prep, request.precision, request.validate_images, progress) if lowering else None

    timings = {}
    t0 = time.perf_counter()
    progress.stage(f"loading {request.model}" + (f" from {request.checkpoint}" if request.checkpoint else ""))
    loaded = load_model(request.model, request.checkpoint)
    announce_weights(loaded, progress)
    timings["load_s"] = time.perf_counter() - t0

    progress.stage("exporting to ONNX (outlook attention rewritten, no Col2Im)")
    t0 = time.perf_counter()
    proto, info = export_model(loaded, request.export)
    timings["export_s"] = time.perf_counter() - t0

    result = OnnxResult(request.output, info, loaded.notices, dict(op_histogram(proto)), timings=timings)
    reference = eager_reference(loaded.model)
    with atomic_output(request.output) as tmp:
        save_onnx(proto, tmp)
        if request.validate:
            progress.stage("validating against eager PyTorch")
            t0 = time.perf_counter()
            runner = OnnxRuntimeRunner(tmp, SessionSettings(providers=CPU_ONLY))
            inputs, notes = fp32_inputs
            # The user's gate overrides are for the written artifact's gate, not for the FP32 stage of a lowering.
            overrides = GateOverrides() if lowering else request.precision.gate
            report = gate_artifact(runner, reference, inputs, tolerance_for(Precision.FP32, runner.runtime, overrides),
                                   artifact=request.output.name + (" (FP32 stage)" if lowering else ""),
                                   model=info.model, precision=Precision.FP32, notes=notes, progress=progress)
            result.reports.append(report)
            timings["validate_s"] = time.perf_counter() - t0
            raise_if_failed(report, f"{request.output.name} failed its fp32 gate, not written")
        if lowering:
            t0 = time.perf_counter()
            lowered = lower_precision(proto, info, reference, request.precision, request.output, data, progress)
            result.reports.append(lowered.report)
            raise_if_failed(lowered.report, f"{request.output.name} failed its {request.precision.precision} gate, "
                                            "not written")
            result.info, result.op_types = lowered.info, dict(op_histogram(lowered.model))
            save_onnx(lowered.model, tmp)
            timings["precision_s"] = time.perf_counter() - t0
        del proto
        result.trt_check = _trt_verdict(tmp, result.info)
        if request.report is not None:  # inside the transaction: no model without its report, or vice versa
            write_json(request.report, result.report)
    return result


def announce_weights(loaded, progress: Progress) -> None:
    """Tell the user at once what weights this run uses (they also stay in the result)."""
    if loaded.random_weights:
        progress.warning(RANDOM_WEIGHTS)
    for line in loaded.notices:
        progress.notice(line)


@dataclass(frozen=True)
class QuantizeRequest:
    """Everything `volo-export quantize` was asked to do: an FP32 export in, FP16/INT8 out."""

    source: Path
    output: Path
    precision: PrecisionRequest
    checkpoint: Path | None = None
    validate_images: Path | None = None
    report: Path | None = None

    def __post_init__(self):
        if not self.precision.lowers:
            raise UsageError("--precision fp32: the source already is FP32; choose fp16, int8 or bf16")


def quantize_onnx(request: QuantizeRequest, progress: Progress = SILENT) -> OnnxResult:
    """Convert an existing FP32 volo-export ONNX to FP16/INT8, gated, written atomically (with its report).

    The gate compares with eager PyTorch when the model can be rebuilt exactly (`gate.rebuild_eager`:
    its checkpoint, or bundled weights, with the sha256 recorded in the ONNX); otherwise with the
    FP32 ONNX itself, and the report says so.
    """
    from volo_export.export.metadata import load_model, read_info

    for path in (request.output, request.report):
        if path is not None:
            ensure_writable(path)
    source = Path(request.source)
    distinct_outputs({"MODEL": source, "--checkpoint": request.checkpoint,
                      "--validate-images": request.validate_images, **request.precision.named_inputs()},
                     {"--output": request.output, "--report": request.report,
                      **request.precision.named_outputs(request.output)})
    info = read_info(source)
    if info.precision != Precision.FP32:
        raise UsageError(f"{source} is already {info.precision}; convert the FP32 export instead")
    data = lowering_data(info.preprocessing, request.precision, request.validate_images, progress)
    progress.stage(f"rebuilding the eager reference of {info.model}")
    loaded, why_not = rebuild_eager(info, request.checkpoint, source.name)
    notices = []
    if loaded is not None:
        reference = eager_reference(loaded.model)
        notices += loaded.notices
    else:
        reference = onnx_reference(source)
        notices.append(f"gate reference is the FP32 ONNX {source.name}, not eager PyTorch: {why_not}")
    for line in notices:
        progress.notice(line)
    progress.stage(f"reading {source}")
    proto = load_model(source)
    lowered = lower_precision(proto, info, reference, request.precision, request.output, data, progress)
    raise_if_failed(lowered.report, f"{request.output.name} failed its {request.precision.precision} gate, "
                                    "not written")
    result = OnnxResult(request.output, lowered.info, notices, dict(op_histogram(lowered.model)),
                        reports=[lowered.report])
    with atomic_output(request.output) as tmp:
        save_onnx(lowered.model, tmp)
        result.trt_check = _trt_verdict(tmp, lowered.info)
        if request.report is not None:
            write_json(request.report, lowered.report)
    return result


def _trt_verdict(path: Path, info: ArtifactInfo) -> str:
    """The offline TensorRT check's one line on the file about to be written (named as the output)."""
    from volo_export.trt.check import check_model

    verdict = check_model(path).summary()
    form = artifact_form(info.precision, info.target)
    if form is not None and form.runs_only_on:
        verdict += f" (expected: --target {form.target} is for {form.runs_only_on} only)"
    return verdict
