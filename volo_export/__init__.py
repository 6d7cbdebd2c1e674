"""volo-export: PyTorch VOLO -> validated ONNX, FP16/INT8 and TensorRT engines.

The Python API (docs/API.md), loaded on first use so `import volo_export` stays instant:

    import volo_export as ve

    ve.export("volo_tiny_digits", "tiny.onnx")          # -> ExportResult (gated FP32 ONNX)
    runner = ve.load("tiny.onnx")                        # -> Runner
    runner.predict(["digit.png"], top_k=3)               # labelled classes

    export, quantize, check, build_engine, validate, load, Runner   (volo_export.api)
    ExportResult, EngineResult, CheckResult, Report, Prediction      (the results they return)
    VoloExportError and its subclasses                               (volo_export.errors)
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType

from volo_export.errors import (CheckpointError, EngineError, ExportError, InputDataError, RuntimeUnavailable,
                                TensorRTCheckFailed, UnknownModelError, UsageError, ValidationFailed,
                                VoloExportError)

# name -> (module, attribute): imported when first asked for (torch, onnx and the runtimes load then).
_LAZY = {
    "export": ("volo_export.api", "export"),
    "quantize": ("volo_export.api", "quantize"),
    "check": ("volo_export.api", "check"),
    "build_engine": ("volo_export.api", "build_engine"),
    "validate": ("volo_export.api", "validate"),
    "load": ("volo_export.api", "load"),
    "Runner": ("volo_export.api", "Runner"),
    "ExportResult": ("volo_export.pipeline", "OnnxResult"),
    "EngineResult": ("volo_export.trt.build", "EngineResult"),
    "CheckResult": ("volo_export.trt.check", "CheckResult"),
    "Report": ("volo_export.gate.report", "Report"),
    "Prediction": ("volo_export.predict", "Prediction"),
}

__all__ = sorted([*_LAZY, "CheckpointError", "EngineError", "ExportError", "InputDataError", "RuntimeUnavailable",
                  "TensorRTCheckFailed", "UnknownModelError", "UsageError", "ValidationFailed", "VoloExportError"])


class _Package(ModuleType):
    """`volo_export.export` and `volo_export.validate` are the API's functions, although subpackage/module
    of the same names exist: importing a submodule sets it as an attribute of its package, which would
    shadow the function. Those two attributes keep the function; the modules stay importable by their
    full names (`from volo_export.export.to_onnx import ...`, `sys.modules["volo_export.validate"]`)."""

    def __setattr__(self, name: str, value) -> None:
        if name in _LAZY and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    """PEP 562: the API's functions and result types, imported on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module 'volo_export' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
