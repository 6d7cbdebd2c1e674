"""The backends `volo-export bench` can time, and how each one is built.

A backend is produced in two steps so that it can be rebuilt cheaply in a
fresh process (for the peak-memory probe):

* `produce(ctx, output)` writes the backend's artifact (an ONNX file) from
  the eager model and returns its gate's Report where it has one (FP16/INT8);
  `produce` is None for backends that run the eager model itself.
* `open_backend(backend, ctx, artifact)` loads it as a runner
  (`volo_export.runtime`), `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`.

`why_unavailable()` says, before any work, why a backend cannot run here
(a missing optional library); such backends are reported with that reason,
never dropped. The lowered backends are the ones the precision forms yield
(`PrecisionForm.bench`); a new runtime plugs in with an `open_backend` branch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from volo_export.errors import UsageError
from volo_export.names import Precision, Runtime
from volo_export.precision import forms
from volo_export.precision.form import BenchEntry, PrecisionForm
from volo_export.timing import Runner

if TYPE_CHECKING:
    from volo_export.gate import Report
    from volo_export.models.checkpoint import LoadedModel

EAGER = "eager"  # the eager model itself: no artifact, no runtime


@dataclass(frozen=True)
class BuildContext:
    """What producing and opening a backend needs: the loaded model, the thread count every backend uses, ONNX Runtime's graph optimization level and whether idle
    ONNX Runtime threads may busy-wait (see runtime.SessionSettings.spinning)."""

    loaded: LoadedModel
    threads: int
    optimization: str = "all"
    spinning: bool = False

    @functools.cached_property
    def fp32(self):
        """(ModelProto, ArtifactInfo) of this project's FP32 export: exported once per run, shared by the
        onnx-fp32 backend and every lowered one."""
        from volo_export.export.to_onnx import export_model

        return export_model(self.loaded)

    @functools.cached_property
    def reference(self):
        """The eager model as the gates' reference (memoized outputs), shared by every lowered backend."""
        from volo_export.gate import eager_reference

        return eager_reference(self.loaded.model)


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    runtime: str  # EAGER, Runtime.ONNXRUNTIME or Runtime.OPENVINO
    produce: Callable[[BuildContext, Path], "Report | None"] | None = None
    why_unavailable: Callable[[], str | None] = lambda: None
    precision: Precision = Precision.FP32


def _save(proto, output: Path) -> None:
    from volo_export.export.to_onnx import save_onnx
    from volo_export.io import atomic_output

    with atomic_output(output) as tmp:
        save_onnx(proto, tmp)


def produce_fp32(ctx: BuildContext, output: Path) -> None:
    """This project's FP32 export (exact outlook-attention rewrite, no Col2Im): what `volo-export onnx` writes."""
    _save(ctx.fp32[0], output)


def produce_naive(ctx: BuildContext, output: Path) -> None:
    """The unmodified model through the stock dynamo exporter (unfold/fold -> Col2Im)."""
    from volo_export.export.to_onnx import ExportOptions, export_model

    _save(export_model(ctx.loaded, ExportOptions(rewrite=False))[0], output)


@functools.cache
def lowered_producer(precision: str, target: str | None = None) -> Callable[[BuildContext, Path], "Report"]:
    """A producer of this project's FP16/INT8/BF16 artifact, calibrated and gated (against the eager model)
    on the real sample images that ship with the dependencies (`calibration.samples`), like `quantize`.
    One function per (precision, target), so backends that run the same artifact share it; INT8
    backends of one run share one calibration cache beside their artifacts."""
    def produce(ctx: BuildContext, output: Path) -> "Report":
        import tempfile

        from volo_export.calibration.samples import write_samples
        from volo_export.errors import raise_if_failed
        from volo_export.precision.convert import PrecisionRequest, lower_precision, lowering_data
        from volo_export.precision.forms import form_for

        fp32, info = ctx.fp32
        with tempfile.TemporaryDirectory(prefix="volo-samples-") as tmp:
            calib, val = write_samples(info.model, Path(tmp))
            calibrated = form_for(precision, target).needs_calibration
            cache = output.parent / f"{info.model}.calib.json"
            request = PrecisionRequest(precision=precision, target=target,
                                       calib_data=str(calib) if calibrated else None,
                                       calib_cache=cache if calibrated else None)
            data = lowering_data(info.preprocessing, request, val)
            lowered = lower_precision(fp32, info, ctx.reference, request, output, data)
        raise_if_failed(lowered.report, f"{output.name} failed its {precision} gate")
        _save(lowered.model, output)
        return lowered.report

    return produce


def _unavailable_unless(*checks: str) -> Callable[[], str | None]:
    """why_unavailable for backends needing the named `runtime.openvino_runner` checks to pass (each raises
    RuntimeUnavailable with the one-line reason)."""
    def why() -> str | None:
        from volo_export.errors import RuntimeUnavailable
        from volo_export.runtime import openvino_runner

        for check in checks:
            try:
                getattr(openvino_runner, check)()
            except RuntimeUnavailable as e:
                return str(e)
        return None

    return why


