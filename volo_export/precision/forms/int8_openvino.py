"""INT8 for OpenVINO on the CPU (`--precision int8 --target openvino`, `precision/openvino.py`): the
tensorrt form's symmetric Q/DQ plus the attention matmuls, uint8 softmax outputs and Q/DQ above
reshapes, on a graph first rewritten by exact passes. Gated in OpenVINO itself (what it is for);
stamped target "openvino" (TensorRT does not parse it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from volo_export.names import Precision, Runtime, Target
from volo_export.precision.form import BenchEntry, Built, Job, Prepared, openvino_gate_runner, register
from volo_export.precision.qdq_form import QdqForm, QdqState, sensitivity_samples

if TYPE_CHECKING:
    import onnx

    from volo_export.precision.int8 import QuantTarget


@dataclass
class OpenVinoQdqState:
    """The INT8 measurements (names of the FP32 graph; ranges also under the names the passes gave), the
    passed graph the OpenVINO form quantises and {its new nodes: the FP32 node each is part of}."""

    int8: QdqState
    edited: onnx.ModelProto
    origins: dict[str, str]


@register
class Int8OpenVino(QdqForm):
    precision = Precision.INT8
    tolerance = Precision.INT8
    target = Target.OPENVINO
    stamp = Target.OPENVINO
    describe = "OpenVINO CPU: symmetric int8, int8 attention, uint8 softmax, Q/DQ above reshapes"
    activation_matmuls = True
    gate_runtime = "OpenVINO CPU"
    runs_only_on = "OpenVINO (and ONNX Runtime) CPU"
    bench = (BenchEntry("openvino-int8", "volo-export INT8 ONNX (--target openvino), OpenVINO CPU", Runtime.OPENVINO,
                        needs=("import_openvino",), default=True),)

    def require(self) -> None:
        from volo_export.runtime.openvino_runner import import_openvino

        import_openvino()

    def calibration_tensors(self, fp32, everything=None) -> list[str]:
        from volo_export.precision import int8, openvino

        candidates = int8.find_targets(fp32, self.selection()) if everything is None else everything
        return int8.calibration_tensors(openvino.select(fp32, candidates))

    def prepare(self, fp32, job: Job) -> Prepared:
        prepared = super().prepare(fp32, job)
        return dataclasses.replace(prepared, state=self.passed(fp32, prepared.state))

    def passed(self, fp32, state: QdqState) -> OpenVinoQdqState:
        """The INT8 measurements of `fp32` carried over to the graph after this form's exact passes."""
        from volo_export.precision import openvino

        passed = openvino.prepare_graph(fp32)
        ranges = {**state.ranges,
                  **{new: state.ranges[old] for new, old in passed.aliases.items() if old in state.ranges}}
        state = dataclasses.replace(state, targets=openvino.select(fp32, state.targets), ranges=ranges)
        return OpenVinoQdqState(state, passed.model, passed.origins)

    def _edited_targets(self, state: OpenVinoQdqState, keep: Sequence[str] = ()) -> list[QuantTarget]:
        """The targets of the passed graph; `keep` names its nodes (sensitivity scores them)."""
        from volo_export.precision import openvino

        chosen = openvino.targets_in(state.edited, [t.node for t in state.int8.targets], self.selection(),
                                     state.origins)
        return [t for t in chosen if t.node not in set(keep)]

    def build(self, fp32, prepared: Prepared[OpenVinoQdqState], keep: Sequence[str] = ()) -> Built:
        from volo_export.precision import openvino

        state = prepared.state
        chosen = self._edited_targets(state, keep)
        model = openvino.build(state.edited, chosen, state.int8.ranges)
        return Built(model, list(state.int8.excluded), {"quantized_nodes": str(len(chosen))})

    def sensitivity(self, fp32, prepared: Prepared[OpenVinoQdqState]) -> dict[str, float]:
        from volo_export.precision.fallback import node_sensitivity

        state = prepared.state
        return node_sensitivity(state.edited, self._edited_targets(state), state.int8.ranges,
                                sensitivity_samples(fp32, state.int8.samples))

    def runner(self, model, info=None):
        return openvino_gate_runner(model, info)
