"""Engine build decisions without TensorRT: batch profile, builder calls as data for TensorRT 10/11 and
TensorRT-RTX, what each option means on each product, version gates, trtexec command."""

from __future__ import annotations

from pathlib import Path

import pytest

from volo_export.errors import UsageError
from volo_export.records import from_record, to_record
from volo_export.trt.config import (BuildSettings, BuilderCall, Enum, InputSpec, Profile, Ref, build_plan,
                                    compute_profile, resolve_batches, trtexec_command)
from volo_export.trt.products import RTX, TENSORRT, Library

TRT10, TRT11, RTX17 = Library.of(TENSORRT, "10.13.0.35"), Library.of(TENSORRT, "11.1.0"), Library.of(RTX, "1.7.1.116")
DETAILED = BuilderCall("config", "profiling_verbosity", (Enum("ProfilingVerbosity.DETAILED"),), assign=True)

DYNAMIC = InputSpec("input", ("batch", 3, 224, 224))


@pytest.mark.parametrize("settings,expected", [
    (BuildSettings(), (1, 8, 32)),  # stated defaults
    (BuildSettings(max_batch=4), (1, 4, 4)),  # opt clamped into the range
    (BuildSettings(min_batch=16), (16, 16, 32)),
    (BuildSettings(min_batch=64), (64, 64, 64)),  # max follows a large min
    (BuildSettings(opt_batch=48), (1, 48, 48)),
    (BuildSettings(min_batch=2, opt_batch=3, max_batch=5), (2, 3, 5)),
])
def test_resolve_batches(settings, expected):
    assert resolve_batches(settings) == expected


@pytest.mark.parametrize("settings,message", [
    (BuildSettings(min_batch=8, max_batch=4), "min <= opt <= max"),
    (BuildSettings(opt_batch=40, max_batch=32), "min <= opt <= max"),
])
def test_resolve_batches_refuses_inverted_ranges(settings, message):
    with pytest.raises(UsageError, match=message):
        resolve_batches(settings)


def test_static_batch_fixes_the_profile():
    assert resolve_batches(BuildSettings(), static_batch=4) == (4, 4, 4)
    assert resolve_batches(BuildSettings(max_batch=4), static_batch=4) == (4, 4, 4)
    with pytest.raises(UsageError, match="static batch of 4, so --max-batch 32 cannot apply"):
        resolve_batches(BuildSettings(max_batch=32), static_batch=4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(min_batch=0), "--min-batch must be >= 1"), (dict(opt_level=6), "--opt-level must be 0..5"),
    (dict(workspace_mib=0), "--workspace"), (dict(hardware_compat="turing"), "--hardware-compat 'turing'"),
])
def test_settings_validation(kwargs, message):
    with pytest.raises(UsageError, match=message):
        BuildSettings(**kwargs)


def test_profile_from_onnx_input_and_metadata():
    p = compute_profile(DYNAMIC, 224, BuildSettings(max_batch=16))
    assert (p.min, p.opt, p.max) == ((1, 3, 224, 224), (8, 3, 224, 224), (16, 3, 224, 224))
    assert not p.fixed and p.batches == (1, 8, 16)
    static = compute_profile(InputSpec("input", (2, 3, 64, 64)), 64, BuildSettings())
    assert static.fixed and static.min == static.max == (2, 3, 64, 64)
    free_hw = compute_profile(InputSpec("x", ("N", 3, "H", "W")), 384, BuildSettings())
    assert free_hw.max == (32, 3, 384, 384) and free_hw.input == "x"
    with pytest.raises(UsageError, match="height is 224 but the model metadata says image size 384"):
        compute_profile(DYNAMIC, 384, BuildSettings())
    with pytest.raises(UsageError, match="rank 3"):
        compute_profile(InputSpec("input", ("N", 3, 224)), 224, BuildSettings())


def test_profile_round_trips_through_the_sidecar_dict():
    p = compute_profile(DYNAMIC, 224, BuildSettings(max_batch=16))
    assert p.batches == (1, 8, 16) and from_record(Profile, to_record(p)) == p


