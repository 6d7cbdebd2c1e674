"""Which TensorRT product builds and runs an engine, and TensorRT-RTX's own facts, without TensorRT:
flavour detection, `--runtime` choices, compute capabilities, the plan header, validity diagnostics,
runtime-cache paths and the sidecar's compatibility check for TensorRT-RTX engines."""

from __future__ import annotations

import dataclasses
import types

import pytest

from helpers import build_environment, fake_session_factory, write_fake_engine
from volo_export.errors import EngineError, UsageError
from volo_export.runtime.tensorrt_runner import TensorRTRunner
from volo_export.trt.config import BuildSettings
from volo_export.trt.products import (RTX, TENSORRT, Library, choice_note, find_library, fp8_capable,
                                      fp8_gpu_problem, fp8_targets, gpu_in_targets, parse_compute_capabilities,
                                      product_of, refuse_turing, refuse_unfit_targets, require_library, rtx_targets)
from volo_export.trt.provenance import compatibility, read_sidecar
from volo_export.trt.rtx import header_mismatch, read_plan_header, runtime_cache_path, validity_problem

RTX17 = Library.of(RTX, "1.7.1.116")


def importer(*installed: str):
    """An `import_module` stand-in: only the named modules (with a version) exist."""
    def load(name):
        if name not in installed:
            raise ImportError(name)
        return types.SimpleNamespace(__name__=name, __version__="1.7.1.116" if "rtx" in name else "10.13.0.35")
    return load


def test_product_detection_by_module():
    assert product_of(types.SimpleNamespace(__name__="tensorrt_rtx")).key == RTX
    assert product_of(types.SimpleNamespace(__name__="tensorrt")).key == TENSORRT
    assert product_of(types.SimpleNamespace(__name__="trt_shim", ComputeCapability=object)).key == RTX


@pytest.mark.parametrize("runtime,installed,expected", [
    ("auto", ("tensorrt", "tensorrt_rtx"), "TensorRT 10.13.0.35"),  # full TensorRT first
    ("auto", ("tensorrt_rtx",), "TensorRT-RTX 1.7.1.116"),
    ("rtx", ("tensorrt", "tensorrt_rtx"), "TensorRT-RTX 1.7.1.116"),
    ("tensorrt", ("tensorrt_rtx",), None),
    ("auto", (), None),
])
def test_find_library(runtime, installed, expected):
    library = find_library(runtime, importer(*installed))
    assert (library.label if library else None) == expected


def test_missing_products_and_the_auto_choice_are_one_line():
    with pytest.raises(EngineError, match=r"^Neither TensorRT nor TensorRT-RTX is installed here \(TensorRT: pip "):
        require_library("auto", importer())
    with pytest.raises(EngineError, match=r"^TensorRT-RTX is not installed here \(TensorRT-RTX: pip install -e"):
        require_library("rtx", importer("tensorrt"))
    rtx = find_library("auto", importer("tensorrt_rtx"))
    assert choice_note("auto", rtx) == ("--runtime auto: building with TensorRT-RTX 1.7.1.116 (TensorRT is not "
                                        "installed)")
    assert choice_note("rtx", rtx) is None


def test_compute_capability_spellings():
    assert parse_compute_capabilities(["sm86,SM_89", "8.9", "120", " sm121 "]) == ("sm86", "sm89", "sm120", "sm121")
    with pytest.raises(UsageError, match="--compute-capability 'sm90': TensorRT-RTX builds for sm75, sm80, sm86"):
        parse_compute_capabilities(["sm90"])
    refuse_turing(("sm75",), "fp16")
    with pytest.raises(UsageError, match="sm75 \\(Turing\\) cannot build a int8 graph: TensorRT-RTX has no FP32 GEMM"):
        refuse_turing(("sm86", "sm75"), "int8")


@pytest.mark.parametrize("cc,runs", [("7.5", False), ("8.0", False), ("8.6", False), ("8.7", False), ("8.9", True),
                                     ("9.0", True), ("10.0", True), ("12.0", True), ("12.1", True)])
