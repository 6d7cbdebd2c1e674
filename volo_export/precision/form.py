"""What a precision form is: one way to lower an FP32 graph to a precision, for one target.

A form is one class in its own module under `precision/forms/`, registered with `@register`.
It declares what the rest of the package asks about it (names, defaults, the options it takes
and refuses, how its result is gated and benchmarked) and lowers a graph in the steps
`convert.lower_precision` drives:

    prepare(fp32, job)           what the graph needs measured first (FP16: the activations that
                                 would overflow; INT8: calibrated ranges) -> Prepared
    build(fp32, prepared, keep)  the lowered graph with the nodes in `keep` left in float32 -> Built
    sensitivity(fp32, prepared)  per-node error, for the automatic fallback (`has_fallback` only)
    runner(model, info)          the runner its gate judges the lowered graph with

The registry (`register`, `registered`) lives here; `precision.forms` imports every form and
answers the lookups (`form_for`, `default_form`, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from volo_export.names import ANY_TARGET, CalibMethod, HighPrecision, IoDtype, Precision, Target
from volo_export.progress import Progress

if TYPE_CHECKING:  # onnx and numpy-backed modules: the CLI reads the registry for --help without importing numpy
    import onnx

    from volo_export.calibration.data import CalibrationData
    from volo_export.export.metadata import ArtifactInfo
    from volo_export.gate.inputs import InputSet
    from volo_export.models.variants import Preprocessing


@dataclass(frozen=True)
class FormOptions:
    """What a form's `prepare` reads from the user's request (`PrecisionRequest.form_options`)."""

    io_dtype: IoDtype = IoDtype.FLOAT32
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    calib_method: CalibMethod = CalibMethod.MINMAX
    calib_cache: Path | None = None  # where the calibration cache is read and written
    high_precision: HighPrecision | None = None  # --high-precision (None: the form's default)


@dataclass
class Job:
    """What a form's `prepare` may use: the user's options, the model's preprocessing, the gate's inputs
    (held out from calibration), the calibration data (forms that need it), and the FP32 graph's hash
    (`graph_sha256`, computed once per lowering)."""

    options: FormOptions
    prep: Preprocessing
    inputs: list[InputSet]
    calibration: CalibrationData | None
    progress: Progress
    fp32_sha256: str


State = TypeVar("State")


@dataclass
class Prepared(Generic[State]):
    """A form's measurements of the FP32 graph (`state`, of the form's own state type), its metadata
    additions and notes for the report."""

    state: State
    extra: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Built:
    """A lowered graph, what stayed float32 (one line each, with the reason) and its metadata additions."""

    model: onnx.ModelProto
    kept: list[str]
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchEntry:
    """A `volo-export bench` backend a form yields: its artifact run by `runtime` (`Runtime.ONNXRUNTIME` or
    `Runtime.OPENVINO`). `needs`: the `runtime.openvino_runner` checks that must pass for it to run;
    `unavailable`: why it never runs as its precision (reported, not run); `default`: part of a plain
    `bench` run."""

    name: str
    description: str
    runtime: str
    needs: tuple[str, ...] = ()
    unavailable: str | None = None
    default: bool = False


class PrecisionForm:
    """Base of every form; see the module docstring. Subclasses set the class attributes."""

    precision: ClassVar[Precision]
    target: ClassVar[Target]  # the --target value
    default: ClassVar[bool] = False  # the form `--precision P` gets without --target
    describe: ClassVar[str] = ""
    stamp: ClassVar[str] = ANY_TARGET  # metadata `target`: which runtimes the graph is for
    # Other --target values of this precision that do not exist, with the reason (on the default form).
    refused_targets: ClassVar[Mapping[Target, str]] = {}
    needs_calibration: ClassVar[bool] = False
    accepts_exclusions: ClassVar[bool] = False  # --exclude-nodes / --exclude-op-types
    io_dtypes: ClassVar[tuple[IoDtype, ...]] = (IoDtype.FLOAT32,)
    # What the unquantised part of the graph may compute in (--high-precision), the default first; () for
    # forms without the choice.
    high_precisions: ClassVar[tuple[HighPrecision, ...]] = ()
    has_fallback: ClassVar[bool] = False
    tolerance: ClassVar[Precision]  # the key of its gate in `volo_export.tolerances`
    gate_runtime: ClassVar[str] = "ONNX Runtime CPU"  # what `runner` runs the gate on, for messages
    gate_optimization: ClassVar[str] = "all"  # ONNX Runtime optimisation level the gate runs the graph at
    gate_note: ClassVar[str | None] = None
    runs_only_on: ClassVar[str | None] = None  # a CPU-only graph: where it runs (TensorRT does not parse it)
    bench: ClassVar[tuple[BenchEntry, ...]] = ()

    @property
    def key(self) -> tuple[Precision, Target]:
        return Precision(self.precision), Target(self.target)

    def high_precision(self, requested: HighPrecision | None = None) -> HighPrecision | None:
        """The type the unquantised part gets: `requested` (checked by `PrecisionRequest`) or the default."""
        return requested or (self.high_precisions[0] if self.high_precisions else None)

    def require(self) -> None:
        """Raise a one-line error when this machine cannot build and gate this form (checked before any work)."""

    def prepare(self, fp32, job: Job) -> Prepared:
        raise NotImplementedError

    def build(self, fp32, prepared: Prepared, keep: Sequence[str] = ()) -> Built:
        raise NotImplementedError

    def sensitivity(self, fp32, prepared: Prepared) -> dict[str, float]:
        """{node: relative output error it alone adds}; larger goes back to float32 first."""
        raise NotImplementedError

    def runner(self, model, info: ArtifactInfo | None = None):
        """The runner the gate judges the lowered `model` (ModelProto) with; `info`: its metadata when
        `model` does not carry it yet (None: read from `model`)."""
        from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

        return OnnxRuntimeRunner(model.SerializeToString(),
                                 SessionSettings(providers=CPU_ONLY, optimization=self.gate_optimization))


_REGISTRY: dict[tuple[Precision, Target], type[PrecisionForm]] = {}


def register(form: type[PrecisionForm]) -> type[PrecisionForm]:
    """Class decorator: make `form` the one form of its (precision, target)."""
    key = (Precision(form.precision), Target(form.target))
    if key in _REGISTRY:
        raise ValueError(f"two precision forms for {key}: {_REGISTRY[key].__name__} and {form.__name__}")
    _REGISTRY[key] = form
    return form


def registered() -> dict[tuple[Precision, Target], type[PrecisionForm]]:
    """Every registered form by (precision, target), in vocabulary order (import `precision.forms` first)."""
    order = {(p, t): i for i, (p, t) in enumerate((p, t) for p in Precision for t in Target)}
    return dict(sorted(_REGISTRY.items(), key=lambda kv: order[kv[0]]))


def openvino_gate_runner(model, info: ArtifactInfo | None = None):
    """OpenVINO on the CPU for a lowered ModelProto not written yet (no model cache for it), compiled with
    the hint of its precision (`info`, the lowered metadata; None: read from `model`) for the batch the
    lowered gate runs (HELDOUT_PLAN), so no compile is spent on another size."""
    from volo_export.export.metadata import read_info
    from volo_export.gate.inputs import HELDOUT_PLAN
    from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

    settings = OpenVinoSettings(cache=False, batch=HELDOUT_PLAN.batch_sizes[-1])
    return OpenVinoRunner(model.SerializeToString(), settings, info=info or read_info(model))