def test_builder_calls_as_data_trt10():
    settings = BuildSettings(workspace_mib=2048, opt_level=5, hardware_compat="ampere-plus", version_compatible=True,
                             timing_cache=Path("t.cache"), plugins=(Path("libvolo.so"),))
    profile = compute_profile(DYNAMIC, 224, settings)
    plan = build_plan(settings, profile, TRT10)
    assert plan.network_flags == ("STRONGLY_TYPED",) and plan.trt_major == 10
    assert plan.calls == (
        BuilderCall("config", "set_memory_pool_limit", (Enum("MemoryPoolType.WORKSPACE"), 2048 << 20)),
        BuilderCall("config", "builder_optimization_level", (5,), assign=True),
        DETAILED,
        BuilderCall("config", "hardware_compatibility_level", (Enum("HardwareCompatibilityLevel.AMPERE_PLUS"),),
                    assign=True),
        BuilderCall("config", "set_flag", (Enum("BuilderFlag.VERSION_COMPATIBLE"),)),
        BuilderCall("profile", "set_shape", ("input", (1, 3, 224, 224), (8, 3, 224, 224), (32, 3, 224, 224))),
        BuilderCall("config", "add_optimization_profile", (Ref("profile"),)),
    )
    assert plan.timing_cache == Path("t.cache") and plan.plugins == (Path("libvolo.so"),)
    text = plan.describe()
    assert text[0] == "network = builder.create_network(1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED)"
    assert "config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2147483648)" in text


def test_builder_calls_trt11_and_defaults():
    profile = compute_profile(DYNAMIC, 224, BuildSettings())
    plan = build_plan(BuildSettings(), profile, TRT11)
    assert plan.network_flags == ()  # strongly typed is the only mode on 11
    names = [c.name for c in plan.calls]
    assert names == ["builder_optimization_level", "profiling_verbosity", "set_shape", "add_optimization_profile"]
    assert not any("FP16" in str(c) or "INT8" in str(c) for c in plan.calls)  # precision is in the graph
    with pytest.raises(UsageError, match="TensorRT 11.1.0 builds only strongly typed networks; drop --no-strongly"):
        build_plan(BuildSettings(strongly_typed=False), profile, TRT11)
    weak = build_plan(BuildSettings(strongly_typed=False), profile, TRT10)
    assert weak.network_flags == () and weak.notes


def test_version_gates_are_per_product():
    for library in (TRT10, TRT11, RTX17, Library.of(RTX, "1.8.0")):
        library.require_supported()
    for library, message in ((Library.of(TENSORRT, "8.6.1"), "TensorRT 8.6.1 is too old: .* TensorRT >= 10"),
                             (Library.of(RTX, "1.2.0.54"), "TensorRT-RTX 1.2.0.54 is too old: .* TensorRT-RTX >= 1.7"),
                             (Library.of(TENSORRT, "unknown"), "cannot read TensorRT version 'unknown'")):
        with pytest.raises(UsageError, match=message):
            library.require_supported()
    assert RTX17.major == 1 and build_plan(BuildSettings(), compute_profile(DYNAMIC, 224, BuildSettings()),
                                           RTX17).trt_major is None  # RTX 1.x is not "TensorRT 1"


def test_rtx_plan_targets_compute_capabilities():
    settings = BuildSettings(runtime="rtx", compute_capabilities=("sm86,SM_89", "12.0"), workspace_mib=512)
    assert settings.compute_capabilities == ("sm86", "sm89", "sm120")
    plan = build_plan(settings, compute_profile(DYNAMIC, 224, settings), RTX17)
    assert plan.network_flags == ("STRONGLY_TYPED",) and plan.compute_capabilities == ("8.6", "8.9", "12.0")
    assert plan.calls[2:7] == (
        DETAILED,
        BuilderCall("config", "num_compute_capabilities", (3,), assign=True),
        BuilderCall("config", "set_compute_capability", (Enum("ComputeCapability.SM86"), 0)),
        BuilderCall("config", "set_compute_capability", (Enum("ComputeCapability.SM89"), 1)),
        BuilderCall("config", "set_compute_capability", (Enum("ComputeCapability.SM120"), 2)),
    )
    assert plan.targets == "compute capability 8.6, 8.9, 12.0 (--compute-capability)" and plan.notes == ()
    default = build_plan(BuildSettings(), compute_profile(DYNAMIC, 224, BuildSettings()), RTX17)
    assert not [c for c in default.calls if "compute_capabilit" in c.name]
    assert default.targets == "TensorRT-RTX's portable default: compute capability 8.0, 8.6, 8.9, 12.0 and later"


