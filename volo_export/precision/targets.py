"""The precision targets: one strategy per (precision, --target) pair.

A target lowers an FP32 graph in three steps that `convert.convert_precision` drives:

    prepare(fp32, job)        what the graph needs to be measured first (FP16: the activations that
                              would overflow; INT8: calibrated ranges) -> Prepared
    build(fp32, prepared, keep)  the lowered graph with the nodes in `keep` left in float32
                              -> Built (model, lines saying what stayed float and why, metadata)
    sensitivity(fp32, prepared)  per-node error, for the automatic fallback (targets with
                              `has_fallback` only)

and says how its result is gated (`runner`: ONNX Runtime CPU at `gate_optimization`).
A new precision (or a new form of one for another runtime) is one more class and one
more branch in `precision_target`; its gate goes to `volo_export.tolerances`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from volo_export.calibration.data import CalibrationData
from volo_export.errors import UsageError
from volo_export.gate.inputs import InputSet
from volo_export.models.variants import Preprocessing
from volo_export.progress import Progress


@dataclass
class Job:
    """What a target's `prepare` may use: the user's request, the model's preprocessing, the gate's
    inputs (held out from calibration), the calibration data (INT8 only), where the output goes and the
    FP32 graph's hash (`graph_sha256`, computed once per lowering)."""

    request: object  # convert.PrecisionRequest
    prep: Preprocessing
    inputs: list[InputSet]
    calibration: CalibrationData | None
    output: Path
    progress: Progress
    fp32_sha256: str


@dataclass
class Prepared:
    """A target's measurements of the FP32 graph (`state`), its metadata additions and notes for the report."""

    state: object
    extra: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class PrecisionTarget:
    """Base of every target; see the module docstring."""

    precision: str = ""
    name: str = ""  # the --target value
    describe: str = ""
    stamp: str = "any"  # metadata `target`: which runtimes the graph is for
    needs_calibration: bool = False
    has_fallback: bool = False
    gate_optimization: str = "all"  # ONNX Runtime optimisation level the gate runs the graph at
    gate_note: str | None = None
    gate_runtime: str = "ONNX Runtime CPU"  # what `runner` runs the gate on, for messages

    def require(self) -> None:
        """Raise a one-line error when this machine cannot build and gate this target (checked before any work)."""

    def prepare(self, fp32, job: Job) -> Prepared:
        raise NotImplementedError

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> "Built":
        raise NotImplementedError

    def sensitivity(self, fp32, prepared: Prepared) -> dict[str, float]:
        """{node: relative output error it alone adds}; larger goes back to float32 first."""
        raise NotImplementedError

    def runner(self, model, info=None):
        """The runner the gate judges the lowered `model` (ModelProto) with; `info`: its metadata
        (ArtifactInfo) when `model` does not carry it yet (None: read from `model`)."""
        from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

        return OnnxRuntimeRunner(model.SerializeToString(),
                                 SessionSettings(providers=CPU_ONLY, optimization=self.gate_optimization))


@dataclass
class Built:
    """A lowered graph, what stayed float32 (one line each, with the reason) and its metadata additions."""

    model: object
    kept: list[str]
    extra: dict[str, str] = field(default_factory=dict)


class Fp16Target(PrecisionTarget):
    """FP16 by graph conversion (`fp16.to_fp16`); LayerNorm, Softmax, reductions and every node whose
    activations overflow float16 on the gate's images stay float32."""

    precision, name, describe = "fp16", "tensorrt", "float16 graph, sensitive ops float32"

    def prepare(self, fp32, job: Job) -> Prepared:
        from volo_export.activations import collect_stats, float_tensor_names
        from volo_export.precision.fp16 import Fp16Options, keep_op_types, overflow_nodes
        from volo_export.tolerances import FP16_SAFE_ABS

        request = job.request
        options = Fp16Options(io_dtype=request.io_dtype, keep_op_types=keep_op_types(request.exclude_op_types),
                              keep_nodes=request.exclude_nodes)
        job.progress.stage("FP16: scanning activations for float16 overflow")
        floats = [n for n, t in float_tensor_names(fp32).items() if t == 1]
        scan = job.inputs[0].array[:2]
        stats = collect_stats(fp32, floats, scan, batch=len(scan), histogram=False)
        return Prepared((options, overflow_nodes(fp32, stats, FP16_SAFE_ABS)), extra={"io_dtype": request.io_dtype})

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> Built:
        from volo_export.precision.fp16 import to_fp16

        options, overflow = prepared.state
        options = dataclasses.replace(options, keep_nodes=tuple(dict.fromkeys([*options.keep_nodes, *keep])))
        converted = to_fp16(fp32, options, overflow)
        return Built(converted.model, converted.kept)


