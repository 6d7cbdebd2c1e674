"""The backends `volo-export bench` can time, and how each one is built.

A backend is produced in two steps so that it can be rebuilt cheaply in a
fresh process (for the peak-memory probe):

* `produce(ctx, output)` writes the backend's artifact (an ONNX file) from
  the eager model; None for backends that run the eager model itself.
* `open_backend(backend, ctx, artifact)` loads it as a runner
  `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`.

`why_unavailable()` says, before any work, why a backend cannot run here
(a missing library or stage); such backends are reported with that reason,
never dropped. A new precision or runtime plugs in by adding a `Backend`
to `BACKENDS` (or calling `register`) with its producer function.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from volo_export.bench import Runner
from volo_export.errors import UsageError

EAGER, ONNXRUNTIME, TENSORRT = "eager", "onnxruntime", "tensorrt"


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
    runtime: str  # EAGER, ONNXRUNTIME or TENSORRT
    produce: Callable[[BuildContext, Path], None] | None = None
    why_unavailable: Callable[[], str | None] = lambda: None
    precision: str = "fp32"


def _export(ctx: BuildContext, output: Path, *, rewrite: bool, note: str) -> None:
    """torch -> ONNX with or without the outlook-attention rewrite, with metadata, to `output`."""
    import dataclasses

    from volo_export.export.metadata import ArtifactInfo
    from volo_export.export.to_onnx import ExportOptions, finalize, save_onnx, torch_to_onnx

    loaded = ctx.loaded
    options = ExportOptions(rewrite=rewrite)
    info = ArtifactInfo.for_model(loaded.config, loaded.checkpoint_sha256, options.opset)
    info = dataclasses.replace(info, extra={**info.extra, "export": note})
    save_onnx(finalize(torch_to_onnx(loaded.model, options), info), output)


def produce_fp32(ctx: BuildContext, output: Path) -> None:
    """This project's FP32 export (exact outlook-attention rewrite, no Col2Im) — what `volo-export onnx` writes."""
    _export(ctx, output, rewrite=True, note="volo-export")


def produce_naive(ctx: BuildContext, output: Path) -> None:
    """The unmodified model through the stock dynamo exporter (unfold/fold -> Col2Im)."""
    _export(ctx, output, rewrite=False, note="naive (stock exporter, Col2Im)")


def _precision_missing() -> str | None:
    if importlib.util.find_spec("volo_export.precision") is None:
        return "volo_export.precision is not part of this installation (FP16/INT8 stage not merged)"
    return None


def _produce_lower_precision(precision: str, target: str = "cpu") -> Callable[[BuildContext, Path], None]:
    """A producer that converts this project's FP32 export with volo_export.precision.

    Contract with the precision stage: `volo_export.precision.bench_artifact(fp32: Path, precision: str,
    output: Path, loaded, target) -> None` writes the converted ONNX (INT8 calibrates as it sees fit;
    `target` is INT8's --target).
    """
    def produce(ctx: BuildContext, output: Path) -> None:
        import tempfile

        precision_stage = importlib.import_module("volo_export.precision")
        make = getattr(precision_stage, "bench_artifact", None)
        if make is None:
            raise UsageError("volo_export.precision has no bench_artifact(fp32, precision, output, loaded)")
        with tempfile.TemporaryDirectory(dir=output.parent) as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            produce_fp32(ctx, fp32)
            make(fp32, precision, output, ctx.loaded, target)

    return produce


def _tensorrt_missing() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt not installed"
    return "TensorRT engine benchmarking is not part of this installation (engine stage not merged)"


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add (or replace) a backend in the registry; returns it."""
    BACKENDS[backend.name] = backend
    return backend


for _b in (
    Backend("eager", "eager PyTorch (torch.inference_mode), same thread count", EAGER),
    Backend("onnx-naive", "stock torch.onnx export of the unmodified model (Col2Im), ONNX Runtime CPU",
            ONNXRUNTIME, produce_naive),
    Backend("onnx-fp32", "volo-export FP32 ONNX (exact rewrite, TensorRT-safe), ONNX Runtime CPU",
            ONNXRUNTIME, produce_fp32),
    Backend("onnx-fp16", "volo-export FP16 ONNX, ONNX Runtime CPU", ONNXRUNTIME, _produce_lower_precision("fp16"),
            _precision_missing, precision="fp16"),
    Backend("onnx-int8", "volo-export INT8 ONNX (--target cpu), ONNX Runtime CPU", ONNXRUNTIME,
            _produce_lower_precision("int8"), _precision_missing, precision="int8"),
    Backend("onnx-int8-trt", "volo-export INT8 ONNX (--target tensorrt, TensorRT Q/DQ), ONNX Runtime CPU",
            ONNXRUNTIME, _produce_lower_precision("int8", "tensorrt"), _precision_missing, precision="int8"),
    Backend("trt-fp16", "TensorRT FP16 engine", TENSORRT, why_unavailable=_tensorrt_missing, precision="fp16"),
    Backend("trt-int8", "TensorRT INT8 engine", TENSORRT, why_unavailable=_tensorrt_missing, precision="int8"),
):
    register(_b)

DEFAULT_BACKENDS = ("eager", "onnx-naive", "onnx-fp32", "onnx-fp16", "onnx-int8")


def resolve(names: list[str] | tuple[str, ...]) -> list[Backend]:
    """Backends by name, in the given order; an unknown name lists the known ones."""
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if len(set(names)) != len(names):
        raise UsageError(f"backend listed twice: {', '.join(names)}")
    return [BACKENDS[n] for n in names]


def open_backend(backend: Backend, ctx: BuildContext, artifact: Path | None) -> Runner:
    """A runner for a produced backend (eager: the loaded model itself)."""
    if backend.runtime == EAGER:
        return eager_runner(ctx.loaded.model, ctx.threads)
    if backend.runtime == ONNXRUNTIME:
        from volo_export.runtime import OnnxRuntimeRunner, SessionSettings

        settings = SessionSettings(providers=("CPUExecutionProvider",), threads=ctx.threads,
                                   optimization=ctx.optimization, spinning=ctx.spinning)
        return OnnxRuntimeRunner(Path(artifact), settings)
    raise UsageError(f"backend {backend.name} ({backend.runtime}) cannot be opened here")


def eager_runner(model, threads: int) -> Runner:
    """The eager model as numpy -> numpy, with torch's intra-op pool set to `threads`."""
    import torch

    from volo_export.validate import eager_predictor

    if threads > 0:
        torch.set_num_threads(threads)
    return eager_predictor(model)
