"""The real TensorRT path: build engines from this project's ONNX, compare them with eager PyTorch,
load plans with plain TensorRT, refuse mismatched sidecars. Needs TensorRT, Polygraphy and an NVIDIA
GPU; skipped (with the reason) everywhere else, including this project's development machines and CI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs an NVIDIA GPU stack; "
                                             "pip install tensorrt polygraphy)")
pytest.importorskip("polygraphy", reason="Polygraphy is not installed (pip install polygraphy)")

from volo_export.errors import EngineError, UsageError  # noqa: E402
from volo_export.runtime import open_runner  # noqa: E402
from volo_export.runtime.tensorrt_runner import TensorRTRunner  # noqa: E402
from volo_export.trt.build import EngineRequest, build_engine  # noqa: E402
from volo_export.trt.config import BuildSettings  # noqa: E402
from volo_export.trt.environment import running_environment  # noqa: E402
from volo_export.trt.provenance import read_sidecar, sidecar_path  # noqa: E402
from volo_export.validate import ValidateRequest, validate_artifact  # noqa: E402

if running_environment().compute_capability is None:
    pytest.skip("TensorRT is installed but no CUDA GPU is visible", allow_module_level=True)


@pytest.fixture(scope="module")
def tiny_engine(tmp_path_factory, tiny_onnx):
    out = tmp_path_factory.mktemp("engine") / "tiny.engine"
    build_engine(EngineRequest(tiny_onnx, out, BuildSettings(max_batch=8, timing_cache=out.with_suffix(".cache"))))
    return out


def test_tiny_engine_matches_eager(tiny_engine, tiny_checkpoint):
    prov = read_sidecar(tiny_engine)
    assert prov.environment == running_environment() and prov.profile.batches == (1, 8, 8)
    assert tiny_engine.with_suffix(".cache").stat().st_size > 0  # timing cache saved
    report = validate_artifact(ValidateRequest(tiny_engine, tiny_checkpoint))
    assert report.passed, report.failures
    assert max(c.max_abs / max(1.0, c.reference_scale) for c in report.comparisons) < 1e-2


def test_plan_loads_with_plain_tensorrt(tiny_engine):
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(tiny_engine.read_bytes())  # no header in front of the plan
    assert engine is not None and engine.num_io_tensors == 2
    lo, opt, hi = engine.get_tensor_profile_shape("input", 0)
    assert (tuple(lo), tuple(opt), tuple(hi)) == ((1, 3, 64, 64), (8, 3, 64, 64), (8, 3, 64, 64))


def test_engine_batches_and_profile(tiny_engine):
    runner = open_runner(tiny_engine)
    assert isinstance(runner, TensorRTRunner)
    assert runner.session.profile_shapes()[2] == (8, 3, 64, 64)
    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    full = runner(x)
    np.testing.assert_allclose(runner(x[:3]), full[:3], rtol=0, atol=1e-3 * max(1.0, np.abs(full).max()))
    with pytest.raises(UsageError, match="batch 9 does not fit"):
        runner(np.zeros((9, 3, 64, 64), np.float32))


def test_mismatched_sidecar_is_refused_before_deserializing(tmp_path, tiny_engine):
    engine = tmp_path / "moved.engine"
    engine.write_bytes(tiny_engine.read_bytes())
    data = json.loads(sidecar_path(tiny_engine).read_text())
    data["engine"]["file"] = engine.name
    data["environment"]["tensorrt"] = "9.3.0"
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(EngineError, match="built with TensorRT 9.3.0 but this machine runs TensorRT"):
        open_runner(engine)
    data["environment"]["tensorrt"] = running_environment().tensorrt
    data["environment"]["compute_capability"] = "5.0"
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(EngineError, match="compute capability 5.0"):
        open_runner(engine)


@pytest.mark.slow
def test_d1_engine_matches_eager(tmp_path_factory, d1_onnx_with_checkpoint):
    onnx_path, checkpoint = d1_onnx_with_checkpoint
    out = tmp_path_factory.mktemp("engine") / "d1.engine"
    result = build_engine(EngineRequest(onnx_path, out, BuildSettings(max_batch=16)))
    assert dataclasses.asdict(result.provenance.environment) == dataclasses.asdict(running_environment())
    report = validate_artifact(ValidateRequest(out, checkpoint))
    assert report.passed, report.failures
