"""build_engine replays the plan on TensorRT's Python API. Here a recording stand-in for the
`tensorrt` module, passed as the `library`, plays TensorRT 10/11, so the wiring runs on CPU: network
flags, builder calls in order, profile, timing cache load/save, plugins, progress, atomic plan +
sidecar, one-line errors. (The real thing: test_rtx.py with TensorRT-RTX, which builds without a GPU,
and test_tensorrt_gpu.py where TensorRT and a GPU exist.)"""

from __future__ import annotations

import dataclasses
import sys
import types

import onnx
import pytest
from typer.testing import CliRunner

from helpers import build_environment, files_in, fp8_image_onnx
from volo_export.cli import app
from volo_export.errors import EngineError, TensorRTCheckFailed, UsageError
from volo_export.export.metadata import read_info, write_info
from volo_export.progress import Progress
from volo_export.trt.build import EngineRequest, build_engine, prepare
from volo_export.trt.config import BuildSettings
from volo_export.trt.products import TENSORRT, Library
from volo_export.trt.provenance import read_sidecar, sidecar_path

PLAN = b"serialized-plan-bytes" * 100


def fake_tensorrt(version="10.13.0.35", parse_ok=True, build_ok=True):
    """A module with the slice of TensorRT's Python API that build.py uses; every call is recorded.
    Use it as `fake_library(...)`."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []
    rec = trt.calls.append

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self):
            pass

    class IProgressMonitor:
        def __init__(self):
            pass

    trt.ILogger, trt.IProgressMonitor = ILogger, IProgressMonitor
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(VERSION_COMPATIBLE="VERSION_COMPATIBLE")
    trt.ProfilingVerbosity = types.SimpleNamespace(DETAILED="DETAILED")
    trt.HardwareCompatibilityLevel = types.SimpleNamespace(AMPERE_PLUS="AMPERE_PLUS",
                                                           SAME_COMPUTE_CAPABILITY="SAME_COMPUTE_CAPABILITY")
    trt.init_libnvinfer_plugins = lambda logger, namespace: rec(("init_plugins", namespace))

    class Registry:
        def load_library(self, path):
            rec(("load_library", path))
            return object()

    class Cache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data + b"+new-tactics"

    class Config:
        progress_monitor = None  # a property on TensorRT >= 10.0

        def __setattr__(self, name, value):
            rec((name, value))
            object.__setattr__(self, name, value)

        def set_memory_pool_limit(self, pool, size):
            rec(("set_memory_pool_limit", pool, size))

        def set_flag(self, flag):
            rec(("set_flag", flag))

        def add_optimization_profile(self, profile):
            rec(("add_optimization_profile", profile))

        def create_timing_cache(self, data):
            rec(("create_timing_cache", data))
            return Cache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            rec(("set_timing_cache", ignore_mismatch))
            object.__setattr__(self, "cache", cache)

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            rec(("set_shape", name, lo, opt, hi))

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def get_plugin_registry(self):
            return Registry()

        def create_network(self, flags):
            rec(("create_network", flags))
            return "network"

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            monitor = getattr(config, "progress_monitor", None)
            if monitor:
                monitor.phase_start("Building engine", None, 3)
                for step in range(3):
                    assert monitor.step_complete("Building engine", step)
                monitor.phase_finish("Building engine")
            if not build_ok:
                self.logger.log(ILogger.ERROR, "out of device memory")
                return None
            self.logger.log(ILogger.WARNING, "weights are not refittable")
            return PLAN

    class ParserError:
        def __init__(self, i):
            self.i = i

        def code(self):
            return types.SimpleNamespace(name="UNSUPPORTED_NODE")

        def desc(self):
            return "false" if self.i == 0 else "Assertion failed\nsecond line"

        def node(self):
            return 39 + self.i

        def node_name(self):
            return f"node_col2im_{self.i}"

        def node_operator(self):
            return "Col2Im"

    class OnnxParser:
        def __init__(self, network, logger):
            self.num_errors = 0 if parse_ok else 2

        def parse_from_file(self, path):
            rec(("parse_from_file", path))
            return parse_ok

        def get_error(self, i):
            return ParserError(i)

    trt.Builder, trt.OnnxParser = Builder, OnnxParser
    return trt


def fake_library(**kwargs) -> Library:
    """The recording stand-in as the TensorRT product `build_engine` builds with."""
    trt = fake_tensorrt(**kwargs)
    return Library.of(TENSORRT, trt.__version__, trt)


class Recorder(Progress):
    def __init__(self):
        self.events = []

    def stage(self, text):
        self.events.append(("stage", text.split()[0]))

    def phase_start(self, name, parent, steps):
        self.events.append(("start", name, steps))

    def phase_step(self, name, step):
        self.events.append(("step", step))
        return True

    def phase_finish(self, name):
        self.events.append(("finish", name))


def test_build_replays_the_plan_on_tensorrt_10(tmp_path, tiny_onnx):
    library = fake_library()
    trt = library.module
    cache = tmp_path / "trt.cache"
    cache.write_bytes(b"old-tactics")
    plugin = tmp_path / "libvolo_plugins.so"
    plugin.write_bytes(b"\x7fELF")
    settings = BuildSettings(max_batch=16, workspace_mib=512, opt_level=4, timing_cache=cache,
                             hardware_compat="ampere-plus", version_compatible=True, plugins=(plugin,))
    progress = Recorder()
    result = build_engine(EngineRequest(tiny_onnx, tmp_path / "tiny.engine", settings), progress,
                          environment=build_environment, library=library)

    assert (tmp_path / "tiny.engine").read_bytes() == PLAN  # the bare plan
    assert result.sidecar == sidecar_path(tmp_path / "tiny.engine") and result.sidecar.is_file()
    config_calls = [c for c in trt.calls if c[0] not in ("progress_monitor", "cache")]
    assert config_calls == [
        ("init_plugins", ""),
        ("load_library", str(plugin)),
        ("create_network", 1 << 1),  # STRONGLY_TYPED on 10.x
        ("parse_from_file", str(tiny_onnx)),
        ("set_memory_pool_limit", "WORKSPACE", 512 << 20),
        ("builder_optimization_level", 4),
        ("profiling_verbosity", "DETAILED"),
        ("hardware_compatibility_level", "AMPERE_PLUS"),
        ("set_flag", "VERSION_COMPATIBLE"),
        ("set_shape", "input", (1, 3, 64, 64), (8, 3, 64, 64), (16, 3, 64, 64)),
        ("add_optimization_profile", config_calls[10][1]),
        ("create_timing_cache", b"old-tactics"),
        ("set_timing_cache", False),
    ]
    assert type(config_calls[10][1]).__name__ == "Profile"
    assert cache.read_bytes() == b"old-tactics+new-tactics"  # saved after the build
    assert ("start", "Building engine", 3) in progress.events and ("step", 2) in progress.events
    assert [e[1] for e in progress.events if e[0] == "stage"] == ["reading", "parsing", "building", "writing"]
    assert result.warnings == ["weights are not refittable"]
    assert result.layers is None and result.notes == ["--runtime auto: building with TensorRT 10.13.0.35",
                                                      "TensorRT 10.13.0.35 logged no layer table: no layer report"]
    prov = read_sidecar(tmp_path / "tiny.engine")
    assert prov.environment == build_environment() and prov.version_compatible and prov.hardware_compat == "ampere-plus"
    assert prov.plugins == [str(plugin)] and "--stronglyTyped" in prov.trtexec


def test_tensorrt_11_network_takes_no_flags(tmp_path, tiny_onnx):
    library = fake_library(version="11.1.0")
    build_engine(EngineRequest(tiny_onnx, tmp_path / "t.engine"), environment=build_environment, library=library)
    assert ("create_network", 0) in library.module.calls
    prov = read_sidecar(tmp_path / "t.engine")
    assert prov.build.trt_major == 11 and prov.build.network_flags == ()
    assert "--stronglyTyped" not in prov.trtexec


@pytest.mark.parametrize("failure,error,message", [
    (dict(parse_ok=False), TensorRTCheckFailed,
     "tiny_digits.onnx: TensorRT 10.13.0.35's ONNX parser rejects it: node 39 'node_col2im_0' (Col2Im): "
     "UNSUPPORTED_NODE: Col2Im is not supported by TensorRT's ONNX parser (+1 more); see volo-export check"),
    (dict(build_ok=False), EngineError, "TensorRT 10.13.0.35 could not build tiny_digits.onnx: out of device memory"),
])
def test_build_failures_leave_nothing(tmp_path, tiny_onnx, failure, error, message):
    cache = tmp_path / "trt.cache"
    with pytest.raises(error) as raised:
        build_engine(EngineRequest(tiny_onnx, tmp_path / "t.engine", BuildSettings(timing_cache=cache)),
                     environment=build_environment, library=fake_library(**failure))
    assert str(raised.value).startswith(message)
    assert list(tmp_path.iterdir()) == []
    if error is TensorRTCheckFailed:  # every parser error, the multi-line one joined
        assert [i.message() for i in raised.value.report.issues][1] == \
            "node 40 'node_col2im_1' (Col2Im): UNSUPPORTED_NODE: Assertion failed; second line"


def test_tensorrt_refuses_an_fp8_graph_on_an_older_gpu_before_building(tmp_path):
    """Full TensorRT builds for the GPU it runs on: an FP8 graph on an A100 (8.0) is refused in one line before the
    parser runs; on an L4 (8.9) it builds."""
    fp8 = fp8_image_onnx(tmp_path / "fp8.onnx")
    a100 = dataclasses.replace(build_environment(), gpu_name="NVIDIA A100-SXM4-80GB", compute_capability="8.0")
    library, before = fake_library(), files_in(tmp_path)
    with pytest.raises(UsageError) as raised:
        build_engine(EngineRequest(fp8, tmp_path / "f.engine", model_name="volo_tiny_digits"),
                     environment=lambda: a100, library=library)
    assert str(raised.value) == (
        "fp8.onnx builds FP8 layers, which need compute capability >= 8.9 (Ada, Hopper, Blackwell), but this GPU is "
        "NVIDIA A100-SXM4-80GB (compute capability 8.0): TensorRT builds for the GPU it runs on; build on an FP8 GPU, "
        "or export an int8 or fp16 graph for this one")
    assert library.module.calls == [] and files_in(tmp_path) == before
    build_engine(EngineRequest(fp8, tmp_path / "f.engine", model_name="volo_tiny_digits"),
                 environment=build_environment, library=library)  # NVIDIA L4, 8.9
    assert read_sidecar(tmp_path / "f.engine").environment.gpu_name == "NVIDIA L4"


def test_fp8_metadata_alone_makes_an_fp8_graph(tmp_path, tiny_onnx):
    """The rule reads the graph's float8 Q/DQ and, for graphs whose Q/DQ it cannot see, the metadata's precision."""
    proto = onnx.load(str(tiny_onnx))
    write_info(proto, dataclasses.replace(read_info(tiny_onnx), precision="fp8"))
    onnx.save(proto, str(tmp_path / "m.onnx"))
    settings = BuildSettings(runtime="rtx", compute_capabilities=("sm86",))
    with pytest.raises(UsageError, match="^--compute-capability sm86 cannot run an FP8 graph"):
        prepare(EngineRequest(tmp_path / "m.onnx", tmp_path / "m.engine", settings))
    assert not prepare(EngineRequest(tiny_onnx, tmp_path / "t.engine", settings)).fp8
    assert prepare(EngineRequest(fp8_image_onnx(tmp_path / "f.onnx"), tmp_path / "f.engine",
                                 dataclasses.replace(settings, compute_capabilities=("sm120",)),
                                 model_name="volo_tiny_digits")).fp8


def test_old_tensorrt_is_refused_after_the_offline_check(tmp_path, tiny_onnx, tiny_naive_onnx):
    old = fake_library(version="8.6.1")
    with pytest.raises(UsageError, match="TensorRT 8.6.1 is too old"):
        build_engine(EngineRequest(tiny_onnx, tmp_path / "t.engine"), environment=build_environment, library=old)
    proto = onnx.load(str(tiny_naive_onnx))
    write_info(proto, read_info(tiny_onnx))
    onnx.save(proto, str(tmp_path / "naive.onnx"))
    with pytest.raises(TensorRTCheckFailed, match="Col2Im"):  # exit 4 before "too old" (exit 2)
        build_engine(EngineRequest(tmp_path / "naive.onnx", tmp_path / "n.engine"), environment=build_environment,
                     library=old)


def test_a_member_this_tensorrt_lacks_is_a_one_line_error(tmp_path, tiny_onnx):
    library = fake_library(version="10.9.0")
    del library.module.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY
    settings = BuildSettings(hardware_compat="same-compute-capability")
    with pytest.raises(EngineError, match=r"TensorRT 10.9.0 has no config.hardware_compatibility_level = "
                                          r"trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY"):
        build_engine(EngineRequest(tiny_onnx, tmp_path / "t.engine", settings), environment=build_environment,
                     library=library)


def test_cli_engine_without_tensorrt_prints_trtexec(monkeypatch, tmp_path, tiny_onnx):
    for module in ("tensorrt", "tensorrt_rtx"):  # the CLI has no parameter: `import` raises ImportError
        monkeypatch.setitem(sys.modules, module, None)
    res = CliRunner().invoke(app, ["engine", str(tiny_onnx), "--output", str(tmp_path / "t.engine"),
                                   "--max-batch", "16", "--timing-cache", str(tmp_path / "c.bin")])
    assert res.exit_code == 1
    (line,) = res.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: neither TensorRT nor TensorRT-RTX is installed here (TensorRT: pip install "
                           "tensorrt polygraphy")
    assert "trtexec --onnx=" in line and "--maxShapes=input:16x3x64x64" in line and "--stronglyTyped" in line
    assert not (tmp_path / "t.engine").exists()


def test_cli_engine_refuses_graphs_tensorrt_would_reject(tmp_path, tiny_onnx, tiny_naive_onnx):
    proto = onnx.load(str(tiny_naive_onnx))
    write_info(proto, read_info(tiny_onnx))
    onnx.save(proto, str(tmp_path / "naive.onnx"))
    runner = CliRunner()
    res = runner.invoke(app, ["engine", str(tmp_path / "naive.onnx"), "-o", str(tmp_path / "n.engine")])
    assert res.exit_code == 4 and "Col2Im" in res.stderr and "volo-export check" in res.stderr
    res = runner.invoke(app, ["engine", str(tiny_naive_onnx), "-o", str(tmp_path / "n.engine")])
    assert res.exit_code == 4 and "Col2Im" in res.stderr  # no metadata either: the check speaks first
    res = runner.invoke(app, ["engine", str(tiny_onnx), "-o", str(tmp_path / "x.engine"), "--min-batch", "8",
                              "--max-batch", "4"])
    assert res.exit_code == 2 and "min <= opt <= max" in res.stderr
    res = runner.invoke(app, ["engine", str(tiny_onnx), "-o", str(tmp_path / "x.engine"), "--plugins",
                              str(tmp_path / "missing.so")])
    assert res.exit_code == 1 and "plugin library not found" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["naive.onnx"]


def test_output_folder_must_exist(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        build_engine(EngineRequest(tiny_onnx, tmp_path / "no" / "t.engine"))
