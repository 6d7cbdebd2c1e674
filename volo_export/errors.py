"""Typed errors. Library code raises them; the CLI turns each into one line
and a non-zero exit code, so users never see a traceback for bad input."""

from __future__ import annotations


class VoloExportError(Exception):
    """Base class: the message is a complete one-line explanation for the user."""

    exit_code = 1


class UnknownModelError(VoloExportError):
    """A model name that is not in the variant registry."""

    exit_code = 2


class UsageError(VoloExportError):
    """An invalid option or combination of options."""

    exit_code = 2


class CheckpointError(VoloExportError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


class InputDataError(VoloExportError):
    """An image, tensor file or folder that cannot be used."""


class ExportError(VoloExportError):
    """torch -> ONNX export failed or produced an unusable graph."""


class ValidationFailed(VoloExportError):
    """An artifact's outputs differ from eager PyTorch beyond tolerance."""

    exit_code = 3

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report  # the failed gate's Report, for the CLI to show


class TensorRTCheckFailed(VoloExportError):
    """An ONNX graph breaks a rule of TensorRT's ONNX parser (offline check)."""

    exit_code = 4


class EngineError(VoloExportError):
    """A TensorRT engine that cannot be built, or cannot be loaded or run on this machine."""
