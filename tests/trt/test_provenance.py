"""The engine sidecar: written with the plan, read back, and compared with the running machine."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import onnx
import pytest

from helpers import build_environment, write_fake_engine
from volo_export.errors import EngineError, InputDataError
from volo_export.export.metadata import read_info, write_info
from volo_export.io import sha256_file
from volo_export.trt.config import BuildSettings
from volo_export.trt.provenance import (Environment, compatibility, cuda_version_from_int, ensure_compatible,
                                        parse_nvidia_smi, read_sidecar, sidecar_path, verify_plan_file,
                                        visible_gpu_index)

L4 = build_environment()  # TensorRT 10.13.0.35, CUDA 12.8, NVIDIA L4, sm_89


@pytest.fixture
def engine(tmp_path, tiny_onnx):
    return write_fake_engine(tiny_onnx, tmp_path / "tiny.engine", BuildSettings(max_batch=16, workspace_mib=512))


def test_sidecar_roundtrip(engine, tiny_onnx):
    assert sorted(p.name for p in engine.parent.iterdir()) == ["tiny.engine", "tiny.engine.json"]  # no leftovers
    assert engine.read_bytes().startswith(b"volo-export-test-plan:")  # the plan as given: nothing prepended
    prov = read_sidecar(engine)
    assert prov.format == "volo-export.engine/1"
    assert (prov.engine_file, prov.engine_bytes, prov.engine_sha256) == ("tiny.engine", 4096, sha256_file(engine))
    assert (prov.onnx_file, prov.onnx_sha256) == (tiny_onnx.name, sha256_file(tiny_onnx))
    assert prov.environment == L4
    assert prov.profile.batches == (1, 8, 16) and prov.profile.max == (16, 3, 64, 64)
    assert prov.build.max_batch == 16 and prov.build.workspace_mib == 512
    assert prov.build.trt_major == 10 and prov.build.network_flags == ("STRONGLY_TYPED",)
    assert "config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 536870912)" in prov.build.builder_calls
    assert prov.trtexec.startswith(f"trtexec --onnx={tiny_onnx}") and "--memPoolSize=workspace:512M" in prov.trtexec
    assert (prov.input_name, prov.output_name) == ("input", "logits")
    info = prov.info
    assert info == read_info(tiny_onnx)  # the model metadata travels unchanged
    assert (info.model, info.labels, info.num_classes) == ("volo_tiny_digits", "digits", 10)
    assert info.preprocessing.size == 64
    assert prov.calibration == {} and prov.volo_export_version
    datetime.fromisoformat(prov.created_utc)
    raw = json.loads(sidecar_path(engine).read_text())
    assert set(raw) == {"format", "engine", "onnx", "runtime", "environment", "build", "profile", "io", "trtexec",
                        "calibration", "metadata", "layers", "volo_export_version", "created_utc"}
    assert raw["runtime"] == {"product": "tensorrt", "version": "10.13.0.35", "compute_capabilities": [],
                              "targets": "the GPU it is built on"} and raw["layers"] is None
    assert raw["metadata"]["volo_export.model"] == "volo_tiny_digits"


def test_calibration_keys_reach_the_sidecar(tmp_path, tiny_onnx):
    proto = onnx.load(str(tiny_onnx))
    info = read_info(proto)
    extra = {"calibration_method": "entropy", "calibration_cache_sha256": "ab" * 32, "calib_images": "512",
             "other_key": "x"}
    write_info(proto, dataclasses.replace(info, precision="int8", extra=extra))
    onnx.save(proto, str(tmp_path / "int8.onnx"))
    prov = read_sidecar(write_fake_engine(tmp_path / "int8.onnx", tmp_path / "int8.engine"))
    assert prov.calibration == {"calib_images": "512", "calibration_cache_sha256": "ab" * 32,
                                "calibration_method": "entropy"}
    assert prov.info.precision == "int8"


def test_read_sidecar_errors(tmp_path, engine):
    with pytest.raises(InputDataError, match="has no sidecar nothing.engine.json beside it"):
        read_sidecar(tmp_path / "nothing.engine")
    side = sidecar_path(engine)
    good = side.read_text()
    side.write_text("{not json")
    with pytest.raises(InputDataError, match="is not valid JSON"):
        read_sidecar(engine)
    side.write_text(json.dumps({"format": "ultralytics"}))
    with pytest.raises(InputDataError, match="not a volo-export engine sidecar"):
        read_sidecar(engine)
    data = json.loads(good)
    del data["profile"]
    side.write_text(json.dumps(data))
    with pytest.raises(InputDataError, match="incomplete or damaged"):
        read_sidecar(engine)
    # the layer report is read when the sidecar is: a damaged one is refused here, not in a later `.fp8` or `mix()`
    for layers in ([1], {"layers": "many", "by_kind": {}}, {"layers": 3, "by_kind": {}, "by_precision": ["fp8"]}):
        side.write_text(json.dumps({**json.loads(good), "layers": layers}))
        with pytest.raises(InputDataError, match="incomplete or damaged"):
            read_sidecar(engine)


def test_verify_plan_file(tmp_path, engine):
    prov = read_sidecar(engine)
    verify_plan_file(engine, prov)
    plan = engine.read_bytes()
    engine.write_bytes(plan[:-1] + b"x")  # same size, other content
    with pytest.raises(InputDataError, match=r"does not match its sidecar \(sha256 differs\)"):
        verify_plan_file(engine, prov)
    engine.write_bytes(plan + b"tail")
    with pytest.raises(InputDataError, match=r"\(size differs\)"):
        verify_plan_file(engine, prov)
    engine.write_bytes(b"<html>404</html>")
    with pytest.raises(InputDataError, match="16 bytes: too small to be a TensorRT plan"):
        verify_plan_file(engine, prov)


def _prov(engine, **build):
    prov = read_sidecar(engine)
    return dataclasses.replace(prov, build=dataclasses.replace(prov.build, **build))


def _errors(problems):
    return [p.message for p in problems if p.severity == "error"]


def _warnings(problems):
    return [p.message for p in problems if p.severity == "warning"]


def test_same_machine_is_compatible(engine):
    assert compatibility(read_sidecar(engine), L4) == []
    assert ensure_compatible(read_sidecar(engine), L4) == []


def test_tensorrt_version_mismatches(engine):
    prov = read_sidecar(engine)
    (msg,) = _errors(compatibility(prov, dataclasses.replace(L4, tensorrt="11.1.0")))
    assert msg == ("tiny.engine was built with TensorRT 10.13.0.35 but this machine runs TensorRT 11.1.0: a plan "
                   "loads only on the TensorRT version that built it; rebuild here (volo-export engine) or build "
                   "with --version-compatible")
    patch = compatibility(prov, dataclasses.replace(L4, tensorrt="10.13.2.6"))
    assert not _errors(patch) and "same minor" in _warnings(patch)[0]
    (missing,) = _errors(compatibility(prov, dataclasses.replace(L4, tensorrt=None)))
    assert "needs TensorRT 10.13.0.35 but TensorRT is not installed here" in missing


def test_version_compatible_engines(engine):
    prov = _prov(engine, version_compatible=True)
    assert compatibility(prov, dataclasses.replace(L4, tensorrt="10.15.1")) == []
    older = _errors(compatibility(prov, dataclasses.replace(L4, tensorrt="10.8.0")))
    assert older and "version-compatible from TensorRT 10.13.0.35 on, within TensorRT 10.x" in older[0]
    assert _errors(compatibility(prov, dataclasses.replace(L4, tensorrt="11.1.0")))


def test_gpu_mismatches(engine):
    h100 = dataclasses.replace(L4, gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
    (msg,) = _errors(compatibility(read_sidecar(engine), h100))
    assert msg == ("tiny.engine was built on NVIDIA L4 (compute capability 8.9) but this is NVIDIA H100 80GB HBM3 "
                   "(compute capability 9.0): plans are specific to the GPU architecture; rebuild here or build "
                   "with --hardware-compat ampere-plus")
    assert compatibility(_prov(engine, hardware_compat="ampere-plus"), h100) == []
    t4 = dataclasses.replace(L4, gpu_name="Tesla T4", compute_capability="7.5")
    (old,) = _errors(compatibility(_prov(engine, hardware_compat="ampere-plus"), t4))
    assert "Ampere and newer (compute capability >= 8.0) but this GPU is Tesla T4 (compute capability 7.5)" in old
    (same_cc,) = _errors(compatibility(_prov(engine, hardware_compat="same-compute-capability"), h100))
    assert "ampere-plus" not in same_cc
    l40s = dataclasses.replace(L4, gpu_name="NVIDIA L40S")
    sibling = compatibility(read_sidecar(engine), l40s)
    assert not _errors(sibling) and "same compute capability" in _warnings(sibling)[0]
    (none,) = _errors(compatibility(read_sidecar(engine), dataclasses.replace(L4, compute_capability=None)))
    assert "needs an NVIDIA GPU but none is visible here" in none


def test_cuda_major_and_ensure_compatible(engine):
    prov = read_sidecar(engine)
    cuda13 = dataclasses.replace(L4, cuda_runtime="13.0")
    assert ensure_compatible(prov, cuda13) == [compatibility(prov, cuda13)[0].message]
    assert "CUDA 12.8" in ensure_compatible(prov, cuda13)[0]
    with pytest.raises(EngineError, match="built with TensorRT 10.13.0.35 but this machine runs TensorRT 11.1.0"):
        ensure_compatible(prov, dataclasses.replace(L4, tensorrt="11.1.0", compute_capability="9.0"))


def test_every_mismatch_message_is_one_line(engine):
    prov = read_sidecar(engine)
    others = [Environment(), dataclasses.replace(L4, tensorrt="11.0.0", compute_capability="7.0", cuda_runtime="13.1")]
    for env in others:
        problems = compatibility(prov, env)
        assert problems and all("\n" not in p.message for p in problems)


def test_environment_parsing():
    assert cuda_version_from_int(12080) == "12.8" and cuda_version_from_int(13000) == "13.0"
    assert cuda_version_from_int(0) is None
    assert parse_nvidia_smi("NVIDIA H100 80GB HBM3, 9.0, 570.86.15\nNVIDIA H100 80GB HBM3, 9.0, 570.86.15\n") == \
        ("NVIDIA H100 80GB HBM3", "9.0", "570.86.15")
    assert parse_nvidia_smi("Tesla K80, [N/A], 470.1\n") == ("Tesla K80", None, "470.1")
    assert parse_nvidia_smi("") == (None, None, None)
    assert visible_gpu_index(None) == "0" and visible_gpu_index("2,3") == "2"
    assert visible_gpu_index("") is None and visible_gpu_index("-1") is None
    assert Environment(tensorrt="10.13.0.35", compute_capability="8.9", gpu_name="NVIDIA L4").describe() == \
        "TensorRT 10.13.0.35 on NVIDIA L4 (sm_89)"
    assert Environment().describe() == "no TensorRT, no CUDA GPU"
    assert Environment(tensorrt_rtx="1.7.1.116").describe("tensorrt-rtx") == "TensorRT-RTX 1.7.1.116, no CUDA GPU"
