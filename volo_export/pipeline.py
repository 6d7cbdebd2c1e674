"""checkpoint -> eager VOLO -> ONNX -> validation gate -> file at --output.

The one function behind `volo-export onnx`. Each step is a call into the
stage modules; nothing lands at the output path unless the gate passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from volo_export.errors import ValidationFailed
from volo_export.export.metadata import ArtifactInfo
from volo_export.export.to_onnx import ExportOptions, finalize, op_histogram, save_onnx, torch_to_onnx
from volo_export.io import atomic_output, ensure_writable
from volo_export.models.checkpoint import load_model
from volo_export.report import Report
from volo_export.runtime import OnnxRuntimeRunner
from volo_export.tolerances import FP32
from volo_export.validate import InputSet, ValidationPlan, eager_predictor, run_gate, validation_inputs

StageCallback = Callable[[str], None]


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


@dataclass
class OnnxResult:
    output: Path
    info: ArtifactInfo
    notices: list[str]
    op_types: dict[str, int]
    report: Report | None = None
    timings: dict[str, float] = field(default_factory=dict)


def export_onnx(request: OnnxRequest, on_stage: StageCallback = lambda _: None) -> OnnxResult:
    """Export, validate and write the ONNX model; raises ValidationFailed (nothing written) on a miss."""
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
        del proto
        if request.validate:
            on_stage("validating against eager PyTorch")
            t0 = time.perf_counter()
            result.report = gate_onnx(tmp, loaded, request, on_stage)
            timings["validate_s"] = time.perf_counter() - t0
            if not result.report.passed:
                raise ValidationFailed(f"{request.output.name} failed validation, not written: "
                                       f"{result.report.failures[0]}")
    return result


def gate_onnx(path: Path, loaded, request: OnnxRequest, on_stage: StageCallback) -> Report:
    """Compare the ONNX file at `path` with the eager model on the request's validation inputs."""
    inputs, notes = validation_inputs(loaded.config.preprocessing, request.plan, request.validate_images)
    if request.export.batch:
        inputs = _rebatch(inputs, request.export.batch)
    runner = OnnxRuntimeRunner(path)
    return run_gate(eager_predictor(loaded.model), runner, inputs, FP32, artifact=request.output.name,
                    model=loaded.config.name, precision="fp32", notes=notes)


def _rebatch(inputs, batch: int):
    """A static-batch graph only takes `batch` rows: regroup every input into batches of exactly that size."""
    rows = np.concatenate([s.array for s in inputs])
    reps = -(-batch // len(rows))
    rows = np.concatenate([rows] * reps)
    full = len(rows) // batch * batch
    return [InputSet(f"all inputs, static batch {batch} [{i}]", rows[i:i + batch]) for i in range(0, full, batch)]