class Int8Target(PrecisionTarget):
    """INT8 by explicit Q/DQ on MatMul/Gemm/Conv inputs, from calibrated ranges, in one of two forms:

    - `tensorrt` (default): TensorRT's explicit-quantisation form (`int8.quantize_qdq`), which
      `volo_export.trt.check` accepts; ONNX Runtime CPU runs it too. Fused attention projections
      (`qkv`, `kv`) are then split into one MatMul per part (`passes.projections.split_projections`), so
      the builder fuses each into an INT8 GEMM instead of a float32 batched one. Metadata
      `quantized_nodes` counts the FP32 graph's nodes (the names --exclude-nodes takes);
      `split_projections` names the ones split into `<node>_part<i>`.
    - `cpu`: the fastest accurate graph for ONNX Runtime CPU (`cpu.build`); stamped CPU-only,
      TensorRT does not parse it.
    """

    precision = "int8"
    needs_calibration = True
    has_fallback = True

    def __init__(self, name: str):
        from volo_export.precision import cpu, int8

        self.name = self.stamp = name
        if name == "tensorrt":
            self.describe = "TensorRT Q/DQ: symmetric int8, per-channel weights"
            self.op_types, self.activation_matmuls = int8.WEIGHTED_OPS, False
            self._tensors, self._build = lambda model, targets: int8.calibration_tensors(targets), int8.quantize_qdq
            # Gated with ONNX Runtime's optimisations at "basic": Q/DQ then run as written (int8 products
            # summed exactly in float), which is TensorRT's arithmetic. At higher levels ONNX Runtime fuses
            # them into x86 integer kernels, which on CPUs without AVX-512 VNNI saturate int16 pair sums
            # (docs/PRECISION.md): right for the cpu form, which avoids that, wrong as TensorRT's stand-in.
            self.gate_optimization = "basic"
            self.gate_note = ("int8 gate ran ONNX Runtime at optimisation level 'basic' (Q/DQ as written = "
                              "TensorRT's arithmetic); for CPU deployment use --target cpu")
        else:
            self.describe = cpu.DESCRIPTION
            self.op_types, self.activation_matmuls = cpu.OP_TYPES, cpu.ACTIVATION_MATMULS
            self._tensors, self._build = cpu.calibration_tensors, cpu.build

    def selection(self, exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = ()):
        from volo_export.precision.int8 import Selection

        return Selection(op_types=self.op_types, exclude_nodes=tuple(exclude_nodes),
                         exclude_op_types=tuple(exclude_op_types), activation_matmuls=self.activation_matmuls)

    def calibration_tensors(self, fp32, everything=None) -> list[str]:
        """The activations whose ranges this form needs, when every candidate node is quantised (`everything`:
        those candidates, `find_targets(fp32, self.selection())`, when the caller has them)."""
        from volo_export.precision.int8 import find_targets

        return self._tensors(fp32, find_targets(fp32, self.selection()) if everything is None else everything)

    def prepare(self, fp32, job: Job) -> Prepared:
        from volo_export.calibration import calibrate
        from volo_export.precision.int8 import find_targets

        request = job.request
        everything = find_targets(fp32, self.selection())
        targets = find_targets(fp32, self.selection(request.exclude_nodes, request.exclude_op_types))
        if not targets:
            raise UsageError("nothing left to quantise: every MatMul/Gemm/Conv is excluded")
        tensors = int8_calibration_tensors(fp32, {self.name: everything})
        ranges, message = calibrate(fp32, tensors, job.calibration, request.calib_method, job.prep,
                                    request.cache_path(job.output), job.progress, job.fp32_sha256)
        excluded = [f"{t.node} ({'excluded' if t.node in request.exclude_nodes else 'op type excluded'})"
                    for t in everything if t.node not in {q.node for q in targets}]
        calibration = json.dumps({**job.calibration.summary(), "method": request.calib_method}, sort_keys=True)
        return Prepared(Int8State(targets, ranges, excluded, job.calibration.array), extra={"calibration": calibration},
                        notes=[message] + ([self.gate_note] if self.gate_note else []))

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> Built:
        state = prepared.state
        chosen = [t for t in state.targets if t.node not in set(keep)]
        model = self._build(fp32, chosen, state.ranges)
        extra = {"quantized_nodes": str(len(chosen))}
        if self.name == "tensorrt":
            from volo_export.passes.projections import split_projections

            origins: dict[str, str] = {}
            split_projections(model, origins)
            extra["split_projections"] = json.dumps(list(dict.fromkeys(origins.values())))
        return Built(model, list(state.excluded), extra)

    def sensitivity(self, fp32, prepared: Prepared) -> dict[str, float]:
        from volo_export.precision.fallback import node_sensitivity
        from volo_export.runtime.base import batch_range_of

        state = prepared.state
        index, _ = batch_range_of(fp32).chunks(len(state.samples), 8)[0]
        return node_sensitivity(fp32, state.targets, state.ranges, state.samples[index])