def _form_backend(form: type[PrecisionForm], entry: BenchEntry) -> Backend:
    """The backend a precision form yields: its artifact (one producer per form) in the entry's runtime."""
    if entry.unavailable:
        def why() -> str | None:
            return entry.unavailable
    else:
        why = _unavailable_unless(*entry.needs)
    return Backend(entry.name, entry.description, entry.runtime, lowered_producer(form.precision, form.target),
                   why_unavailable=why, precision=form.precision)


_FIXED = (
    Backend("eager", "eager PyTorch (torch.inference_mode), same thread count", EAGER),
    Backend("onnx-naive", "stock torch.onnx export of the unmodified model (Col2Im), ONNX Runtime CPU",
            Runtime.ONNXRUNTIME, produce_naive),
    Backend("onnx-fp32", "volo-export FP32 ONNX (exact rewrite, TensorRT-safe), ONNX Runtime CPU",
            Runtime.ONNXRUNTIME, produce_fp32),
    Backend("openvino-fp32", "volo-export FP32 ONNX, OpenVINO CPU (f32 hint)", Runtime.OPENVINO, produce_fp32,
            why_unavailable=_unavailable_unless("import_openvino")),
)
_FIXED_DEFAULT = ("eager", "onnx-naive", "onnx-fp32", "openvino-fp32")
_FORM_ENTRIES = [(form, entry) for form in forms.forms() for entry in form.bench]
_RUNTIME_ORDER = (EAGER, Runtime.ONNXRUNTIME, Runtime.OPENVINO)


def _ordered(backends: list[Backend]) -> list[Backend]:
    """Grouped by runtime (eager, ONNX Runtime, OpenVINO), FP32 first, then the forms in registry order."""
    return sorted(backends, key=lambda b: _RUNTIME_ORDER.index(b.runtime))


BACKENDS: dict[str, Backend] = {b.name: b for b in _ordered(
    [*_FIXED, *(_form_backend(form, entry) for form, entry in _FORM_ENTRIES)])}
DEFAULT_BACKENDS = tuple(name for name in BACKENDS
                         if name in _FIXED_DEFAULT or any(e.default and e.name == name for _, e in _FORM_ENTRIES))
# The backend every "x onnx-fp32" ratio is relative to (the FP32 export users get, in ONNX Runtime).
BASELINE = "onnx-fp32"


def backends_for_runtime(runtime: str | None, registry: Mapping[str, Backend] = BACKENDS) -> tuple[str, ...]:
    """The default backends of one runtime (`bench --runtime`), with eager and the ONNX Runtime FP32
    baseline for the ratios; None or "auto": every default backend."""
    if runtime in (None, Runtime.AUTO):
        return DEFAULT_BACKENDS
    own = [n for n, b in registry.items() if b.runtime == runtime and n not in DEFAULT_BACKENDS]
    chosen = [n for n in DEFAULT_BACKENDS if registry[n].runtime in (EAGER, runtime) or n == BASELINE] + own
    if not any(registry[n].runtime == runtime for n in chosen):
        raise UsageError(f"no {runtime} backends in this benchmark; choose from {', '.join(registry)}")
    return tuple(dict.fromkeys(chosen))


def backends_named(names: list[str] | tuple[str, ...], registry: Mapping[str, Backend] = BACKENDS) -> list[Backend]:
    """Backends by name, in the given order; an unknown name lists the known ones."""
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise UsageError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(registry)}")
    if len(set(names)) != len(names):
        raise UsageError(f"backend listed twice: {', '.join(names)}")
    return [registry[n] for n in names]


def open_backend(backend: Backend, ctx: BuildContext, artifact: Path | None) -> Runner:
    """A runner for a produced backend (eager: the loaded model itself)."""
    if backend.runtime == EAGER:
        return eager_runner(ctx.loaded.model, ctx.threads)
    if backend.runtime == Runtime.ONNXRUNTIME:
        from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

        settings = SessionSettings(providers=CPU_ONLY, threads=ctx.threads, optimization=ctx.optimization,
                                   spinning=ctx.spinning)
        return OnnxRuntimeRunner(Path(artifact), settings)
    if backend.runtime == Runtime.OPENVINO:
        from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

        # No model cache: compile time is not measured, and temporary artifacts would leave blobs behind.
        return OpenVinoRunner(Path(artifact), OpenVinoSettings(threads=ctx.threads, cache=False))
    raise UsageError(f"backend {backend.name} ({backend.runtime}) cannot be opened here")


def eager_runner(model, threads: int) -> Runner:
    """The eager model as numpy -> numpy, with torch's intra-op pool set to `threads`."""
    import torch

    from volo_export.gate.reference import eager_predictor

    if threads > 0:
        torch.set_num_threads(threads)
    return eager_predictor(model)
