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
from volo_export.trt.products import (RTX, TENSORRT, Library, choice_note, find_library, gpu_in_targets,
                                      parse_compute_capabilities, product_of, refuse_turing, require_library)
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
