"""`volo-export validate`: judge an existing artifact (.onnx or .engine) against eager PyTorch.

The same gate as at export time (`gate.gate_artifact`): the eager reference is rebuilt
from the artifact's metadata and the weights it was exported from (`gate.rebuild_eager`,
one checkpoint policy), the inputs follow the artifact's precision (`gate.plan_for`), and
the tolerance follows its precision and the runtime that really runs it
(`tolerances.tolerance_for`: an FP32 graph on TensorRT is judged as TF32 arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from volo_export.errors import UsageError, raise_if_failed
from volo_export.gate import Report, eager_reference, gate_artifact, gate_inputs, plan_for, rebuild_eager
from volo_export.gate.inputs import HELDOUT_PLAN
from volo_export.progress import SILENT, Progress
from volo_export.runtime import open_runner
from volo_export.tolerances import GateOverrides, tolerance_for


GATE_BATCH = HELDOUT_PLAN.batch_sizes[-1]  # the batch `--runtime auto` is measured at for a gate


@dataclass(frozen=True)
class ValidateRequest:
    """What `volo-export validate` was asked to compare."""

    artifact: Path
    checkpoint: Path | None = None
    images: Path | None = None
    plugins: tuple[Path, ...] = ()
    gate: GateOverrides = GateOverrides()
    runtime: str | None = None  # runtime.RUNTIMES; None: by file type (.onnx: ONNX Runtime)


def validate_artifact(request: ValidateRequest, progress: Progress = SILENT) -> Report:
    """Run the artifact and its eager reference on the same inputs; returns the passing Report,
    raises ValidationFailed (carrying it) when the artifact misses its gate."""
    name = Path(request.artifact).name
    runner = open_runner(request.artifact, plugins=request.plugins, runtime=request.runtime, batch=GATE_BATCH,
                         progress=progress)
    info = runner.info
    loaded, why_not = rebuild_eager(info, request.checkpoint, name)
    if loaded is None:
        raise UsageError(f"cannot rebuild the eager model to compare {name} with: {why_not}")
    inputs, notes = gate_inputs(info.preprocessing, plan_for(info.precision, request.images))
    progress.stage(f"running {name} on {runner.describe()} and eager PyTorch on the same images")
    report = gate_artifact(runner, eager_reference(loaded.model), inputs,
                           tolerance_for(info.precision, runner.runtime, request.gate), artifact=name,
                           model=info.model, precision=f"{info.precision} ({runner.runtime})",
                           notes=list(loaded.notices) + notes + list(runner.notices), progress=progress)
    raise_if_failed(report, f"{name} differs from eager PyTorch")
    return report
