"""Plain helpers shared by the tests (fixtures live in conftest.py): small VOLO configs, weights that
make every block matter, fake engines and sidecars, a CMake builder, and the assertions every
"bad input" test makes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from volo_export.models.variants import Preprocessing, VoloConfig, get_config


def small_config(name: str = "volo_d1_224", size: int | None = None, **overrides) -> VoloConfig:
    """A registered variant with one block per stage (same widths and heads), optionally at another size."""
    base = get_config(name)
    prep = base.preprocessing if size is None else dataclasses.replace(base.preprocessing, size=size)
    return dataclasses.replace(base, layers=(1, 1, 1, 1), preprocessing=prep, **overrides)


def tiny_preprocessing() -> Preprocessing:
    return get_config("volo_tiny_digits").preprocessing


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


def fp8_image_onnx(path: Path, size: int = 64, classes: int = 10) -> Path:
    """A tiny image classifier with FP8 (E4M3) Q/DQ and no volo-export metadata, as another tool writes one:
    input (N, 3, size, size) -Q/DQ-> Conv (FP8 weights per output channel, stride 4) -> Relu -> GlobalAveragePool ->
    Flatten -Q/DQ-> MatMul (FP8 weights per output column) -> logits (N, classes). Opset 19, float32 scales."""
    import ml_dtypes
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    f8, rng = ml_dtypes.float8_e4m3fn, np.random.default_rng(0)

    def init(name, array):
        return numpy_helper.from_array(np.asarray(array), name)

    inits = [init("s_in", np.float32(0.04)), init("s_pool", np.float32(0.02)), init("z", np.zeros((), f8)),
             init("w_conv", (rng.standard_normal((16, 3, 4, 4)) * 8).astype(f8)),
             init("s_conv", np.full(16, 0.01, np.float32)), init("z_conv", np.zeros(16, f8)),
             init("w_fc", (rng.standard_normal((16, classes)) * 8).astype(f8)),
             init("s_fc", np.full(classes, 0.02, np.float32)), init("z_fc", np.zeros(classes, f8))]
    node = helper.make_node
    nodes = [node("QuantizeLinear", ["input", "s_in", "z"], ["q_in"], name="q_input"),
             node("DequantizeLinear", ["q_in", "s_in", "z"], ["x"], name="dq_input"),
             node("DequantizeLinear", ["w_conv", "s_conv", "z_conv"], ["wc"], name="dq_w_conv", axis=0),
             node("Conv", ["x", "wc"], ["c"], name="conv", strides=[4, 4]),
             node("Relu", ["c"], ["r"], name="relu"), node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             node("Flatten", ["p"], ["f"], name="flatten"),
             node("QuantizeLinear", ["f", "s_pool", "z"], ["q_f"], name="q_pool"),
             node("DequantizeLinear", ["q_f", "s_pool", "z"], ["fd"], name="dq_pool"),
             node("DequantizeLinear", ["w_fc", "s_fc", "z_fc"], ["wf"], name="dq_w_fc", axis=1),
             node("MatMul", ["fd", "wf"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "fp8", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


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
FAKE_PLAN_MAGIC = b"volo-export-test-plan:"


def build_environment():
    """The machine the fake engines were 'built' on."""
    from volo_export.trt.provenance import Environment

    return Environment(tensorrt="10.13.0.35", cuda_runtime="12.8", driver="570.86.15", gpu_name="NVIDIA L4",
                       compute_capability="8.9")


def write_fake_engine(onnx_path, output, settings=None, environment=None, library=None, layers=None):
    """An engine file + sidecar written by volo-export's own writer (default: TensorRT 10.13; `library`: a
    `products.Library`, e.g. TensorRT-RTX). The 'plan' is not TensorRT's: it names the ONNX file, which the
    fake session runs in ONNX Runtime."""
    from volo_export.trt.build import EngineRequest, prepare, write_engine
    from volo_export.trt.config import BuildSettings, build_plan
    from volo_export.trt.products import TENSORRT, Library

    settings = settings or BuildSettings(max_batch=8)
    library = library or Library.of(TENSORRT, "10.13.0.35")
    prepared = prepare(EngineRequest(onnx_path, output, settings))
    plan = (FAKE_PLAN_MAGIC + str(onnx_path).encode()).ljust(4096, b"\0")
    write_engine(prepared, build_plan(settings, prepared.profile, library), plan, environment or build_environment(),
                 layers)
    return output


def fake_session_factory(sessions: list | None = None):
    """An EngineSession stand-in for CPU tests: the 'plan' names an ONNX file, which it runs in ONNX
    Runtime; every session opened is appended to `sessions`."""
    from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner

    class FakeSession:
        def __init__(self, plan: bytes, name: str, plugins=(), **options):
            assert plan.startswith(FAKE_PLAN_MAGIC), "not a fake plan"
            self.onnx = OnnxRuntimeRunner(Path(plan[len(FAKE_PLAN_MAGIC):].rstrip(b"\0").decode()))
            self.name, self.plugins, self.options, self.batches = name, list(plugins), options, []
            if sessions is not None:
                sessions.append(self)

        def __call__(self, x):
            self.batches.append(len(x))
            return self.onnx(x)

    return FakeSession


def files_in(folder: Path) -> set[str]:
    """Every path below `folder` (hidden ones too), relative, to compare before and after a command."""
    return {str(p.relative_to(folder)) for p in Path(folder).rglob("*")}


def assert_one_line_error(result, code: int, *fragments: str, folder: Path | None = None,
                          before: set[str] | None = None) -> str:
    """A CLI result that failed the way users are promised: exit `code`, no traceback, exactly one
    `error:` line containing every fragment (white space folded); and, given `folder`, nothing in it
    but `before`. Returns the error line."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output, output
    lines = output.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, output
    assert not [rest for rest in lines[errors[0] + 1:] if rest.strip()], f"output after the error line: {output}"
    errors = [lines[errors[0]]]
    line = " ".join(errors[0].split())
    for fragment in fragments:
        assert " ".join(fragment.split()) in line, (fragment, output)
    if folder is not None:
        assert files_in(folder) == (before or set()), f"left behind: {files_in(folder) - (before or set())}"
    return line


class RecordingProgress:
    """A volo_export.progress.Progress that remembers what it was told: `stages` (texts), `advances`
    ((done, total) pairs), `notices` and `warnings`."""

    def __init__(self):
        self.stages: list[str] = []
        self.advances: list[tuple[int, int]] = []
        self.notices: list[str] = []
        self.warnings: list[str] = []

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def stage(self, text: str) -> None:
        self.stages.append(text)

    def advance(self, done: int, total: int, detail: str | None = None) -> None:
        self.advances.append((done, total))

    def phase_start(self, name, parent, steps) -> None:
        pass

    def phase_step(self, name, step) -> bool:
        return True

    def phase_finish(self, name) -> None:
        pass
