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
    inputs (held out from calibration), the calibration data (INT8 only) and where the output goes."""

    request: object  # convert.PrecisionRequest
    prep: Preprocessing
    inputs: list[InputSet]
    calibration: CalibrationData | None
    output: Path
    progress: Progress


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

    def prepare(self, fp32, job: Job) -> Prepared:
        raise NotImplementedError

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> "Built":
        raise NotImplementedError

    def sensitivity(self, fp32, prepared: Prepared) -> dict[str, float]:
        """{node: relative output error it alone adds}; larger goes back to float32 first."""
        raise NotImplementedError

    def runner(self, model):
        """The runner the gate judges the lowered `model` (ModelProto) with."""
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
      (`qkv`, `kv`) are then split into one MatMul per part (`projections.split_projections`), so
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

    def calibration_tensors(self, fp32) -> list[str]:
        """The activations whose ranges this form needs, when every candidate node is quantised."""
        from volo_export.precision.int8 import find_targets

        return self._tensors(fp32, find_targets(fp32, self.selection()))

    def prepare(self, fp32, job: Job) -> Prepared:
        from volo_export.calibration import calibrate
        from volo_export.precision.int8 import find_targets

        request = job.request
        everything = find_targets(fp32, self.selection())
        targets = find_targets(fp32, self.selection(request.exclude_nodes, request.exclude_op_types))
        if not targets:
            raise UsageError("nothing left to quantise: every MatMul/Gemm/Conv is excluded")
        # Every form's tensors, so one calibration cache serves --target tensorrt and cpu alike.
        tensors = list(dict.fromkeys(t for name in TARGET_NAMES for t in Int8Target(name).calibration_tensors(fp32)))
        ranges, message = calibrate(fp32, tensors, job.calibration, request.calib_method, job.prep,
                                    request.cache_path(job.output), job.progress)
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
            from volo_export.precision.projections import split_projections

            extra["split_projections"] = json.dumps(split_projections(model))
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


PRECISIONS = ("fp32", "fp16", "int8")
TARGET_NAMES = ("tensorrt", "cpu")
# Pairs that do not exist, with the reason the user gets.
_REFUSED = {
    ("fp16", "cpu"): "--target cpu is for int8: ONNX Runtime CPU has no fast float16 kernels, so the FP16 graph "
                     "is TensorRT's (it still runs and is validated on CPU)",
}


def precision_target(precision: str, target: str = "tensorrt") -> PrecisionTarget:
    """The strategy that lowers FP32 to `precision` (fp16, int8) in the form for `target` (tensorrt, cpu)."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if target not in TARGET_NAMES:
        raise UsageError(f"--target {target!r}: choose one of {', '.join(TARGET_NAMES)}")
    if (precision, target) in _REFUSED:
        raise UsageError(_REFUSED[precision, target])
    if precision == "fp16":
        return Fp16Target()
    if precision == "int8":
        return Int8Target(target)
    raise UsageError("--precision fp32 is the export itself; there is nothing to lower")
