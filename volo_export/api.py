"""The Python API: the CLI's use cases as typed functions, re-exported from `volo_export`.

    import volo_export as ve

    result = ve.export("volo_tiny_digits", "tiny.onnx")                      # gated FP32 ONNX
    ve.quantize("tiny.onnx", "tiny_int8.onnx", precision="int8", calib_data="random")
    ve.check("tiny_int8.onnx")                                               # TensorRT's parser rules
    ve.build_engine("tiny_int8.onnx", "tiny.engine", runtime="rtx")          # no GPU needed
    runner = ve.load("tiny.onnx", runtime="onnxruntime")
    runner.predict(["digit.png"], top_k=3)                                   # labelled classes
    logits = runner(batch)                                                   # (N, 3, H, W) -> (N, classes)
    ve.validate("tiny_int8.onnx")                                            # vs eager PyTorch

Each function builds the same request dataclass the CLI builds (`pipeline.OnnxRequest`,
`trt.build.EngineRequest`, ...) and calls the same use case, so the gates, checks and atomic
writes are the CLI's. Precision, target and runtime are plain strings. Errors are the typed
exceptions of `volo_export.errors` (never `SystemExit`); each has the `exit_code` the CLI
would exit with:

    UsageError (2)          a bad option or combination, unknown model (UnknownModelError)
    InputDataError (1)      a file that is missing or unusable; CheckpointError (1) likewise for weights
    ValidationFailed (3)    a gate failed: nothing was written; `.report` is the gate's Report
    TensorRTCheckFailed (4) TensorRT's ONNX parser would reject the graph; `.report` says where
    EngineError (1)         an engine that cannot be built or run here; RuntimeUnavailable (1) likewise

Long work reports through `progress` (a `volo_export.progress.Progress`; silent by default).
Heavy libraries (torch, onnxruntime, TensorRT) are imported when a function runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from volo_export.errors import InputDataError
from volo_export.names import Precision
from volo_export.progress import SILENT, Progress

if TYPE_CHECKING:
    from volo_export.export.metadata import ArtifactInfo
    from volo_export.gate import Report
    from volo_export.pipeline import OnnxResult as ExportResult
    from volo_export.predict import Prediction
    from volo_export.runtime.base import BatchRange
    from volo_export.trt.build import EngineResult
    from volo_export.trt.check import CheckResult

__all__ = ["Runner", "build_engine", "check", "export", "load", "quantize", "validate"]

PathArg = Union[str, PathLike]


def _path(value: PathArg | None) -> Path | None:
    return None if value is None else Path(value)


def _precision_request(precision: str, target: str | None, calib_data: PathArg | None, calib_size: int,
                       calib_method: str, calib_cache: PathArg | None, io_dtype: str, exclude_nodes: Sequence[str],
                       exclude_op_types: Sequence[str], fallback: bool, validate_count: int,
                       min_cosine: float | None, min_top1: float | None, max_accuracy_drop: float | None,
                       high_precision: str | None):
    """The PrecisionRequest `volo-export onnx/quantize` builds from the same options."""
    from volo_export.precision.convert import PrecisionRequest
    from volo_export.tolerances import GateOverrides

    return PrecisionRequest(precision=precision, target=target, io_dtype=io_dtype, high_precision=high_precision,
                            calib_data=None if calib_data is None else str(calib_data), calib_size=calib_size,
                            calib_method=calib_method, calib_cache=_path(calib_cache),
                            exclude_nodes=tuple(exclude_nodes), exclude_op_types=tuple(exclude_op_types),
                            fallback=fallback, gate=GateOverrides(min_cosine, min_top1, max_accuracy_drop),
                            validate_count=validate_count)


def export(model: str, output: PathArg, *, checkpoint: PathArg | None = None, precision: str = Precision.FP32,
           target: str | None = None, calib_data: PathArg | None = None, calib_size: int = 256,
           calib_method: str = "minmax", calib_cache: PathArg | None = None, io_dtype: str = "float32",
           exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (), fallback: bool = True,
           validate_count: int = 64, opset: int = 20, batch: int | None = None, validate: bool = True,
           validate_images: PathArg | None = None, report: PathArg | None = None, min_cosine: float | None = None,
           min_top1: float | None = None, max_accuracy_drop: float | None = None, high_precision: str | None = None,
           progress: Progress = SILENT) -> ExportResult:
    """Export the registered VOLO `model` (`volo-export models`) to a gated ONNX file at `output`.

    The same use case as `volo-export onnx`: the checkpoint (official `.pth.tar`, timm
    `.pth/.bin/.safetensors`; None: bundled weights for volo_tiny_digits, random ones otherwise)
    -> eager model -> ONNX (outlook attention rewritten, no Col2Im) -> FP32 gate against eager
    PyTorch [-> `precision` "fp16" | "int8" | "fp8" | "bf16" with `target` "tensorrt" | "cpu" | "openvino"
    -> its gate] -> file. INT8 and FP8 need `calib_data`: a folder of images, a `.npy/.npz` of
    (N, 3, S, S) tensors, or "random" (pipeline tests only). `high_precision` ("fp16" | "fp32", TensorRT
    INT8/FP8 only; default fp16): what the unquantised part of the graph computes in. `batch`: a static batch (default
    dynamic). `min_cosine`, `min_top1`, `max_accuracy_drop` override single gate bounds
    (defaults: `volo_export.tolerances`). `report`: also write the gate report as JSON.

    Returns the `ExportResult` (`pipeline.OnnxResult`): `output`, `info` (the metadata written),
    `reports` (every gate, the written artifact's last: `.report`), `trt_check` (the offline
    TensorRT verdict), `notices`, `timings`. Raises ValidationFailed (nothing written) when a
    gate fails, UsageError / InputDataError / CheckpointError on bad input, before any export work.
    """
    from volo_export.export.to_onnx import ExportOptions
    from volo_export.pipeline import OnnxRequest, export_onnx

    request = OnnxRequest(
        model=model, output=Path(output), checkpoint=_path(checkpoint), export=ExportOptions(opset=opset, batch=batch),
        validate=validate, validate_images=_path(validate_images), report=_path(report),
        precision=_precision_request(precision, target, calib_data, calib_size, calib_method, calib_cache, io_dtype,
                                     exclude_nodes, exclude_op_types, fallback, validate_count, min_cosine, min_top1,
                                     max_accuracy_drop, high_precision))
    return export_onnx(request, progress)


def quantize(onnx: PathArg, output: PathArg, *, precision: str = Precision.INT8, target: str | None = None,
             checkpoint: PathArg | None = None, calib_data: PathArg | None = None, calib_size: int = 256,
             calib_method: str = "minmax", calib_cache: PathArg | None = None, io_dtype: str = "float32",
             exclude_nodes: Sequence[str] = (), exclude_op_types: Sequence[str] = (), fallback: bool = True,
             validate_count: int = 64, validate_images: PathArg | None = None, report: PathArg | None = None,
             min_cosine: float | None = None, min_top1: float | None = None, max_accuracy_drop: float | None = None,
             high_precision: str | None = None, progress: Progress = SILENT) -> ExportResult:
    """Convert an FP32 ONNX written by `export` to `precision` ("int8", "fp8", "fp16" or "bf16"), gated.

    The same use case as `volo-export quantize`. The gate compares with eager PyTorch rebuilt from
    `checkpoint` (or the bundled weights) when its sha256 matches the one recorded in `onnx`, else
    with the FP32 ONNX itself (the result's notices say so). Other arguments as in `export`.
    Returns an `ExportResult`; raises ValidationFailed (nothing written) when the gate fails.
    """
    from volo_export.pipeline import QuantizeRequest, quantize_onnx

    request = QuantizeRequest(
        source=Path(onnx), output=Path(output), checkpoint=_path(checkpoint), validate_images=_path(validate_images),
        report=_path(report),
        precision=_precision_request(precision, target, calib_data, calib_size, calib_method, calib_cache, io_dtype,
                                     exclude_nodes, exclude_op_types, fallback, validate_count, min_cosine, min_top1,
                                     max_accuracy_drop, high_precision))
    return quantize_onnx(request, progress)


def check(onnx: PathArg, *, trt: int = 10, real: bool | None = None, runtime: str = "auto",
          trtexec: bool = False) -> CheckResult:
    """Will TensorRT's ONNX parser take this graph? (`volo-export check`.)

    Offline rules of TensorRT `trt` (10, the stricter, or 11), plus the real parser of `runtime`
    ("auto": TensorRT, else TensorRT-RTX) when `real` is None and one is installed (True: it must
    be; False: never). Returns the passing `CheckResult` (`.summary()`, `.op_types`, `.real`);
    raises TensorRTCheckFailed carrying the failing one (`.report`), e.g. for `Col2Im`.
    """
    from volo_export.trt.check import check_artifact

    return check_artifact(Path(onnx), trt, trtexec, real, runtime)


def build_engine(onnx: PathArg, output: PathArg, *, runtime: str = "auto", model_name: str | None = None,
                 min_batch: int | None = None, opt_batch: int | None = None, max_batch: int | None = None,
                 workspace_mib: int | None = None, opt_level: int = 3, timing_cache: PathArg | None = None,
                 hardware_compat: str = "none", version_compatible: bool = False, plugins: Sequence[PathArg] = (),
                 compute_capabilities: Sequence[str] = (), strongly_typed: bool = True, check: bool = True,
                 progress: Progress = SILENT) -> EngineResult:
    """Build a TensorRT or TensorRT-RTX engine at `output` (.engine) + its `.engine.json` sidecar.

    The same use case as `volo-export engine`: the offline TensorRT check first (TensorRTCheckFailed
    on a graph the parser rejects), then the strongly typed build (precision from the graph) with a
    batch profile `min_batch/opt_batch/max_batch` (default 1/8/32). `runtime`: "tensorrt" (GPU
    machines), "rtx" (TensorRT-RTX: builds without a GPU; `compute_capabilities` like ("sm86",
    "sm89")) or "auto" (TensorRT if installed, else TensorRT-RTX). `model_name`: for a VOLO ONNX
    without volo-export metadata, the registered variant whose preprocessing and labels the
    sidecar records. Returns the `EngineResult` (`engine`, `sidecar`, `provenance`, `layers`,
    `notes`, `warnings`); both files are written or neither.
    """
    from volo_export.trt.build import EngineRequest, build_engine as build
    from volo_export.trt.config import BuildSettings

    settings = BuildSettings(min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                             workspace_mib=workspace_mib, opt_level=opt_level, timing_cache=_path(timing_cache),
                             hardware_compat=hardware_compat, version_compatible=version_compatible,
                             plugins=tuple(Path(p) for p in plugins), strongly_typed=strongly_typed,
                             runtime=runtime, compute_capabilities=tuple(compute_capabilities))
    return build(EngineRequest(Path(onnx), Path(output), settings, check, model_name), progress)


def validate(artifact: PathArg, *, checkpoint: PathArg | None = None, images: PathArg | None = None,
             runtime: str | None = None, plugins: Sequence[PathArg] = (), min_cosine: float | None = None,
             min_top1: float | None = None, max_accuracy_drop: float | None = None,
             progress: Progress = SILENT) -> Report:
    """Compare an artifact (.onnx or .engine) with eager PyTorch, as the export gate did (`volo-export validate`).

    The eager model is rebuilt from the artifact's metadata and `checkpoint` (its sha256 must match
    the one recorded at export; None: the bundled weights or the random seed it was exported with).
    `images`: a folder (default: photos shipped with scikit-image). `runtime`: "onnxruntime",
    "openvino", "tensorrt" or "auto" (None: by file type); the tolerance follows the artifact's
    precision and that runtime. Returns the passing gate `Report` (`.passed`, `.comparisons`, with
    cosine, top-1 agreement, max abs error); raises ValidationFailed carrying it otherwise.
    """
    from volo_export.tolerances import GateOverrides
    from volo_export.validate import ValidateRequest, validate_artifact

    request = ValidateRequest(Path(artifact), _path(checkpoint), _path(images), plugins=tuple(Path(p) for p in plugins),
                              gate=GateOverrides(min_cosine, min_top1, max_accuracy_drop), runtime=runtime)
    return validate_artifact(request, progress)


class Runner:
    """A loaded artifact (see `load`). `runner(batch)` runs preprocessed `(N, 3, H, W)` float32 input and
    returns `(N, classes)` logits; `runner.predict(images)` reads, preprocesses (with the artifact's own
    preprocessing) and classifies image files."""

    def __init__(self, runner, info: ArtifactInfo):
        self._runner = runner
        self.info = info  # what the artifact is: model, preprocessing, labels, precision (or what model_name said)

    @property
    def name(self) -> str:
        """The artifact's file."""
        return self._runner.name

    @property
    def runtime(self) -> str:
        """What executes it and where, e.g. "onnxruntime-cpu", "openvino-cpu", "tensorrt"."""
        return self._runner.runtime

    @property
    def notices(self) -> list[str]:
        """What the user should know about how it runs (e.g. bf16 computed in float32 here)."""
        return self._runner.notices

    @property
    def batch_range(self) -> BatchRange:
        """The batch sizes the artifact accepts (a static-batch ONNX or an engine profile limit them)."""
        return self._runner.batch_range

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(3, H, W) of one preprocessed image."""
        size = self.info.preprocessing.size
        return 3, size, size

    @property
    def labels(self) -> tuple[str, ...]:
        """One display name per class (ImageNet names, '0'..'9' for the digits, else indices)."""
        from volo_export.labels import class_names

        return class_names(self.info.labels, self.info.num_classes)

    def describe(self) -> str:
        """Runtime and device, e.g. "ONNX Runtime 1.22 CPUExecutionProvider"."""
        return self._runner.describe()

    def __call__(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """(N, 3, H, W) preprocessed float32 input -> (N, classes) float32 logits, run in batches the
        artifact accepts (`batch_size` at most per run; default: up to 32)."""
        from volo_export.runtime.base import run_in_batches

        array = np.asarray(batch)
        if array.ndim != 4 or array.shape[1:] != self.input_shape or not np.issubdtype(array.dtype, np.floating):
            raise InputDataError(f"{Path(self.name).name} takes float (N, {', '.join(map(str, self.input_shape))}) "
                                 f"input, got {array.dtype} {array.shape}")
        if len(array) == 0:
            raise InputDataError("an empty batch (N = 0)")
        return run_in_batches(self._runner, np.ascontiguousarray(array, dtype=np.float32), batch_size)

    def preprocess(self, images: PathArg | Sequence[PathArg]) -> np.ndarray:
        """Image files, folders (recursive) or glob patterns -> float32 (N, 3, H, W) with the artifact's
        own preprocessing (resize, crop, mean/std), as `predict` feeds it."""
        from volo_export.preprocess import expand_images, preprocess_paths

        return preprocess_paths(expand_images(_paths(images)), self.info.preprocessing)

    def predict(self, images: PathArg | Sequence[PathArg] | np.ndarray, top_k: int = 5,
                batch_size: int | None = None) -> list[Prediction]:
        """Top-`top_k` labelled classes per image, best first: one `Prediction` (`.file`, `.top`: ClassScore
        with `index`, `label`, `probability`, `logit`) per image. `images`: a file, folder or glob, a list
        of them, or an already preprocessed (N, 3, H, W) array (its rows are named "0", "1", ...)."""
        from volo_export.errors import UsageError
        from volo_export.predict import predict_files, top_k as rank

        if top_k < 1:
            raise UsageError(f"top_k must be >= 1, got {top_k}")
        if isinstance(images, np.ndarray):
            return rank(self(images, batch_size), self.labels, top_k, [str(i) for i in range(len(images))])
        from volo_export.preprocess import expand_images

        return predict_files(self._runner, expand_images(_paths(images)), top_k, batch_size, self.info)

    def __repr__(self) -> str:
        return f"Runner({Path(self.name).name!r}, {self.info.model}, {self.info.precision}, {self.runtime})"


def _paths(images: PathArg | Sequence[PathArg]) -> list[Path]:
    return [Path(images)] if isinstance(images, (str, PathLike)) else [Path(p) for p in images]


def load(path: PathArg, *, runtime: str = "auto", model_name: str | None = None, batch: int | None = None,
         threads: int | None = None, plugins: Sequence[PathArg] = (), progress: Progress = SILENT) -> Runner:
    """Open an artifact for inference: .onnx (ONNX Runtime or OpenVINO) or .engine (TensorRT, with its sidecar).

    `runtime`: "auto" (an engine: TensorRT; an .onnx: a GPU provider if ONNX Runtime has one, else the
    fastest CPU runtime for this artifact, measured once at `batch` and cached), "onnxruntime",
    "openvino" or "tensorrt". `model_name`: for an ONNX without volo-export metadata, the registered
    variant whose preprocessing and labels to use. `batch`: the batch size you will mostly run
    (OpenVINO compiles for it, "auto" measures at it; default 8). `threads`: intra-op threads
    (default: the runtime's).
    """
    from volo_export.export.metadata import info_or_variant
    from volo_export.runtime import SessionSettings, open_runner

    settings = SessionSettings() if threads is None else SessionSettings(threads=threads)
    runner = open_runner(Path(path), settings, plugins=tuple(Path(p) for p in plugins), runtime=runtime,
                         batch=batch or 8, progress=progress)
    return Runner(runner, info_or_variant(lambda: runner.info, model_name, runner.name,
                                          getattr(runner, "input_shape", None)))
