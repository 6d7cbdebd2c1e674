"""runtime: provider options, batching within an artifact's batch range, and the TensorRT runner's
checks before TensorRT sees a plan (sidecar, plan file, machine, batch) -- on CPU with a fake GPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import write_fake_engine
from volo_export.errors import EngineError, InputDataError, UsageError
from volo_export.runtime import (OnnxRuntimeRunner, TensorRTRunner, default_cache_dir, open_runner, provider_options,
                                 run_in_batches)
from volo_export.trt.config import BuildSettings, InputSpec, compute_profile


def test_provider_options_tensorrt_ep(tmp_path):
    profile = compute_profile(InputSpec("input", ("N", 3, 224, 224)), 224, BuildSettings())
    opts = provider_options(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                            profile, tmp_path)
    name, trt = opts[0]
    assert name == "TensorrtExecutionProvider" and opts[1:] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert trt["trt_fp16_enable"] is False and trt["trt_int8_enable"] is False  # precision is in the graph
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_timing_cache_enable"] and trt["trt_timing_cache_path"] == str(tmp_path)
    assert (trt["trt_profile_min_shapes"], trt["trt_profile_opt_shapes"], trt["trt_profile_max_shapes"]) == (
        "input:1x3x224x224", "input:8x3x224x224", "input:32x3x224x224")
    static = compute_profile(InputSpec("input", (4, 3, 224, 224)), 224, BuildSettings())
    assert "trt_profile_min_shapes" not in provider_options(["TensorrtExecutionProvider"], static)[0][1]
    assert provider_options(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_default_cache_dir_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "volo-export" / "ort-tensorrt"


def _static_batch_model(batch: int) -> bytes:
    """(batch, 3, 2, 2) -> flatten -> (batch, 12): each row's logits are its own pixels."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [batch, 12])
    graph = helper.make_graph([helper.make_node("Reshape", ["input", "shape"], ["logits"])], "static",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 2, 2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 12])], [shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_run_in_batches_pads_static_batches():
    runner = OnnxRuntimeRunner(_static_batch_model(4))
    assert runner.batch_range == (4, 4)
    x = np.random.default_rng(0).standard_normal((7, 3, 2, 2)).astype(np.float32)
    out = run_in_batches(runner, x)  # 4 + 3 (padded to 4, padding dropped)
    np.testing.assert_array_equal(out, x.reshape(7, 12))
    with pytest.raises(UsageError, match="batch 2 does not fit .* its batch is static \\(4\\)"):
        run_in_batches(runner, x, batch_size=2)


def test_run_in_batches_dynamic(tiny_onnx):
    runner = open_runner(tiny_onnx)
    assert isinstance(runner, OnnxRuntimeRunner) and runner.batch_range == (1, None)
    x = np.random.default_rng(1).standard_normal((5, 3, 64, 64)).astype(np.float32)
    whole = runner(x)
    np.testing.assert_allclose(run_in_batches(runner, x, batch_size=2), whole, rtol=0, atol=1e-5)


def test_open_runner_rejects_unknown_files(tmp_path):
    with pytest.raises(InputDataError, match="model not found"):
        open_runner(tmp_path / "x.onnx")
    (tmp_path / "x.pt").write_bytes(b"x")
    with pytest.raises(InputDataError,
                       match=r"unsupported artifact type '.pt' \(expected .onnx or .engine/.plan/.trt\)"):
        open_runner(tmp_path / "x.pt")


# ---------------------------------------------------------------- TensorRT runner


@pytest.fixture
def engine(tmp_path, tiny_onnx):
    return write_fake_engine(tiny_onnx, tmp_path / "tiny.engine", BuildSettings(max_batch=4))


def test_engine_runner_uses_sidecar_and_profile(fake_gpu, engine, tiny_onnx):
    runner = open_runner(engine)
    assert isinstance(runner, TensorRTRunner)
    assert runner.info.model == "volo_tiny_digits" and runner.batch_range == (1, 4)
    assert runner.providers == ["TensorRT 10.13.0.35 on NVIDIA L4"] and runner.notices == []
    x = np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(runner(x), OnnxRuntimeRunner(tiny_onnx)(x))
    with pytest.raises(UsageError, match=r"batch 5 is outside the engine tiny.engine's optimization profile "
                                         r"\(batch 1..4\)"):
        runner(np.zeros((5, 3, 64, 64), np.float32))
    out = run_in_batches(runner, np.concatenate([x, x, x]))  # 9 rows in chunks of at most 4
    assert out.shape == (9, 10) and fake_gpu.sessions[0].batches == [3, 4, 4, 1]


def test_engine_runner_refuses_before_tensorrt(fake_gpu, engine, tmp_path):
    fake_gpu.running = dataclasses.replace(fake_gpu.running, tensorrt="11.1.0")
    with pytest.raises(EngineError, match="built with TensorRT 10.13.0.35 but this machine runs TensorRT 11.1.0"):
        open_runner(engine)
    fake_gpu.running = dataclasses.replace(fake_gpu.running, tensorrt="10.13.0.35", compute_capability="9.0")
    with pytest.raises(EngineError, match="compute capability 8.9"):
        open_runner(engine)
    assert fake_gpu.sessions == []  # no plan was handed to TensorRT
    lonely = tmp_path / "lonely.engine"
    lonely.write_bytes(engine.read_bytes())
    with pytest.raises(InputDataError, match="has no sidecar lonely.engine.json"):
        open_runner(lonely)


def test_plugins_from_sidecar_or_caller(fake_gpu, tmp_path, tiny_onnx):
    plugin = tmp_path / "libp.so"
    plugin.write_bytes(b"\x7fELF")
    engine = write_fake_engine(tiny_onnx, tmp_path / "p.engine", BuildSettings(plugins=(plugin,)))
    open_runner(engine)
    open_runner(engine, plugins=[Path("/elsewhere/libp.so")])
    assert [s.plugins for s in fake_gpu.sessions] == [[plugin], [Path("/elsewhere/libp.so")]]
