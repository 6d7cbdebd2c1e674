"""One inference API over this project's artifacts: `open_runner(path)(batch) -> logits`.

- `base`                 the Runner protocol, BatchRange (the one batch-fitting policy), run_in_batches
- `onnxruntime_runner`   .onnx in ONNX Runtime (session settings, providers, profiling)
- `openvino_runner`      .onnx in OpenVINO on the CPU (explicit precision hint, model cache)
- `tensorrt_runner`      .engine in TensorRT or TensorRT-RTX (the sidecar says which), after its sidecar
                         was checked against this machine
- `auto`                 `--runtime auto`: the fastest runtime for the artifact here, measured once, cached

A new runtime is one more runner module and one more branch in `open_runner`; its
tolerances go to `volo_export.tolerances`. The artifact's own metadata says how to
preprocess, so a file alone is enough to run it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from volo_export.artifact import ENGINE, artifact_kind
from volo_export.errors import InputDataError, UsageError
from volo_export.export.metadata import MissingMetadata
from volo_export.io import input_file
from volo_export.names import Precision, Runtime
from volo_export.progress import SILENT, Progress
from volo_export.runtime.base import BatchRange, Runner, run_in_batches
from volo_export.runtime.onnxruntime_runner import SessionSettings

__all__ = ["RUNTIMES", "BatchRange", "Runner", "SessionSettings", "open_runner", "run_in_batches"]

RUNTIMES = tuple(Runtime)
BF16_IN_FLOAT32 = ("{name} is a bf16 artifact, but ONNX Runtime's CPU provider has no bf16 kernels: it runs in "
                   "float32 here (bf16 arithmetic: --runtime openvino on a CPU with AVX512_BF16 or AMX)")


def open_runner(path: Path, settings: SessionSettings = SessionSettings(), plugins: Sequence[Path] = (),
                runtime: str | None = None, batch: int | None = None, progress: Progress = SILENT) -> Runner:
    """A runner for an artifact file in `runtime` (RUNTIMES; None: by file type, .onnx in ONNX Runtime):

    - .engine/.plan/.trt: TensorRT (None, `auto` or `tensorrt`; other runtimes cannot read a plan);
    - .onnx: `onnxruntime` (`settings`: providers, threads), `openvino` (CPU, `settings.threads`),
      `tensorrt` (ONNX Runtime's TensorRT provider), `auto` (`runtime.auto`: GPU provider if ONNX
      Runtime has one, else the fastest CPU runtime measured at `batch`, cached).

    `batch`: the batch size the caller will run; `auto` measures at it, OpenVINO compiles for it.
    """
    path = Path(path)
    if runtime is not None and runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    kind = artifact_kind(path)
    if path.is_dir():
        raise InputDataError(f"model not found: {path} (a folder, not a file)")
    input_file(path, "model")
    if kind == ENGINE:
        if runtime not in (None, Runtime.AUTO, Runtime.TENSORRT):
            raise UsageError(f"{path.name} is a TensorRT engine: only --runtime tensorrt (or auto) runs it")
        from volo_export.runtime.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path, plugins)
    if runtime == Runtime.AUTO:
        return _auto(path, settings, batch, progress)
    if runtime == Runtime.TENSORRT:
        settings = dataclasses.replace(settings, providers=("TensorrtExecutionProvider",))
    return _open_onnx(path, Runtime.OPENVINO if runtime == Runtime.OPENVINO else Runtime.ONNXRUNTIME, settings, batch)


def _open_onnx(path: Path, runtime: str, settings: SessionSettings, batch: int | None) -> Runner:
    if runtime == Runtime.OPENVINO:
        from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

        return OpenVinoRunner(path, OpenVinoSettings(threads=settings.threads, batch=batch or 1))
    from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path, settings)
    try:
        bf16 = runner.info.precision == Precision.BF16
    except MissingMetadata:  # a foreign export
        bf16 = False
    if bf16:
        runner.notices.append(BF16_IN_FLOAT32.format(name=path.name))
    return runner


def _auto(path: Path, settings: SessionSettings, batch: int | None, progress: Progress) -> Runner:
    from volo_export.runtime import auto
    from volo_export.runtime.onnxruntime_runner import available_providers

    if settings.providers is None and any(p in auto.GPU_PROVIDERS for p in available_providers()):
        return _open_onnx(path, Runtime.ONNXRUNTIME, settings, batch)
    cpu_settings = settings if settings.providers else dataclasses.replace(settings, providers=("CPUExecutionProvider",))

    def open_one(name: str) -> Runner:
        return _open_onnx(path, name, cpu_settings, batch)

    runner, choice = auto.choose(path, open_one, settings.threads, batch, progress=progress)
    return auto.with_choice(runner, choice)
