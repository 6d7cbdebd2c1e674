"""The gate: the one owner of judging an artifact against its reference.

    inputs     which images (held out from calibration) and noise, in batches the artifact takes
    reference  the eager model with the artifact's own weights (one checkpoint policy)
    compare    logits vs logits -> Report, judged with a tolerance (volo_export.tolerances)
    report     the Report type

`gate_artifact` is what every command calls: the export gate, `quantize`, the INT8
fallback's re-gates, `validate` and the benchmark's artifacts. It returns a Report;
use cases turn a failed one into an error (`errors.raise_if_failed`).
"""

from __future__ import annotations

from collections.abc import Sequence

from volo_export.gate.compare import run_gate
from volo_export.gate.inputs import InputPlan, InputSet, fit_to, gate_inputs, plan_for
from volo_export.gate.reference import Reference, eager_reference, onnx_reference, rebuild_eager
from volo_export.gate.report import Comparison, FallbackStep, Report
from volo_export.progress import SILENT, Progress
from volo_export.runtime.base import Runner
from volo_export.tolerances import Tolerance

__all__ = ["Comparison", "FallbackStep", "InputPlan", "InputSet", "Reference", "Report", "eager_reference",
           "gate_artifact", "gate_inputs", "onnx_reference", "plan_for", "rebuild_eager"]


def gate_artifact(runner: Runner, reference: Reference, inputs: Sequence[InputSet], tolerance: Tolerance, *,
                  artifact: str, model: str, precision: str, notes: Sequence[str] = (),
                  progress: Progress = SILENT) -> Report:
    """Run the artifact (`runner`) and `reference` on `inputs`, cut to batches the runner takes, and judge them."""
    return run_gate(reference, runner, fit_to(inputs, runner.batch_range), tolerance, artifact=artifact,
                    model=model, precision=precision, notes=notes, progress=progress)