def test_fp8_needs_compute_capability_8_9(cc, runs):
    assert fp8_capable(cc) is runs


def test_fp8_target_rule():
    """The rule beside the Turing one: TensorRT-RTX 1.7.1 answers an FP8 graph for sm75/sm80/sm86 with "Cannot compile
    for target(s) sm80, because the model contains HW-specific datatypes: fp8_e4m3"; we say it first, in one line."""
    assert fp8_targets() == ("sm89", "sm120", "sm121")
    refuse_unfit_targets(("sm89", "sm120"), "fp8", fp8=True)
    refuse_unfit_targets(("sm80", "sm86"), "int8", fp8=False)
    with pytest.raises(UsageError) as raised:
        refuse_unfit_targets(("sm89", "sm80", "sm86"), "fp8", fp8=True)
    assert str(raised.value) == ("--compute-capability sm80, sm86 cannot run an FP8 graph: FP8 needs compute capability "
                                 ">= 8.9 (Ada, Hopper, Blackwell); build for sm89, sm120, sm121, or export an int8 or "
                                 "fp16 graph for those GPUs")
    with pytest.raises(UsageError, match="^--compute-capability sm75 cannot run an FP8 graph"):  # not the Turing line
        refuse_unfit_targets(("sm75",), "fp16", fp8=True)  # a foreign graph: fp16 metadata, float8 Q/DQ
    with pytest.raises(UsageError, match="sm75 \\(Turing\\) cannot build a int8 graph"):
        refuse_unfit_targets(("sm75",), "int8", fp8=False)


def test_fp8_default_targets_for_tensorrt_rtx():
    """Without --compute-capability TensorRT-RTX builds an FP8 graph for its portable default without a word (the
    plan header still names 8.0 and 8.6): we build for the FP8 targets instead and say so."""
    targets, note = rtx_targets((), fp8=True)
    assert targets == ("sm89", "sm120", "sm121")
    assert note.startswith("FP8 graph: building for sm89, sm120, sm121 (compute capability >= 8.9 (Ada, Hopper, "
                           "Blackwell)) instead of TensorRT-RTX's portable default, whose 8.0 and 8.6 cannot run FP8")
    assert rtx_targets(("sm120",), fp8=True) == (("sm120",), None)
    assert rtx_targets((), fp8=False) == ((), None)


def test_fp8_gpu_problem_is_one_line_or_none():
    assert fp8_gpu_problem("8.6", "NVIDIA RTX A6000", "m.engine has FP8 layers", "use an int8 engine") == (
        "m.engine has FP8 layers, which need compute capability >= 8.9 (Ada, Hopper, Blackwell), but this GPU is "
        "NVIDIA RTX A6000 (compute capability 8.6): use an int8 engine")
    assert fp8_gpu_problem("8.0", None, "x", "y").endswith("but this GPU is a GPU (compute capability 8.0): y")
    assert fp8_gpu_problem("8.9", "NVIDIA L4", "x", "y") is None and fp8_gpu_problem("9.0", "H100", "x", "y") is None
    assert fp8_gpu_problem(None, None, "x", "y") is None  # no GPU known: other checks speak


@pytest.mark.parametrize("gpu,targets,runs", [
    ("8.9", None, True), ("12.0", None, True), ("12.1", None, True), ("13.0", None, True),
    ("9.0", None, False), ("7.5", None, False), ("8.7", None, False),  # H100/H200, Turing, Orin: not by default
    ("7.5", ["7.5", "8.6"], True), ("8.9", ["8.6"], False),
])
def test_gpu_in_targets(gpu, targets, runs):
    assert gpu_in_targets(gpu, targets) is runs


def _header(mask: int, version=(1, 7, 1, 116), size=4096) -> bytes:
    return (b"vtrt" + bytes(12) + size.to_bytes(8, "little") + bytes(version) + b"vtrt" + mask.to_bytes(8, "little")
            + bytes(24))


