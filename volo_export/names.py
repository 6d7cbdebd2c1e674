"""The names volo-export's requests, artifacts and runners use, defined once.

Each is a `StrEnum`: a member *is* its string (`Precision.INT8 == "int8"`, `Precision("int8")`
works), so plain strings from the command line, JSON or a Python caller construct and compare
with them. This module imports nothing but the standard library (the CLI reads it for `--help`).
"""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    """The arithmetic an artifact is made for (`--precision`, metadata `precision`)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    FP8 = "fp8"
    BF16 = "bf16"


class Target(StrEnum):
    """The runtime a lowered graph's form is made for (`--target`, metadata `target`)."""

    TENSORRT = "tensorrt"
    CPU = "cpu"
    OPENVINO = "openvino"


# Metadata `target` of a graph that runs everywhere (FP32, FP16, BF16).
ANY_TARGET = "any"


class HighPrecision(StrEnum):
    """What an INT8/FP8 TensorRT graph computes in where it is not quantised (`--high-precision`)."""

    FP16 = "fp16"
    FP32 = "fp32"


class Runtime(StrEnum):
    """What runs an artifact, as the user chooses it (`--runtime`)."""

    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    TENSORRT = "tensorrt"


class Executor(StrEnum):
    """What really executes a graph (`Runner.runtime`): it decides the arithmetic, so the tolerance."""

    ONNXRUNTIME_CPU = "onnxruntime-cpu"
    ONNXRUNTIME_CUDA = "onnxruntime-cuda"
    ONNXRUNTIME_TENSORRT = "onnxruntime-tensorrt"
    TENSORRT = "tensorrt"
    TENSORRT_RTX = "tensorrt-rtx"
    OPENVINO_CPU = "openvino-cpu"


# Executors that run an FP32 graph on NVIDIA tensor cores (TF32 by default).
GPU_EXECUTORS = (Executor.TENSORRT, Executor.TENSORRT_RTX, Executor.ONNXRUNTIME_TENSORRT, Executor.ONNXRUNTIME_CUDA)


class CalibMethod(StrEnum):
    """How calibration turns activation statistics into ranges (`--calib-method`)."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class IoDtype(StrEnum):
    """The element type of a graph's input and output (`--io-dtype`)."""

    FLOAT32 = "float32"
    FLOAT16 = "float16"