@pytest.mark.parametrize("settings,library,message", [
    (BuildSettings(version_compatible=True), RTX17, "--version-compatible does not apply to TensorRT-RTX: it ships no"),
    (BuildSettings(hardware_compat="ampere-plus"), RTX17, "--hardware-compat does not apply to TensorRT-RTX"),
    (BuildSettings(strongly_typed=False), RTX17, "TensorRT-RTX 1.7.1.116 builds only strongly typed networks"),
    (BuildSettings(compute_capabilities=("sm89",)), TRT10, "--compute-capability applies to TensorRT-RTX only"),
    (BuildSettings(hardware_compat="same-compute-capability"), Library.of(TENSORRT, "10.8.0.43"),
     "--hardware-compat same-compute-capability needs TensorRT >= 10.9; this is TensorRT 10.8.0.43"),
])
def test_options_that_do_not_apply_are_one_line_errors(settings, library, message):
    with pytest.raises(UsageError, match=message):
        build_plan(settings, compute_profile(DYNAMIC, 224, settings), library)


def test_rtx_skips_the_timing_cache_with_a_notice_and_full_tensorrt_keeps_it():
    settings = BuildSettings(timing_cache=Path("t.cache"))
    profile = compute_profile(DYNAMIC, 224, settings)
    rtx = build_plan(settings, profile, RTX17)
    assert rtx.timing_cache is None and len(rtx.notes) == 1
    assert rtx.notes[0].startswith("--timing-cache t.cache skipped: timing caches are no-ops in TensorRT-RTX")
    assert build_plan(settings, profile, Library.of(TENSORRT, "10.9.0")).timing_cache == Path("t.cache")
    build_plan(BuildSettings(hardware_compat="same-compute-capability"), profile, Library.of(TENSORRT, "10.9.0"))


@pytest.mark.parametrize("kwargs,message", [
    (dict(runtime="openvino"), "--runtime 'openvino': choose auto, tensorrt, rtx"),
    (dict(compute_capabilities=("sm90",)), "--compute-capability 'sm90': TensorRT-RTX builds for sm75, sm80"),
    (dict(compute_capabilities=("ampere",)), "--compute-capability 'ampere'"),
    (dict(runtime="tensorrt", compute_capabilities=("sm89",)), "--compute-capability applies to TensorRT-RTX only"),
])
def test_runtime_settings_validation(kwargs, message):
    with pytest.raises(UsageError, match=message):
        BuildSettings(**kwargs)


def test_trtexec_command_10_vs_11():
    settings = BuildSettings(max_batch=16, workspace_mib=1024, timing_cache=Path("my cache.bin"),
                             hardware_compat="same-compute-capability", version_compatible=True,
                             plugins=(Path("libvolo.so"),))
    profile = compute_profile(DYNAMIC, 224, settings)
    t10 = trtexec_command(Path("d1.onnx"), Path("d1.engine"), settings, profile, 10)
    assert t10 == ("trtexec --onnx=d1.onnx --saveEngine=d1.engine --stronglyTyped "
                   "--minShapes=input:1x3x224x224 --optShapes=input:8x3x224x224 --maxShapes=input:16x3x224x224 "
                   "--memPoolSize=workspace:1024M --builderOptimizationLevel=3 --timingCacheFile='my cache.bin' "
                   "--hardwareCompatibilityLevel=sameComputeCapability --versionCompatible "
                   "--staticPlugins=libvolo.so")
    t11 = trtexec_command(Path("d1.onnx"), Path("d1.engine"), settings, profile, 11)
    assert t11 == t10.replace(" --stronglyTyped", "")
    for cmd in (t10, t11):
        assert "--fp16" not in cmd and "--int8" not in cmd and "--best" not in cmd
    static = compute_profile(InputSpec("input", (4, 3, 224, 224)), 224, BuildSettings())
    assert "Shapes" not in trtexec_command(Path("a.onnx"), Path("a.engine"), BuildSettings(), static, 10)
