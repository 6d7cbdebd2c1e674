"""runtime: provider options, batching within an artifact's batch range, and the TensorRT runner's
checks before TensorRT sees a plan (sidecar, plan file, machine, batch) -- on CPU, with the machine
and the engine session passed in as a fake GPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from helpers import build_environment, fake_session_factory, write_fake_engine
from volo_export.errors import EngineError, InputDataError, UsageError
from volo_export.runtime import open_runner, run_in_batches
from volo_export.runtime.base import BatchRange
from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner, default_cache_dir, provider_options
from volo_export.runtime.tensorrt_runner import TensorRTRunner
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


def test_tensorrt_ep_profile_from_the_shape_or_the_metadata(tmp_path, tiny_onnx):
    import onnx

    from volo_export.runtime.onnxruntime_runner import _default_profile

    assert _default_profile(tiny_onnx).max[1:] == (3, 64, 64)  # from the input's shape
    sizeless = onnx.load(tiny_onnx)
    for axis, name in ((2, "h"), (3, "w")):
        sizeless.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = name
    onnx.save(sizeless, tmp_path / "sizeless.onnx")
    assert _default_profile(tmp_path / "sizeless.onnx").max == (32, 3, 64, 64)  # from the metadata's size
    node = helper.make_node("Identity", ["x"], ["y"])
    foreign = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 96, 96])],
                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 96, 96])])
    onnx.save(helper.make_model(foreign), tmp_path / "foreign.onnx")  # no volo-export metadata
    assert _default_profile(tmp_path / "foreign.onnx").max[1:] == (3, 96, 96)
    foreign.input[0].type.tensor_type.shape.dim[3].dim_param = "w"
    onnx.save(helper.make_model(foreign), tmp_path / "unsized.onnx")
    assert _default_profile(tmp_path / "unsized.onnx") is None  # was InputDataError: no metadata


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


def test_run_in_batches_fills_static_batches_with_real_rows():
    runner = OnnxRuntimeRunner(_static_batch_model(4))
    assert runner.batch_range == BatchRange(4, 4)
    x = np.random.default_rng(0).standard_normal((7, 3, 2, 2)).astype(np.float32)
    out = run_in_batches(runner, x)  # 4 + 3 (the 3 repeat their own first row to make 4; extra output dropped)
    np.testing.assert_array_equal(out, x.reshape(7, 12))
    for size in (2, 0, -2):
        with pytest.raises(UsageError, match=f"batch {size} does not fit .* which takes batch exactly 4"):
            run_in_batches(runner, x, batch_size=size)


def test_run_in_batches_dynamic(tiny_onnx):
    runner = open_runner(tiny_onnx)
    assert isinstance(runner, OnnxRuntimeRunner) and runner.batch_range == BatchRange(1, None)
    assert runner.runtime == "onnxruntime-cpu" and "CPUExecutionProvider" in runner.describe()
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


def test_engine_runner_uses_sidecar_and_profile(engine, tiny_onnx):
    sessions = []
    runner = TensorRTRunner(engine, running=build_environment(), session=fake_session_factory(sessions))
    assert runner.info.model == "volo_tiny_digits" and runner.batch_range == BatchRange(1, 4)
    assert runner.describe() == "TensorRT 10.13.0.35 on NVIDIA L4" and runner.notices == []
    assert runner.runtime == "tensorrt"
    x = np.random.default_rng(2).standard_normal((3, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(runner(x), OnnxRuntimeRunner(tiny_onnx)(x))
    with pytest.raises(UsageError, match=r"batch 5 does not fit engine tiny.engine, which takes batch 1..4"):
        runner(np.zeros((5, 3, 64, 64), np.float32))
    out = run_in_batches(runner, np.concatenate([x, x, x]))  # 9 rows in chunks of at most 4
    assert out.shape == (9, 10) and sessions[0].batches == [3, 4, 4, 1]


def test_open_runner_picks_the_engine_runner(fake_gpu, engine):
    assert isinstance(open_runner(engine), TensorRTRunner) and len(fake_gpu.sessions) == 1


def test_engine_runner_refuses_before_tensorrt(engine, tmp_path):
    sessions = []

    def open_on(path=engine, **machine):
        running = dataclasses.replace(build_environment(), **machine)
        return TensorRTRunner(path, running=running, session=fake_session_factory(sessions))

    with pytest.raises(EngineError, match="built with TensorRT 10.13.0.35 but this machine runs TensorRT 11.1.0"):
        open_on(tensorrt="11.1.0")
    with pytest.raises(EngineError, match="compute capability 8.9"):
        open_on(compute_capability="9.0")
    assert sessions == []  # no plan was handed to TensorRT
    lonely = tmp_path / "lonely.engine"
    lonely.write_bytes(engine.read_bytes())
    with pytest.raises(InputDataError, match="has no sidecar lonely.engine.json"):
        open_on(lonely)


def test_plugins_from_sidecar_or_caller(tmp_path, tiny_onnx):
    plugin = tmp_path / "libp.so"
    plugin.write_bytes(b"\x7fELF")
    engine = write_fake_engine(tiny_onnx, tmp_path / "p.engine", BuildSettings(plugins=(plugin,)))
    sessions = []
    for plugins in ((), [Path("/elsewhere/libp.so")]):
        TensorRTRunner(engine, plugins, running=build_environment(), session=fake_session_factory(sessions))
    assert [s.plugins for s in sessions] == [[plugin], [Path("/elsewhere/libp.so")]]