def test_plan_header():
    header = read_plan_header(_header(0x7E))  # the default build: 8.0 ... 12.1 + an architecture not in the enum
    assert header.compute_capabilities == ("8.0", "8.6", "8.9", "12.0", "12.1") and header.unknown_bits == 0x40
    assert header.version == (1, 7, 1, 116) and header.plan_bytes == 4096
    assert read_plan_header(b"\x00" * 64) is None and read_plan_header(b"vtrt") is None
    chosen = read_plan_header(_header(0x0C))
    assert header_mismatch(chosen, ["8.6", "8.9"]) is None and header_mismatch(chosen, []) is None
    assert header_mismatch(chosen, ["12.0"]) == ("the plan's header names compute capability 8.6, 8.9, but it was "
                                                 "built for 12.0")


def test_validity_diagnostics_are_one_line():
    assert validity_problem("VALID", 0, "e.engine") is None and validity_problem("SUBOPTIMAL", 0, "e") is None
    assert validity_problem("INVALID", 2, "e.engine") == ("TensorRT-RTX cannot load e.engine: it was not built for "
                                                          "this GPU's compute capability (rebuild with "
                                                          "--compute-capability for it)")
    both = validity_problem("INVALID", 1 | 4 | 256, "e.engine")
    assert "another TensorRT-RTX version" in both and "driver is too old" in both and "diagnostics 0x100" in both


def test_runtime_cache_path_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert runtime_cache_path("ab" * 32, "1.7.1.116") == \
        tmp_path / "volo-export" / "tensorrt-rtx" / f"{'ab' * 12}-1.7.1.116.runtime-cache"
    assert runtime_cache_path("cd" * 32, "1.8", root=tmp_path / "c").parent == tmp_path / "c"


# ----------------------------------------------------------------------- sidecar and runner


@pytest.fixture
def rtx_engine(tmp_path, tiny_onnx):
    settings = BuildSettings(max_batch=4, runtime="rtx", compute_capabilities=("sm86", "sm89"))
    cpu_only = dataclasses.replace(build_environment(), tensorrt=None, cuda_runtime=None, driver=None, gpu_name=None,
                                   compute_capability=None, tensorrt_rtx="1.7.1.116")
    return write_fake_engine(tiny_onnx, tmp_path / "rtx.engine", settings, cpu_only, RTX17)


def _running(**changes):
    """An RTX 4090 machine (sm_89) with TensorRT-RTX 1.7.1 and no full TensorRT, with `changes`."""
    rtx_4090 = dict(tensorrt=None, tensorrt_rtx="1.7.1.116", gpu_name="NVIDIA GeForce RTX 4090")
    return dataclasses.replace(build_environment(), **{**rtx_4090, **changes})


def test_rtx_sidecar_records_product_and_targets(rtx_engine):
    prov = read_sidecar(rtx_engine)
    assert prov.product == RTX and prov.product_version == "1.7.1.116"
    assert prov.compute_capabilities == ["8.6", "8.9"] and prov.trtexec == ""
    assert prov.runtime.targets == "compute capability 8.6, 8.9 (--compute-capability)"
    assert prov.environment.compute_capability is None  # built ahead of time, no GPU


@pytest.mark.parametrize("running,message", [
    (dict(tensorrt_rtx=None), "rtx.engine is a TensorRT-RTX 1.7.1.116 engine but TensorRT-RTX is not installed here"),
    (dict(tensorrt_rtx="1.8.0.10"), "built with TensorRT-RTX 1.7.1.116 but this machine runs TensorRT-RTX 1.8.0.10"),
    (dict(compute_capability=None), "needs an NVIDIA RTX GPU to run but none is visible here"),
    (dict(compute_capability="12.0"), "was built for compute capability 8.6, 8.9 but this GPU is NVIDIA GeForce RTX "
                                      "4090 (compute capability 12.0): rebuild with --compute-capability sm120"),
    (dict(compute_capability="9.0"), "TensorRT-RTX builds for RTX GPUs only (sm75, sm80, sm86, sm89, sm120, sm121); "
                                     "use TensorRT here"),
])
def test_rtx_compatibility(rtx_engine, running, message):
    problems = compatibility(read_sidecar(rtx_engine), _running(**running))
    assert [p.severity for p in problems] == ["error"] and message in problems[0].message
    assert "\n" not in problems[0].message


