"""The precision-form registry: every form is complete, and everything that lists forms follows it."""

from __future__ import annotations

import re

import pytest

from volo_export.errors import UsageError
from volo_export.names import IoDtype, Precision, Target
from volo_export.precision.forms import default_form, form_for, forms, lowered_precisions, targets
from volo_export.tolerances import tolerance_for

FORMS = forms()


def test_the_registry_holds_each_form_of_today():
    assert [(f.precision, f.target) for f in FORMS] == [
        ("fp16", "tensorrt"), ("int8", "tensorrt"), ("int8", "cpu"), ("int8", "openvino"), ("fp8", "tensorrt"),
        ("bf16", "cpu")]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f"{f.precision}-{f.target}")
def test_every_form_is_complete(form):
    assert tolerance_for(form.tolerance).name == str(form.tolerance)  # its gate exists
    assert form.describe and form.gate_runtime
    assert IoDtype.FLOAT32 in form.io_dtypes
    assert form.bench, "a form yields at least one bench backend"
    assert isinstance(form_for(form.precision, form.target), form)


@pytest.mark.parametrize("precision", lowered_precisions())
def test_one_default_per_precision_and_a_reason_for_each_missing_target(precision):
    default = default_form(precision)
    assert default.default and [f for f in FORMS if f.precision == precision and f.default] == [default]
    for target in targets():
        if not any(f.precision == precision and f.target == target for f in FORMS):
            with pytest.raises(UsageError, match=re.escape(default.refused_targets[target])):
                form_for(precision, target)


def test_the_cli_and_bench_follow_the_registry():
    from volo_export.bench.backends import BACKENDS
    from volo_export.cli.options import Precision as PrecisionChoice, Target as TargetChoice

    assert [str(p) for p in PrecisionChoice] == [Precision.FP32, *lowered_precisions()]
    assert [str(t) for t in TargetChoice] == list(targets()) == list(Target)
    for form in FORMS:
        for entry in form.bench:
            backend = BACKENDS[entry.name]
            assert backend.precision == form.precision and backend.runtime == entry.runtime


def test_a_second_form_for_a_pair_is_refused():
    from volo_export.precision.form import register

    with pytest.raises(ValueError, match="two precision forms"):
        register(type("Again", (FORMS[0],), {}))
