"""Validate an existing artifact (.onnx or .engine) against eager PyTorch, after the fact.

The same comparison as the export gate (`validate.run_gate` -> `Report`); the
reference is rebuilt from the artifact's own metadata (model name) and the
checkpoint the user passes, whose sha256 is compared with the one recorded
at export time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volo_export.errors import UsageError
from volo_export.export.metadata import ArtifactInfo
from volo_export.report import Report
from volo_export.tolerances import Tolerance
from volo_export.validate import InputSet, ValidationPlan, eager_predictor, run_gate, validation_inputs


@dataclass(frozen=True)
class ArtifactCheckRequest:
    """What `volo-export validate` was asked to compare."""

    artifact: Path
    checkpoint: Path | None = None
    images: Path | None = None
    plan: ValidationPlan = ValidationPlan()
    plugins: tuple[Path, ...] = ()


def tolerance_for(precision: str, engine: bool) -> Tolerance:
    """The gate for an artifact of `precision` ('fp32', 'fp16', 'int8', ...) on ONNX Runtime or TensorRT."""
    from volo_export import tolerances

    if precision == "fp32":
        return tolerances.TENSORRT_FP32 if engine else tolerances.FP32
    tol = getattr(tolerances, precision.upper(), None)
    if not isinstance(tol, Tolerance):
        raise UsageError(f"no tolerance for precision {precision!r} in volo_export/tolerances.py")
    return tol


def reference_model(info: ArtifactInfo, checkpoint: Path | None, artifact: str):
    """The eager model the artifact came from, and notes about the checkpoint (sha256 vs metadata)."""
    from volo_export.models.checkpoint import load_model

    if checkpoint is None and info.random_weights:
        raise UsageError(f"{artifact} was exported with random weights: there is no eager model to compare "
                         "it with (export from a --checkpoint, then validate with that checkpoint)")
    loaded = load_model(info.model, checkpoint)
    notes = list(loaded.notices)
    if loaded.checkpoint_sha256 is None:
        recorded = f" (it was exported from sha256 {info.checkpoint_sha256[:16]}...)" if info.checkpoint_sha256 else ""
        raise UsageError(f"pass --checkpoint: the eager reference for {artifact} needs its weights{recorded}")
    if checkpoint is None and info.checkpoint_sha256 and loaded.checkpoint_sha256 != info.checkpoint_sha256:
        raise UsageError(f"pass --checkpoint: {artifact} was exported from sha256 {info.checkpoint_sha256[:16]}..., "
                         f"not from {info.model}'s bundled weights")
    if info.checkpoint_sha256 and loaded.checkpoint_sha256 != info.checkpoint_sha256:
        notes.append(f"checkpoint sha256 {loaded.checkpoint_sha256[:16]}... differs from the one {artifact} was "
                     f"exported from ({info.checkpoint_sha256[:16]}...): comparing against other weights")
    elif info.random_weights:
        notes.append(f"{artifact} was exported with random weights, the reference uses the checkpoint's weights")
    if loaded.config.num_classes != info.num_classes:
        raise UsageError(f"the checkpoint has {loaded.config.num_classes} classes, {artifact} {info.num_classes}")
    return loaded, notes


def fit_batches(inputs: Sequence[InputSet], lo: int, hi: int | None) -> list[InputSet]:
    """Split or fill input sets so every batch is within [lo, hi]: long sets are cut into chunks of
    `hi`, short ones repeat their rows (real images, not zeros) up to `lo`."""
    out = []
    for s in inputs:
        if lo <= len(s.array) <= (hi or len(s.array)):
            out.append(s)
            continue
        step = hi or len(s.array)
        for start in range(0, len(s.array), step):
            rows = s.array[start:start + step]
            targets = None if s.targets is None else s.targets[start:start + step]
            label = s.label if len(s.array) <= step else f"{s.label}[{start}:{start + len(rows)}]"
            if len(rows) < lo:
                take = np.resize(np.arange(len(rows)), lo)
                rows, label = rows[take], f"{label} (rows repeated to batch {lo})"
                targets = None if targets is None else targets[take]
            out.append(InputSet(label, rows, targets))
    return out


def validate_artifact(request: ArtifactCheckRequest, on_batch=None) -> Report:
    """Run the artifact and its eager reference on the same inputs; the report says whether it passes."""
    from volo_export.runtime import ENGINE_SUFFIXES, open_runner

    runner = open_runner(request.artifact, plugins=request.plugins)
    info, name = runner.info, Path(request.artifact).name
    if info is None:
        raise UsageError(f"{name} carries no volo-export metadata: cannot rebuild its eager reference")
    engine = Path(request.artifact).suffix in ENGINE_SUFFIXES
    loaded, notes = reference_model(info, request.checkpoint, name)
    inputs, input_notes = validation_inputs(info.preprocessing, request.plan, request.images)
    inputs = fit_batches(inputs, *runner.batch_range)
    notes += input_notes + list(getattr(runner, "notices", []))
    return run_gate(eager_predictor(loaded.model), runner, inputs, tolerance_for(info.precision, engine),
                    artifact=name, model=info.model, precision=info.precision + (" (TensorRT)" if engine else ""),
                    notes=notes, on_batch=on_batch)