def _as_fp8(engine, how: str):
    """Mark the sidecar of `engine` as an FP8 engine's: by its metadata, or (a foreign ONNX) by its layer report."""
    import json

    from volo_export.trt.provenance import sidecar_path

    path = sidecar_path(engine)
    data = json.loads(path.read_text())
    if how == "metadata":
        data["metadata"]["volo_export.precision"] = "fp8"
    else:
        data["layers"] = {"layers": 3, "by_kind": {"GEMM": {"fp8": 1}}, "by_precision": {"fp8": 1, "fp16": 2}}
    path.write_text(json.dumps(data))
    return engine


@pytest.mark.parametrize("how", ["metadata", "layers"])
@pytest.mark.parametrize("cc,name", [("8.6", "NVIDIA GeForce RTX 3090"), ("8.0", "NVIDIA A100")])
def test_an_fp8_engine_refuses_an_older_gpu_in_one_line(tmp_path, tiny_onnx, how, cc, name):
    """TensorRT-RTX (built for sm86, sm89) and TensorRT (built on an H100): on a GPU below 8.9 the FP8 rule speaks,
    not the target or GPU mismatch, whose advice (rebuild for this GPU) could not help."""
    rtx = _as_fp8(write_fake_engine(tiny_onnx, tmp_path / "rtx.engine", BuildSettings(
        max_batch=4, runtime="rtx", compute_capabilities=("sm86", "sm89")), dataclasses.replace(
        build_environment(), tensorrt=None, compute_capability=None, tensorrt_rtx="1.7.1.116"), RTX17), how)
    h100 = dataclasses.replace(build_environment(), gpu_name="NVIDIA H100", compute_capability="9.0")
    trt = _as_fp8(write_fake_engine(tiny_onnx, tmp_path / "trt.engine", environment=h100), how)
    running = _running(compute_capability=cc, gpu_name=name)
    for engine, here in ((rtx, running), (trt, dataclasses.replace(running, tensorrt="10.13.0.35"))):
        prov = read_sidecar(engine)
        assert prov.fp8
        problems = compatibility(prov, here)
        assert [p.message for p in problems] == [
            f"{engine.name} has FP8 layers, which need compute capability >= 8.9 (Ada, Hopper, Blackwell), but this "
            f"GPU is {name} (compute capability {cc}): use an int8 or fp16 engine on this GPU"]
        with pytest.raises(EngineError, match=f"^{engine.name} has FP8 layers") as raised:
            TensorRTRunner(engine, running=here, session=fake_session_factory())
        assert "\n" not in str(raised.value)
    assert compatibility(read_sidecar(rtx), _running()) == []  # the RTX 4090 (8.9) runs it
    assert not read_sidecar(write_fake_engine(tiny_onnx, tmp_path / "plain.engine")).fp8


def test_rtx_runner_gets_a_runtime_cache_beside_the_engine_cache(rtx_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    sessions = []
    runner = TensorRTRunner(rtx_engine, running=_running(), session=fake_session_factory(sessions))
    prov = read_sidecar(rtx_engine)
    assert runner.runtime == "tensorrt-rtx" and runner.describe() == "TensorRT-RTX 1.7.1.116 on NVIDIA GeForce RTX 4090"
    assert runner.runtime_cache == runtime_cache_path(prov.engine_sha256, "1.7.1.116")
    assert runner.runtime_cache.parent == tmp_path / "xdg" / "volo-export" / "tensorrt-rtx"
    assert sessions[0].options == {"runtime_cache": runner.runtime_cache}
    assert runner.notices == []
