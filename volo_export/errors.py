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


class RuntimeUnavailable(VoloExportError):
    """The runtime asked for (a library, an execution provider, a device) is not available here."""


class ServingError(VoloExportError):
    """A Triton server that cannot start, cannot be reached, or answered something unusable."""


class VerdictFailed(VoloExportError):
    """A check ran and said no. `report` is what it found, for the CLI to show before the message."""

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


class ValidationFailed(VerdictFailed):
    """An artifact's outputs differ from its reference beyond tolerance (`report`: the gate's Report)."""

    exit_code = 3


class TensorRTCheckFailed(VerdictFailed):
    """An ONNX graph breaks a rule of TensorRT's ONNX parser (`report`: the CheckResult, when there is one)."""

    exit_code = 4


class EngineError(VoloExportError):
    """A TensorRT engine that cannot be built, or cannot be loaded or run on this machine."""


def raise_if_failed(report, what: str) -> None:
    """The one place where a failed gate becomes an error: ValidationFailed naming `what` and the
    first failed bound, carrying the Report. Library functions return reports; use cases call this."""
    if not report.passed:
        raise ValidationFailed(f"{what}: {report.failures[0]}", report)


def first_line(error: BaseException | str, typed: bool = False) -> str:
    """An exception (or a library's logged message) as one line: the first non-blank line, or an
    exception's type name when its message is empty. `typed` puts the type name in front ("OSError: ...")."""
    line = next((s.strip() for s in str(error).splitlines() if s.strip()), "")
    name = "" if isinstance(error, str) else type(error).__name__
    if typed and name:
        return f"{name}: {line}" if line else name
    return line or name
