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
never dropped. A new precision or runtime plugs in by adding a `Backend`
to `BACKENDS` with its producer function and runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from volo_export.bench.timing import Runner
from volo_export.errors import UsageError
from volo_export.export.to_onnx import ExportOptions

if TYPE_CHECKING:
    from volo_export.gate import Report

EAGER, ONNXRUNTIME = "eager", "onnxruntime"


@dataclass(frozen=True)
class BuildContext:
    """What producing and opening a backend needs: the loaded model (volo_export.models.checkpoint.LoadedModel),
    the thread count every backend uses, ONNX Runtime's graph optimization level and whether idle
    ONNX Runtime threads may busy-wait (see runtime.SessionSettings.spinning)."""

    loaded: object
    threads: int
    optimization: str = "all"
    spinning: bool = False


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    runtime: str  # EAGER or ONNXRUNTIME
    produce: Callable[[BuildContext, Path], "Report | None"] | None = None
    why_unavailable: Callable[[], str | None] = lambda: None
    precision: str = "fp32"


def _export(ctx: BuildContext, output: Path, options: ExportOptions) -> None:
    from volo_export.export.to_onnx import export_model, save_onnx
    from volo_export.io import atomic_output

    with atomic_output(output) as tmp:
        save_onnx(export_model(ctx.loaded, options)[0], tmp)


def produce_fp32(ctx: BuildContext, output: Path) -> None:
    """This project's FP32 export (exact outlook-attention rewrite, no Col2Im): what `volo-export onnx` writes."""
    _export(ctx, output, ExportOptions())


def produce_naive(ctx: BuildContext, output: Path) -> None:
    """The unmodified model through the stock dynamo exporter (unfold/fold -> Col2Im)."""
    _export(ctx, output, ExportOptions(rewrite=False))


def lowered_producer(precision: str, target: str = "tensorrt") -> Callable[[BuildContext, Path], "Report"]:
    """A producer of this project's FP16/INT8 artifact, calibrated and gated (against the eager model)
    on the real sample images that ship with the dependencies (`calibration.samples`), like `quantize`."""
    def produce(ctx: BuildContext, output: Path) -> "Report":
        import tempfile

        from volo_export.calibration.samples import write_samples
        from volo_export.errors import raise_if_failed
        from volo_export.export.to_onnx import export_model, save_onnx
        from volo_export.gate import eager_reference
        from volo_export.io import atomic_output
        from volo_export.precision.convert import PrecisionRequest, lower_precision, lowering_data

        fp32, info = export_model(ctx.loaded)
        with tempfile.TemporaryDirectory(prefix="volo-samples-") as tmp:
            calib, val = write_samples(info.model, Path(tmp))
            int8 = precision == "int8"
            request = PrecisionRequest(precision=precision, target=target, calib_data=str(calib) if int8 else None,
                                       calib_cache=Path(tmp) / "calib.json" if int8 else None)
            data = lowering_data(info.preprocessing, request, val)
            lowered = lower_precision(fp32, info, eager_reference(ctx.loaded.model), request, output, data)
        raise_if_failed(lowered.report, f"{output.name} failed its {precision} gate")
        with atomic_output(output) as tmp:
            save_onnx(lowered.model, tmp)
        return lowered.report

    return produce


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("eager", "eager PyTorch (torch.inference_mode), same thread count", EAGER),
    Backend("onnx-naive", "stock torch.onnx export of the unmodified model (Col2Im), ONNX Runtime CPU",
            ONNXRUNTIME, produce_naive),
    Backend("onnx-fp32", "volo-export FP32 ONNX (exact rewrite, TensorRT-safe), ONNX Runtime CPU",
            ONNXRUNTIME, produce_fp32),
    Backend("onnx-fp16", "volo-export FP16 ONNX, ONNX Runtime CPU", ONNXRUNTIME, lowered_producer("fp16"),
            precision="fp16"),
    Backend("onnx-int8", "volo-export INT8 ONNX (--target cpu), ONNX Runtime CPU", ONNXRUNTIME,
            lowered_producer("int8", "cpu"), precision="int8"),
    Backend("onnx-int8-trt", "volo-export INT8 ONNX (--target tensorrt, TensorRT Q/DQ), ONNX Runtime CPU",
            ONNXRUNTIME, lowered_producer("int8", "tensorrt"), precision="int8"),
)}

DEFAULT_BACKENDS = ("eager", "onnx-naive", "onnx-fp32", "onnx-fp16", "onnx-int8")


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
    if backend.runtime == ONNXRUNTIME:
        from volo_export.runtime.onnxruntime_runner import CPU_ONLY, OnnxRuntimeRunner, SessionSettings

        settings = SessionSettings(providers=CPU_ONLY, threads=ctx.threads, optimization=ctx.optimization,
                                   spinning=ctx.spinning)
        return OnnxRuntimeRunner(Path(artifact), settings)
    raise UsageError(f"backend {backend.name} ({backend.runtime}) cannot be opened here")


def eager_runner(model, threads: int) -> Runner:
    """The eager model as numpy -> numpy, with torch's intra-op pool set to `threads`."""
    import torch

    from volo_export.gate.reference import eager_predictor

    if threads > 0:
        torch.set_num_threads(threads)
    return eager_predictor(model)