@dataclass
class Int8State:
    """What INT8 measured: the nodes to quantise, every tensor's calibrated range, the nodes the user
    excluded (as report lines) and the calibration samples (for the sensitivity measurement)."""

    targets: list
    ranges: dict
    excluded: list[str]
    samples: object


class OpenVinoInt8Target(Int8Target):
    """INT8 for OpenVINO on the CPU (`precision/openvino.py`): the tensorrt form's symmetric Q/DQ plus the
    attention matmuls, uint8 softmax outputs and Q/DQ above reshapes, on a graph first rewritten by
    exact passes. Gated in OpenVINO itself (what it is for); stamped target "openvino"."""

    gate_runtime = "OpenVINO CPU"

    def __init__(self):
        from volo_export.precision import int8, openvino

        self.name = self.stamp = "openvino"
        self.describe = openvino.DESCRIPTION
        self.op_types, self.activation_matmuls = int8.WEIGHTED_OPS, True
        self._tensors = lambda model, targets: int8.calibration_tensors(openvino.select(model, targets))

    def require(self) -> None:
        from volo_export.runtime.openvino_runner import import_openvino

        import_openvino()

    def prepare(self, fp32, job: Job) -> Prepared:
        from volo_export.precision import openvino

        prepared = super().prepare(fp32, job)
        state = prepared.state
        passed = openvino.prepare_graph(fp32)
        ranges = {**state.ranges,
                  **{new: state.ranges[old] for new, old in passed.aliases.items() if old in state.ranges}}
        state = dataclasses.replace(state, targets=openvino.select(fp32, state.targets), ranges=ranges)
        return dataclasses.replace(prepared, state=OpenVinoInt8State(state, passed.model, passed.origins))

    def _edited_targets(self, state: "OpenVinoInt8State", keep: Sequence[str] = ()):
        """The targets of the passed graph; `keep` names its nodes (sensitivity scores them)."""
        from volo_export.precision import openvino

        chosen = openvino.targets_in(state.edited, [t.node for t in state.int8.targets], self.selection(),
                                     state.origins)
        return [t for t in chosen if t.node not in set(keep)]

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> Built:
        from volo_export.precision import openvino

        state = prepared.state
        chosen = self._edited_targets(state, keep)
        model = openvino.build(state.edited, chosen, state.int8.ranges)
        return Built(model, list(state.int8.excluded), {"quantized_nodes": str(len(chosen))})

    def sensitivity(self, fp32, prepared: Prepared) -> dict[str, float]:
        from volo_export.precision.fallback import node_sensitivity
        from volo_export.runtime.base import batch_range_of

        state = prepared.state
        index, _ = batch_range_of(fp32).chunks(len(state.int8.samples), 8)[0]
        return node_sensitivity(state.edited, self._edited_targets(state), state.int8.ranges,
                                state.int8.samples[index])

    def runner(self, model, info=None):
        return openvino_gate_runner(model, info)


@dataclass
class OpenVinoInt8State:
    """The INT8 measurements (names of the FP32 graph; ranges also under the names the passes gave), the
    passed graph the OpenVINO form quantises and {its new nodes: the FP32 node each is part of}."""

    int8: Int8State
    edited: object
    origins: dict[str, str]


