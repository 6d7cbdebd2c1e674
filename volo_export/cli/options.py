"""Options shared by several commands, defined once.

Single options are `Annotated` types. Groups of options that belong to one concern
(precision, gate overrides) are dataclasses whose fields are such types; `@bundles`
expands them into a command's options and hands the command one instance, which
turns itself into the library's request (`PrecisionOptions.request()`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export import names as names_
from volo_export.names import CalibMethod, HighPrecision, IoDtype, Runtime
from volo_export.precision import forms

ModelName = Annotated[str, typer.Option("--model", "-m", help="Registered variant, e.g. volo_d1_224.")]
Checkpoint = Annotated[Optional[Path], typer.Option(
    "--checkpoint", "-c", help="Official .pth.tar, timm .pth/.bin/.safetensors or a plain state dict. "
    "Without it the weights are random (bundled ones for volo_tiny_digits).")]
Output = Annotated[Path, typer.Option("--output", "-o", help="Where to write the artifact.")]


def _writable(path: Path | None) -> Path | None:
    """An output path checked before any work (a report that cannot be written fails now, not after
    minutes of export or benchmarking)."""
    from volo_export.errors import UsageError
    from volo_export.io import ensure_writable

    try:
        return None if path is None else ensure_writable(path)
    except UsageError as e:
        raise typer.BadParameter(str(e)) from None


ReportFile = Annotated[Optional[Path], typer.Option("--report", help="Also write the report as JSON.",
                                                    callback=_writable)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ValidateImages = Annotated[Optional[Path], typer.Option(
    help="Folder of images for the gate (default: photos shipped with scikit-image; for fp16/int8 also "
    "calibration images beyond --calib-size). Class folders named 0..N-1 give accuracy too.")]
Plugins = Annotated[Optional[list[Path]], typer.Option(
    "--plugins", help="TensorRT plugin library (.so/.dll) to load; repeat for several.")]
Artifact = Annotated[Path, typer.Option("--model", "-m", help="An artifact: .onnx (ONNX Runtime or OpenVINO) or "
                                        ".engine (TensorRT, with its .engine.json sidecar).")]


# The choices of --precision and --target: the precisions and targets of the registered forms.
Precision = StrEnum("Precision", {p.name: p.value for p in (names_.Precision.FP32, *forms.lowered_precisions())})
Target = StrEnum("Target", {t.name: t.value for t in forms.targets()})


RuntimeOption = Annotated[Optional[Runtime], typer.Option(
    help="What runs the artifact: onnxruntime (TensorRT EP > CUDA EP > CPU; the default for .onnx), openvino "
    "(CPU), tensorrt (the default for .engine; for an .onnx ONNX Runtime's TensorRT EP), auto (an .onnx: a "
    "GPU provider if ONNX Runtime has one, else the fastest CPU runtime for this artifact, measured once "
    "and cached).", show_default=False)]


def names(values: Optional[list[str]]) -> tuple[str, ...]:
    """Repeated and/or comma-separated option values -> names."""
    return tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())


@dataclass
class GateOptions:
    """Overrides of single bounds of the artifact's gate (defaults: volo_export/tolerances.py)."""

    min_cosine: Annotated[Optional[float], typer.Option(help="Gate override: minimum cosine vs the reference.")] = None
    min_top1: Annotated[Optional[float], typer.Option(help="Gate override: minimum top-1 agreement (0..1).")] = None
    max_accuracy_drop: Annotated[Optional[float], typer.Option(
        help="Gate override: largest top-1 accuracy drop vs FP32 (0.01 = 1 point), where images are labelled.")] = None

    def overrides(self):
        from volo_export.tolerances import GateOverrides

        return GateOverrides(self.min_cosine, self.min_top1, self.max_accuracy_drop)


