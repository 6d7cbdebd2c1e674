"""The honest limit in `bench`: the theoretical peak from ISA, cores and a measured clock (pure arithmetic on a
given probe), every library's GEMM per data type, and bench rows for ONNX Runtime and OpenVINO side by side."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from volo_export.bench.backends import BACKENDS, DEFAULT_BACKENDS, backends_for_runtime
from volo_export.bench.isa import IsaProbe, _CODE, measure_isa, theoretical_peak
from volo_export.errors import UsageError
from volo_export.hardware import cpu_isa

SERVER = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"]


def test_theoretical_peak_of_an_avx512_vnni_bf16_core():
    probe = IsaProbe(3.0, {"fma_zmm": 1.94, "vnni_zmm": 1.97, "bf16_zmm": 0.48})
    peak = theoretical_peak(2, cpu_isa(SERVER), probe)
    assert peak.gops("fp32") == pytest.approx(2 * 3.0 * 2 * 32)  # 2 FMA ports x 16 lanes x 2 FLOP
    assert peak.gops("int8") == pytest.approx(2 * 3.0 * 2 * 128)  # VNNI: 4x FP32 per instruction
    assert peak.gops("bf16") == pytest.approx(2 * 3.0 * 0.5 * 64)  # vdpbf16ps at half an instruction per cycle
    assert peak.figures["fp32"].per_cycle == 2 and "measured 1.94" in peak.figures["fp32"].how
    assert peak.tier == "AVX-512 (VNNI, BF16)" and peak.clock_how.startswith("measured")
    loaded = theoretical_peak(2, cpu_isa(SERVER), IsaProbe(3.0, {"fma_zmm": 1.71, "vnni_zmm": 1.75, "bf16_zmm": 0.42}))
    assert [loaded.figures[t].per_cycle for t in ("fp32", "int8", "bf16")] == [2, 2, 0.5]  # measured on a busy VM


def test_theoretical_peak_without_vnni_and_with_amx():
    avx2 = theoretical_peak(4, cpu_isa(["avx", "avx2", "fma"]), IsaProbe(2.5, {"fma_ymm": 2.0}))
    assert avx2.gops("fp32") == pytest.approx(4 * 2.5 * 2 * 16) and avx2.gops("bf16") is None
    assert avx2.gops("int8") == pytest.approx(2 * avx2.gops("fp32")) and "derived" in avx2.figures["int8"].how
    amx = theoretical_peak(1, cpu_isa([*SERVER, "amx_tile", "amx_int8", "amx_bf16"]), IsaProbe(2.0, {"fma_zmm": 2.0}))
    assert amx.gops("int8") == pytest.approx(2.0 * 2048) and "not measured" in amx.figures["int8"].how
    unknown = theoretical_peak(1, cpu_isa(SERVER), IsaProbe(None, error="no probes for aarch64 (x86-64 only)"))
    assert unknown.gops("fp32") is None and "aarch64" in unknown.clock_how


def test_probe_runs_what_the_flags_allow():
    isa = cpu_isa()
    probe = measure_isa(isa)
    if probe.error:
        pytest.skip(f"probes cannot run here: {probe.error}")
    assert probe.clock_ghz > 0
    expected = {"fma_ymm": isa.has("avx2"), "fma_zmm": isa.avx512, "vnni_zmm": isa.has("avx512_vnni"),
                "bf16_zmm": isa.has("avx512_bf16")}
    assert set(probe.per_cycle) == {name for name, on in expected.items() if on}
    assert all(v > 0 for v in probe.per_cycle.values())


def test_probe_code_is_isa_probe_s_assembled(tmp_path):
    if not (shutil.which("gcc") and shutil.which("objcopy")):
        pytest.skip("gcc and objcopy are needed to reassemble isa_probe.S")
    import base64
    import zlib

    source = Path(__file__).resolve().parent.parent / "volo_export" / "bench" / "isa_probe.S"
    subprocess.run(["gcc", "-c", str(source), "-o", str(tmp_path / "p.o")], check=True)
    subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", str(tmp_path / "p.o"), str(tmp_path / "p.bin")],
                   check=True)
    assert (tmp_path / "p.bin").read_bytes() == zlib.decompress(base64.b64decode(_CODE))


def test_backends_per_runtime():
    openvino = backends_for_runtime("openvino")
    assert {"eager", "onnx-fp32", "openvino-fp32", "openvino-bf16", "openvino-int8"} <= set(openvino)
    assert not any(n.startswith("onnx-") and n != "onnx-fp32" for n in openvino)
    assert not any(n.startswith("openvino") for n in backends_for_runtime("onnxruntime"))
    assert backends_for_runtime("auto") == backends_for_runtime(None) == DEFAULT_BACKENDS
    with pytest.raises(UsageError, match="no tensorrt backends"):
        backends_for_runtime("tensorrt", {k: v for k, v in BACKENDS.items() if v.runtime != "tensorrt"})


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    from volo_export.bench.run import BenchRequest, run_benchmark
    from volo_export.timing import BenchSettings

    artifacts = tmp_path_factory.mktemp("artifacts")
    request = BenchRequest(model="volo_tiny_digits", artifacts=artifacts, gemm_size=128,
                           backends=("onnx-fp32", "openvino-fp32", "onnx-bf16", "openvino-int8"),
                           settings=BenchSettings(batch_sizes=(2,), warmup=1, iterations=2))
    return run_benchmark(request)


@pytest.mark.slow  # measures every library's GEMM (22 s); the peak arithmetic is tested above
def test_onnxruntime_and_openvino_side_by_side(side_by_side):
    report = side_by_side
    built = {b.name: b for b in report.backends}
    assert built["openvino-fp32"].artifact == built["onnx-fp32"].artifact  # one FP32 export serves both
    assert built["openvino-int8"].gate["passed"] and built["openvino-int8"].precision == "int8"
    rows = {r.backend: r for r in report.results}
    assert rows["onnx-bf16"].status == "unavailable" and "no bf16 kernels" in rows["onnx-bf16"].reason
    for name in ("onnx-fp32", "openvino-fp32", "openvino-int8"):
        assert rows[name].status == "ok" and rows[name].peak_rss_mb > 30, rows[name].reason
    header, table = report.rows()
    assert header[9:11] == ["% best GEMM", "% FMA peak"] and "x onnx-fp32" in header
    line = next(r for r in table if r[0] == "openvino-int8")
    best_int8 = report.limits["best"]["int8"]["gops"]
    assert line[9] == f"{rows['openvino-int8'].gflops / best_int8:.0%}"  # INT8 rows are judged by INT8 GEMMs


@pytest.mark.slow  # measures every library's GEMM (22 s); the peak arithmetic is tested above
def test_limits_cover_every_library_and_say_how(side_by_side):
    limits = side_by_side.limits
    found = {(g["library"], g["dtype"]) for g in limits["gemms"] if g["gops"]}
    assert {("ONNX Runtime", "fp32"), ("numpy", "fp32"), ("torch", "fp32"), ("OpenVINO", "fp32"),
            ("ONNX Runtime", "int8"), ("OpenVINO", "int8")} <= found
    if cpu_isa().bf16:
        assert {("torch", "bf16"), ("OpenVINO", "bf16")} <= found
    assert limits["best"]["fp32"]["gops"] == max(g["gops"] for g in limits["gemms"] if g["dtype"] == "fp32" and g["gops"])
    lines = side_by_side.limit_lines()
    assert any(line.startswith("fp32 GEMM 128^3") for line in lines)
    assert any("theoretical peak = " in line and "cpuinfo MHz" in line for line in lines)
