"""volo-export's offline check agrees with the real ONNX parser: every graph of the corpus
(parser_corpus.py, one per rule) gets its recorded verdict from `check_model`, and, where TensorRT-RTX
is installed, from the real parser + an ahead-of-time build through the project's own build code.
A graph the check passes and the real parser rejects fails the test; every other difference is written
down in the corpus with its source."""

from __future__ import annotations

import onnx
import pytest

from parser_corpus import CASES
from volo_export.errors import EngineError, TensorRTCheckFailed
from volo_export.trt.build import build_serialized
from volo_export.trt.check import check_model
from volo_export.trt.config import BuilderCall, BuildPlan, Ref, network_flags
from volo_export.trt.products import find_library

RTX = find_library("rtx")
needs_rtx = pytest.mark.skipif(RTX is None, reason="TensorRT-RTX is not installed (pip install -e \".[rtx]\")")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for name, case in CASES.items():
        onnx.save(case.build(), str(folder / f"{name}.onnx"))
    return folder


def offline_verdict(path) -> str:
    result = check_model(path)
    return "fail" if not result.passed else "plugin" if result.plugins else "pass"


def real_verdict(path, shape_inputs: dict) -> str:
    """ok / parse / build: the real parser and builder, driven by the project's build code."""
    calls = [BuilderCall("profile", "set_shape_input", (name, v, v, v)) for name, v in shape_inputs.items()]
    calls += [BuilderCall("config", "add_optimization_profile", (Ref("profile"),))] if calls else []
    plan = BuildPlan(RTX, network_flags(RTX), tuple(calls), None)
    try:
        build_serialized(RTX, path, plan)
    except TensorRTCheckFailed:
        return "parse"
    except EngineError:
        return "build"
    return "ok"


def test_every_difference_is_written_down():
    for name, case in CASES.items():
        assert not (case.check == "pass" and case.real != "ok"), f"{name}: check passes what the parser rejects"
        assert case.agrees or case.why, f"{name}: check and the real parser differ without a reason"
        assert case.agrees or case.why.startswith(("TensorRT 10.1 rejects, RTX accepts", "stricter on purpose"))
    assert sum(not c.agrees for c in CASES.values()) == 9  # the list in docs/TENSORRT_RTX.md


@pytest.mark.parametrize("name", list(CASES))
def test_offline_check(corpus, name):
    assert offline_verdict(corpus / f"{name}.onnx") == CASES[name].check


@needs_rtx
@pytest.mark.parametrize("name", list(CASES))
def test_real_parser_and_build(corpus, name):
    case, path = CASES[name], corpus / f"{name}.onnx"
    real = real_verdict(path, case.shape_inputs)
    assert not (offline_verdict(path) == "pass" and real != "ok"), f"{name}: check passes, {RTX.label} rejects"
    assert real == case.real
