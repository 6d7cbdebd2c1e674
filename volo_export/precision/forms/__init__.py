"""Every precision form, one module each, registered on import (`precision.form.register`), and the
lookups the rest of the package asks: which form lowers (precision, target), which precisions and
targets exist, which form an artifact's metadata names.

Adding a form is one module here (found by this package's import) plus its gate in
`volo_export.tolerances`."""

from __future__ import annotations

import importlib
import pkgutil

from volo_export.errors import UsageError
from volo_export.names import IoDtype, Precision, Target
from volo_export.precision.form import PrecisionForm, registered
from volo_export.precision.qdq_form import qdq_calibration_tensors

__all__ = ["artifact_form", "default_form", "form_for", "forms", "qdq_calibration_tensors", "lowered_precisions",
           "targets"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def forms() -> list[type[PrecisionForm]]:
    """Every form, in vocabulary order (precision, then target)."""
    return list(registered().values())


def lowered_precisions() -> list[Precision]:
    """The precisions a form lowers to (FP32, the export itself, has none)."""
    return list(dict.fromkeys(form.precision for form in forms()))


def targets() -> list[Target]:
    """Every --target some form is made for."""
    return [t for t in Target if any(form.target == t for form in forms())]


def default_form(precision: Precision | str) -> type[PrecisionForm]:
    """The form `--precision` gets without --target."""
    found = [f for f in forms() if f.precision == precision and f.default]
    if not found:
        raise UsageError(f"--precision {precision} is the export itself; there is nothing to lower"
                         if precision == Precision.FP32 else
                         f"--precision {str(precision)!r}: choose one of {', '.join(Precision)}")
    return found[0]


def form_for(precision: Precision | str, target: Target | str | None = None) -> PrecisionForm:
    """The form that lowers FP32 to `precision` for `target` (None: the precision's default form); a
    one-line UsageError for a precision, target or pair that does not exist."""
    if precision not in set(Precision):
        raise UsageError(f"--precision {str(precision)!r}: choose one of {', '.join(Precision)}")
    if target is not None and target not in set(targets()):
        raise UsageError(f"--target {target!r}: choose one of {', '.join(targets())}")
    default = default_form(precision)
    if target is None:
        return default()
    form = registered().get((Precision(precision), Target(target)))
    if form is None:
        raise UsageError(default.refused_targets.get(Target(target))
                         or f"--precision {precision} has no --target {target} form")
    return form()


def artifact_form(precision: str, target: str) -> type[PrecisionForm] | None:
    """The form an artifact's metadata (`precision`, `target`) names; None for FP32 or an unknown pair."""
    for form in forms():
        if form.precision == precision and form.stamp == target:
            return form
    return None


def precisions_where(flag: str) -> list[Precision]:
    """The precisions some form of which sets the boolean class attribute `flag` (for messages)."""
    return list(dict.fromkeys(f.precision for f in forms() if getattr(f, flag)))


def precisions_with_io_dtype(io_dtype: IoDtype | str) -> list[Precision]:
    """The precisions some form of which takes `--io-dtype io_dtype`."""
    return list(dict.fromkeys(f.precision for f in forms() if io_dtype in f.io_dtypes))


def precisions_with_targets() -> list[Precision]:
    """The precisions with more than one form: the ones --target chooses among."""
    counts = [f.precision for f in forms()]
    return [p for p in dict.fromkeys(counts) if counts.count(p) > 1]
