"""Engine build decisions without TensorRT: batch profile, builder calls as data, trtexec command."""

from __future__ import annotations

from pathlib import Path

import pytest

from volo_export.errors import UsageError
from volo_export.trt.config import (BuildSettings, BuilderCall, Enum, InputSpec, Profile, Ref, build_plan,
                                    compute_profile, resolve_batches, trt_major, trtexec_command)

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
    assert p.batches == (1, 8, 16) and Profile.from_dict(p.to_dict()) == p


def test_builder_calls_as_data_trt10():
    settings = BuildSettings(workspace_mib=2048, opt_level=5, hardware_compat="ampere-plus", version_compatible=True,
                             timing_cache=Path("t.cache"), plugins=(Path("libvolo.so"),))
    profile = compute_profile(DYNAMIC, 224, settings)
    plan = build_plan(settings, profile, 10)
    assert plan.network_flags == ("STRONGLY_TYPED",)
    assert plan.calls == (
        BuilderCall("config", "set_memory_pool_limit", (Enum("MemoryPoolType.WORKSPACE"), 2048 << 20)),
        BuilderCall("config", "builder_optimization_level", (5,), assign=True),
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
    plan = build_plan(BuildSettings(), profile, 11)
    assert plan.network_flags == ()  # strongly typed is the only mode on 11
    names = [c.name for c in plan.calls]
    assert names == ["builder_optimization_level", "set_shape", "add_optimization_profile"]
    assert not any("FP16" in str(c) or "INT8" in str(c) for c in plan.calls)  # precision is in the graph
    with pytest.raises(UsageError, match="only strongly typed"):
        build_plan(BuildSettings(strongly_typed=False), profile, 11)
    weak = build_plan(BuildSettings(strongly_typed=False), profile, 10)
    assert weak.network_flags == () and weak.notes


def test_trt_major():
    assert trt_major("10.13.0.35") == 10 and trt_major("11.1.0") == 11
    with pytest.raises(UsageError, match="too old"):
        trt_major("8.6.1")


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
