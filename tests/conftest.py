"""Shared fixtures: small VOLO configs and checkpoints written in the official formats."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from volo_export.models.variants import Preprocessing, VoloConfig, get_config
from volo_export.models.volo import VOLO, create_model


def small_config(name: str = "volo_d1_224", size: int | None = None, **overrides) -> VoloConfig:
    """A registered variant with one block per stage (same widths and heads), optionally at another size."""
    base = get_config(name)
    prep = base.preprocessing if size is None else dataclasses.replace(base.preprocessing, size=size)
    return dataclasses.replace(base, layers=(1, 1, 1, 1), preprocessing=prep, **overrides)


def randomize(model: VOLO, seed: int = 0) -> VOLO:
    """Weights that make every block matter (timm-style init leaves deep blocks near identity):
    matrices ~ N(0, 1/fan_in), biases and norm offsets ~ N(0, 0.05), embeddings ~ N(0, 0.5)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in ("pos_embed", "cls_token"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            elif p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                base = 1.0 if name.endswith("weight") else 0.0  # norm scales around 1
                p.copy_(base + torch.randn(p.shape, generator=g) * 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.fixture(scope="session")
def tiny_config() -> VoloConfig:
    return get_config("volo_tiny_digits")


@pytest.fixture(scope="session")
def tiny_model(tiny_config) -> VOLO:
    torch.manual_seed(0)
    return randomize(create_model(tiny_config))


@pytest.fixture(scope="session")
def tiny_state_dict(tiny_model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in tiny_model.state_dict().items()}


def tiny_preprocessing() -> Preprocessing:
    return get_config("volo_tiny_digits").preprocessing


@pytest.fixture(scope="session")
def tiny_trained():
    """The bundled, trained volo_tiny_digits (LoadedModel)."""
    from volo_export.models.checkpoint import load_model

    return load_model("volo_tiny_digits")


@pytest.fixture(scope="session")
def tiny_fp32(tiny_trained):
    """FP32 ONNX ModelProto (with metadata) of the trained tiny model, exported once per session."""
    from volo_export.export.metadata import ArtifactInfo
    from volo_export.export.to_onnx import ExportOptions, finalize, torch_to_onnx

    info = ArtifactInfo.for_model(tiny_trained.config, tiny_trained.checkpoint_sha256, 20)
    return finalize(torch_to_onnx(tiny_trained.model, ExportOptions()), info)


@pytest.fixture(scope="session")
def digits_folders(tmp_path_factory):
    """The digits calib and test splits written as class folders: (calib_dir, test_dir)."""
    from volo_export.datasets import write_image_folder

    root = tmp_path_factory.mktemp("digits")
    write_image_folder("calib", root / "calib")
    write_image_folder("test", root / "test")
    return root / "calib", root / "test"


def engine_sidecar(info, environment: dict | None = None, build: dict | None = None, **overrides) -> dict:
    """An `X.engine.json` shaped like volo_export.trt.provenance.EngineProvenance.to_dict(), for an
    engine of `info` (an ArtifactInfo) built with TensorRT 10.13 on an L4 (keys: examples/cpp/README.md)."""
    size = info.preprocessing.size
    sidecar = {
        "format": "volo-export.engine/1",
        "engine": {"file": "m.engine", "sha256": "0" * 64, "bytes": 4096},
        "onnx": {"file": "m.onnx", "sha256": "1" * 64},
        "environment": {"tensorrt": "10.13.0.35", "cuda_runtime": "12.8", "driver": "570.86",
                        "gpu_name": "NVIDIA L4", "compute_capability": "8.9", **(environment or {})},
        "build": {"min_batch": 1, "opt_batch": 4, "max_batch": 8, "hardware_compat": "none",
                  "version_compatible": False, "plugins": [], **(build or {})},
        "profile": {"input": "input", "min": [1, 3, size, size], "opt": [4, 3, size, size],
                    "max": [8, 3, size, size]},
        "io": {"input": "input", "output": "logits"},
        "trtexec": "trtexec --onnx=m.onnx --saveEngine=m.engine",
        "calibration": {},
        "metadata": dict(sorted(info.to_props().items())),
        "volo_export_version": "0.1.0",
        "created_utc": "2025-01-01T00:00:00+00:00",
    }
    sidecar.update(overrides)
    return sidecar


def build_cmake_project(source, build, *options: str, target: str | None = None):
    """Configure and build the CMake project `source` in `build` (Debug: it compiles about twice as
    fast as Release, and _GLIBCXX_ASSERTIONS checks bounds); skips when cmake or a compiler is absent."""
    import shutil
    import subprocess

    if shutil.which("cmake") is None or not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip(f"cmake and a C++17 compiler are needed to build {source.name}/")
    subprocess.run(["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Debug",
                    "-DCMAKE_CXX_FLAGS=-D_GLIBCXX_ASSERTIONS", *options], check=True, capture_output=True, text=True)
    command = ["cmake", "--build", str(build), "-j", "2"] + (["--target", target] if target else [])
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    return build
# --- artifacts shared by the TensorRT / runtime / predict / validate tests -------------------

@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_state_dict):
    """The randomized tiny model's weights as a plain state-dict file."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny_digits.pth"
    torch.save(tiny_state_dict, path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx_export(tmp_path_factory, tiny_checkpoint):
    """`volo-export onnx` on volo_tiny_digits (rewrite on, dynamic batch, metadata): (path, CLI output)."""
    from typer.testing import CliRunner

    from volo_export.cli import app

    out = tmp_path_factory.mktemp("onnx") / "tiny_digits.onnx"
    result = CliRunner().invoke(app, ["onnx", "--model", "volo_tiny_digits", "--checkpoint", str(tiny_checkpoint),
                                      "--output", str(out), "--no-validate"])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def tiny_onnx(tiny_onnx_export):
    return tiny_onnx_export[0]


@pytest.fixture(scope="session")
def tiny_naive_onnx(tmp_path_factory, tiny_model):
    """The naive export (no rewrite): F.fold becomes Col2Im."""
    import onnx

    from volo_export.export.to_onnx import ExportOptions, torch_to_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny_digits_naive.onnx"
    onnx.save(torch_to_onnx(tiny_model, ExportOptions(rewrite=False)), str(out))
    return out


@pytest.fixture(scope="session")
def tiny_fp16_onnx(tmp_path_factory, tiny_onnx):
    """FP16 conversion of the FP32 export with onnxruntime's converter (float32 I/O kept)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = tmp_path_factory.mktemp("onnx") / "tiny_digits_fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(tiny_onnx)), keep_io_types=True), str(out))
    return out


# --- a TensorRT stand-in for CPU tests: real sidecars, plans that name the ONNX to run ----------

FAKE_PLAN_MAGIC = b"volo-export-test-plan:"


def build_environment():
    """The machine the fake engines were 'built' on."""
    from volo_export.trt.provenance import Environment

    return Environment(tensorrt="10.13.0.35", cuda_runtime="12.8", driver="570.86.15", gpu_name="NVIDIA L4",
                       compute_capability="8.9")


def write_fake_engine(onnx_path, output, settings=None, environment=None, trt=10):
    """An engine file + sidecar written by volo-export's own writer. The 'plan' is not TensorRT's: it
    names the ONNX file, which the fake session runs in ONNX Runtime."""
    from volo_export.trt.build import EngineRequest, prepare, write_engine
    from volo_export.trt.config import BuildSettings, build_plan

    settings = settings or BuildSettings(max_batch=8)
    prepared = prepare(EngineRequest(onnx_path, output, settings))
    plan = (FAKE_PLAN_MAGIC + str(onnx_path).encode()).ljust(4096, b"\0")
    write_engine(prepared, build_plan(settings, prepared.profile, trt), plan, environment or build_environment())
    return output


class FakeGpu:
    """What `running_environment()` reports while the fixture is active; change `running` to simulate
    another machine. Sessions run the named ONNX with ONNX Runtime on CPU."""

    def __init__(self):
        self.running = build_environment()
        self.sessions: list = []


@pytest.fixture
def fake_gpu(monkeypatch):
    from volo_export.runtime import OnnxRuntimeRunner
    from volo_export.trt import environment, infer

    gpu = FakeGpu()

    class FakeSession:
        def __init__(self, plan: bytes, name: str, plugins=()):
            assert plan.startswith(FAKE_PLAN_MAGIC), "not a fake plan"
            from pathlib import Path

            self.onnx = OnnxRuntimeRunner(Path(plan[len(FAKE_PLAN_MAGIC):].rstrip(b"\0").decode()))
            self.name, self.plugins, self.batches = name, list(plugins), []
            gpu.sessions.append(self)

        def __call__(self, x):
            self.batches.append(len(x))
            return self.onnx(x)

    monkeypatch.setattr(environment, "running_environment", lambda: gpu.running)
    monkeypatch.setattr(infer, "EngineSession", FakeSession)
    return gpu


@pytest.fixture(scope="session")
def d1_onnx_with_checkpoint(tmp_path_factory):
    """Full-size VOLO-D1 (randomized weights, saved as a checkpoint) exported by the pipeline without
    its gate: about a minute on 2 cores. Returns (onnx path, checkpoint path)."""
    from volo_export.pipeline import OnnxRequest, export_onnx

    folder = tmp_path_factory.mktemp("d1")
    torch.manual_seed(0)
    checkpoint = folder / "d1_random.pth"
    torch.save(randomize(create_model(get_config("volo_d1_224"))).state_dict(), checkpoint)
    out = folder / "volo_d1_224.onnx"
    export_onnx(OnnxRequest(model="volo_d1_224", output=out, checkpoint=checkpoint, validate=False))
    return out, checkpoint