@dataclass
class PrecisionOptions:
    """How to lower the graph's precision and calibrate it (`volo-export onnx` and `quantize`)."""

    precision: Annotated[Optional[Precision], typer.Option(
        help="fp32, fp16 (sensitive ops stay fp32), int8 (explicit Q/DQ), fp8 (float8 E4M3 Q/DQ for TensorRT on "
        "compute capability >= 8.9) or bf16 (the fp32 graph with a bf16 inference hint that OpenVINO honours; "
        "CPUs with AVX512_BF16/AMX); default: fp32 for onnx, int8 for quantize.", show_default=False)] = None
    target: Annotated[Optional[Target], typer.Option(
        help="int8 graph for: tensorrt (default; TensorRT-parseable Q/DQ, also runs on ONNX Runtime), cpu "
        "(fastest on ONNX Runtime CPU, CPU-only) or openvino (fastest on OpenVINO CPU, gated there). fp16: "
        "tensorrt; bf16: cpu.", show_default=False)] = None
    io_dtype: Annotated[IoDtype, typer.Option(help="fp16 graph input/output type.")] = IoDtype.FLOAT32
    high_precision: Annotated[Optional[HighPrecision], typer.Option(
        help="int8/fp8 for TensorRT: what the unquantised part computes in: fp16 (default; what TensorRT's "
        "strongly typed engines run fastest, nodes that overflow float16 stay fp32) or fp32.",
        show_default=False)] = None
    calib_data: Annotated[Optional[str], typer.Option(
        help="int8/fp8 calibration data: a folder of images (recursive), a .npy/.npz of (N,3,S,S) preprocessed "
        "tensors, or 'random' (pipeline tests only; stamped in the metadata).")] = None
    calib_size: Annotated[int, typer.Option(help="Calibration samples to use.")] = 256
    calib_method: Annotated[CalibMethod, typer.Option(help="Range method.")] = CalibMethod.MINMAX
    calib_cache: Annotated[Optional[Path], typer.Option(
        help="Calibration cache file (default: beside --output, <name>.calib.json); reused only when graph, "
        "data, preprocessing, method and size match.")] = None
    exclude_nodes: Annotated[Optional[list[str]], typer.Option(
        help="Node names to keep in float (comma-separated or repeated).")] = None
    exclude_op_types: Annotated[Optional[list[str]], typer.Option(
        help="Op types to keep in float: int8/fp8 MatMul/Gemm/Conv/ConvTranspose, fp16 any (comma-separated or "
        "repeated).")] = None
    fallback: Annotated[bool, typer.Option(
        help="int8/fp8: when the gate fails, leave the most sensitive layers unquantised until it passes.")] = True
    validate_count: Annotated[int, typer.Option(help="fp16/int8/fp8: held-out images the gate uses.")] = 64

    def request(self, gate: GateOptions, default: names_.Precision):
        from volo_export.precision.convert import PrecisionRequest

        return PrecisionRequest(precision=self.precision or default, target=self.target,
                                io_dtype=self.io_dtype, high_precision=self.high_precision,
                                calib_data=self.calib_data,
                                calib_size=self.calib_size, calib_method=self.calib_method,
                                calib_cache=self.calib_cache, exclude_nodes=names(self.exclude_nodes),
                                exclude_op_types=names(self.exclude_op_types), fallback=self.fallback,
                                gate=gate.overrides(), validate_count=self.validate_count)


def bundles(**groups: type):
    """Give a typer command option groups: each keyword names a parameter of the command whose type
    is one of the dataclasses above. Its fields become the command's options (in field order, where
    the parameter stands), and the command receives one instance of it."""
    def decorate(command):
        signature = inspect.signature(command, eval_str=True)
        params = []
        for p in signature.parameters.values():
            if p.name in groups:
                hints = typing.get_type_hints(groups[p.name], include_extras=True)
                params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                             annotation=hints[f.name]) for f in dataclasses.fields(groups[p.name])]
            else:
                params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(command)
        def expanded(**kwargs):
            for name, group in groups.items():
                kwargs[name] = group(**{f.name: kwargs.pop(f.name) for f in dataclasses.fields(group)})
            return command(**kwargs)

        expanded.__signature__ = signature.replace(parameters=params)
        expanded.__annotations__ = {p.name: p.annotation for p in params}
        return expanded

    return decorate


def integers(value: Optional[str], option: str) -> tuple[int, ...]:
    """A comma-separated option value ("1,4,16") -> integers; a one-line UsageError otherwise."""
    from volo_export.errors import UsageError

    try:
        return tuple(int(v) for v in names([value] if value else None))
    except ValueError:
        raise UsageError(f"{option} takes comma-separated integers, got {value!r}") from None


@dataclass
class BatchingOptions:
    """How Triton names, batches and runs a served model (`triton-repo` and `serve`)."""

    name: Annotated[Optional[str], typer.Option(
        help="Model name on the server (default: the artifact's file name without its suffix).")] = None
    max_batch: Annotated[Optional[int], typer.Option(
        help="Triton's max_batch_size (default: the artifact's limit, an engine's profile maximum, at most 32).",
        show_default=False)] = None
    preferred_batch: Annotated[Optional[str], typer.Option(
        help="Comma-separated batch sizes the dynamic batcher runs at once (default: an engine's profile "
        "opt and max; ONNX: the largest batch queued).", show_default=False)] = None
    dynamic_batching: Annotated[bool, typer.Option(help="Group concurrent requests into batches.")] = True
    max_queue_delay_us: Annotated[Optional[int], typer.Option(
        help="Microseconds the dynamic batcher waits for a fuller batch (default 1000).", show_default=False)] = None
    instances: Annotated[int, typer.Option(help="Model instances (execution slots) per device.")] = 1
    threads: Annotated[Optional[int], typer.Option(
        help="ONNX Runtime intra-op threads per instance (0 = all cores; default: the backend's).",
        show_default=False)] = None

    def settings(self, **more):
        from volo_export.serve.repository import DEFAULT_QUEUE_DELAY_US, RepoSettings

        delay = DEFAULT_QUEUE_DELAY_US if self.max_queue_delay_us is None else self.max_queue_delay_us
        return RepoSettings(name=self.name, max_batch=self.max_batch,
                            preferred_batch=integers(self.preferred_batch, "--preferred-batch"),
                            dynamic_batching=self.dynamic_batching, max_queue_delay_us=delay,
                            instances=self.instances, threads=self.threads, **more)