class Bf16Target(PrecisionTarget):
    """BF16 as an inference hint: the FP32 graph unchanged, metadata `inference_precision: bf16`. CPU
    runtimes that honour it compute in bfloat16 (OpenVINO's INFERENCE_PRECISION_HINT; ONNX Runtime has
    no bf16 CPU kernels and computes it in float32, saying so). Gated in OpenVINO with the hint, so the
    gate judges the bf16 arithmetic. Refused where the CPU has no AVX512_BF16 or AMX-BF16.

    Whether it is faster is the CPU's business, measured by `volo-export bench`: 1.70x ONNX Runtime
    FP32 on an AVX-512 AMD EPYC, 0.56-0.73x on an AVX512_BF16 Intel Xeon without AMX (docs/CPU.md)."""

    precision, name, describe = "bf16", "cpu", "float32 graph with a bf16 inference hint for CPU runtimes"
    gate_runtime = "OpenVINO CPU (bf16)"

    def require(self) -> None:
        from volo_export.runtime.openvino_runner import check_bf16_cpu, import_openvino

        check_bf16_cpu()
        import_openvino()

    def prepare(self, fp32, job: Job) -> Prepared:
        return Prepared(None, extra={"inference_precision": "bf16"})

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> Built:
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(fp32)
        return Built(model, [])

    def runner(self, model, info=None):
        return openvino_gate_runner(model, info)  # precision bf16: the bf16 hint (openvino_runner.HINTS)


def openvino_gate_runner(model, info=None):
    """OpenVINO on the CPU for a lowered ModelProto not written yet (no model cache for it), compiled with
    the hint of its precision (`info`, the lowered metadata; None: read from `model`) for the batch the
    lowered gate runs (HELDOUT_PLAN), so no compile is spent on another size."""
    from volo_export.export.metadata import read_info
    from volo_export.gate.inputs import HELDOUT_PLAN
    from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

    settings = OpenVinoSettings(cache=False, batch=HELDOUT_PLAN.batch_sizes[-1])
    return OpenVinoRunner(model.SerializeToString(), settings, info=info or read_info(model))


PRECISIONS = ("fp32", "fp16", "int8", "bf16")
TARGET_NAMES = ("tensorrt", "cpu", "openvino")
# The form each precision takes when no --target is given.
DEFAULT_TARGET = {"fp32": "tensorrt", "fp16": "tensorrt", "int8": "tensorrt", "bf16": "cpu"}
# Pairs that do not exist, with the reason the user gets.
_REFUSED = {
    ("fp16", "cpu"): "--target cpu is for int8: ONNX Runtime CPU has no fast float16 kernels, so the FP16 graph "
                     "is TensorRT's (it still runs and is validated on CPU)",
    ("fp16", "openvino"): "--target openvino is for int8: OpenVINO runs the FP16 graph with float32 kernels (no "
                          "faster than FP32; measured); use --precision bf16 or int8 for OpenVINO",
    ("bf16", "tensorrt"): "--precision bf16 is an inference hint for CPU runtimes (--target cpu, the default for bf16)",
    ("bf16", "openvino"): "--precision bf16 has one form, a float32 graph with a bf16 hint (--target cpu, the "
                          "default for bf16); OpenVINO honours it",
}


def int8_calibration_tensors(fp32, everything: dict[str, list] | None = None) -> list[str]:
    """The activations whose ranges any INT8 form needs, every form's in turn (first-use order), so that one
    calibration cache serves every --target. `everything`: {form name: its candidate targets} the caller has
    found already."""
    everything = everything or {}
    return list(dict.fromkeys(t for name in TARGET_NAMES
                              for t in precision_target("int8", name).calibration_tensors(fp32, everything.get(name))))


def precision_target(precision: str, target: str | None = None) -> PrecisionTarget:
    """The strategy that lowers FP32 to `precision` (fp16, int8, bf16) in the form for `target` (tensorrt,
    cpu, openvino; None: the precision's `DEFAULT_TARGET`)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    target = target or DEFAULT_TARGET[precision]
    if target not in TARGET_NAMES:
        raise UsageError(f"--target {target!r}: choose one of {', '.join(TARGET_NAMES)}")
    if (precision, target) in _REFUSED:
        raise UsageError(_REFUSED[precision, target])
    if precision == "fp16":
        return Fp16Target()
    if precision == "int8":
        return OpenVinoInt8Target() if target == "openvino" else Int8Target(target)
    if precision == "bf16":
        return Bf16Target()
    raise UsageError("--precision fp32 is the export itself; there is nothing to lower")
