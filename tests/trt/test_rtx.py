"""Real NVIDIA TensorRT in the loop without a GPU: TensorRT-RTX parses and builds (ahead of time) the
tiny model's FP32, FP16 and INT8 graphs and refuses the naive Col2Im export, all through the project's
own `check` and `engine` commands; the layer report shows the precisions the graphs ask for; the
sidecar records the product and the target compute capabilities; loading refuses cleanly without a
GPU. The slow test does the same for VOLO-D1. Running an engine needs an RTX GPU (not here)."""

from __future__ import annotations

import json

import onnx
import pytest
from typer.testing import CliRunner

from helpers import assert_one_line_error, files_in
from volo_export.cli import app
from volo_export.errors import EngineError
from volo_export.export.metadata import read_info, write_info
from volo_export.trt.products import find_library
from volo_export.trt.provenance import Environment, read_sidecar, sidecar_path

RTX = find_library("rtx")
pytestmark = pytest.mark.skipif(RTX is None, reason="TensorRT-RTX is not installed (pip install -e \".[rtx]\")")
runner = CliRunner()


def _quantized(source, out, precision, calib=None):
    from volo_export.pipeline import QuantizeRequest, quantize_onnx
    from volo_export.precision.convert import PrecisionRequest

    options = dict(calib_data=str(calib), calib_size=64) if calib else {}
    request = PrecisionRequest(precision=precision, validate_count=32, **options)
    quantize_onnx(QuantizeRequest(source, out, request))
    return out


@pytest.fixture(scope="module")
def tiny_graphs(tmp_path_factory, tiny_fp32, digits_folders):
    """The trained tiny model as volo-export writes it: FP32, FP16 and INT8 (TensorRT Q/DQ)."""
    from volo_export.export.to_onnx import save_onnx

    folder = tmp_path_factory.mktemp("rtx")
    save_onnx(tiny_fp32, folder / "tiny_fp32.onnx")
    return {"fp32": folder / "tiny_fp32.onnx",
            "fp16": _quantized(folder / "tiny_fp32.onnx", folder / "tiny_fp16.onnx", "fp16"),
            "int8": _quantized(folder / "tiny_fp32.onnx", folder / "tiny_int8.onnx", "int8", digits_folders[0])}


@pytest.fixture(scope="module")
def tiny_engines(tiny_graphs):
    """`volo-export engine --runtime rtx` on each graph: {precision: (engine path, CLI output)}."""
    out = {}
    for precision, path in tiny_graphs.items():
        engine = path.with_suffix(".engine")
        result = runner.invoke(app, ["engine", str(path), "-o", str(engine), "--runtime", "rtx"])
        assert result.exit_code == 0, result.output
        out[precision] = engine, result.output
    return out


def _layers(engine):
    from volo_export.trt.layers import LayerReport

    return LayerReport.from_dict(read_sidecar(engine).layers)


def assert_precisions(report, precision: str, weighted: int):
    """The gate of issue 9: every weighted MatMul/Gemm/Conv runs in the precision its graph gives it, and
    every GEMM/Conv layer of an FP16 engine is half."""
    assert report.counts(precision) == (weighted, weighted), report.summary()
    assert report.wider_than_graph() == []
    if precision == "fp16":
        assert set(report.by_kind["GEMM"]) == set(report.by_kind["CONV"]) == {"fp16"}
    if precision == "int8":
        assert report.by_kind["CONV"] == {"int8": 5}


@pytest.mark.parametrize("precision,weighted", [("fp32", 34), ("fp16", 34), ("int8", 42)])
def test_tiny_engines_build_without_a_gpu(tiny_engines, precision, weighted):
    engine, output = tiny_engines[precision]
    prov = read_sidecar(engine)
    assert prov.product == "tensorrt-rtx" and prov.product_version == RTX.version
    assert prov.environment.tensorrt_rtx == RTX.version and prov.environment.compute_capability is None
    assert prov.compute_capabilities == [] and prov.trtexec == ""  # TensorRT-RTX's portable default
    header = prov.runtime.plan_header
    assert header["compute_capabilities"] == ["8.0", "8.6", "8.9", "12.0", "12.1"]
    assert header["plan_bytes"] == engine.stat().st_size == prov.engine_bytes
    assert prov.build.network_flags == ("STRONGLY_TYPED",) and prov.build.trt_major is None
    flat = " ".join(output.split())
    assert "targets: TensorRT-RTX's portable default: compute capability 8.0, 8.6, 8.9, 12.0 and later" in flat
    report = _layers(engine)
    assert f"layers: {report.summary()}" in flat
    # the tiny model: 5 convs, 29 linear layers (34); INT8 splits its 3 qkv and 2 kv projections (+8)
    assert_precisions(report, precision, weighted)


def test_int8_qkv_and_kv_projections_became_int8_layers(tiny_graphs, tiny_engines):
    info = read_info(tiny_graphs["int8"])
    split = json.loads(info.extra["split_projections"])
    assert split == ["node_linear_5", "node_linear_9", "node_linear_13", "node_linear_17", "node_linear_22"]
    assert info.extra["quantized_nodes"] == "34"  # counted on the FP32 graph, as --exclude-nodes names them
    nodes = _layers(tiny_engines["int8"][0]).nodes
    parts = {n: d["engine"] for n, d in nodes.items() if n.rsplit("_part", 1)[0] in split}
    assert len(parts) == 3 * 3 + 2 * 2 and set(parts.values()) == {"int8"}


def test_check_shows_offline_and_real_verdicts(tiny_graphs):
    for path in tiny_graphs.values():
        result = runner.invoke(app, ["check", str(path)])
        assert result.exit_code == 0, result.output
        lines = [ln for ln in result.stdout.splitlines() if ln.startswith(("offline:", "real:"))]
        assert lines[0].startswith(f"offline: {path.name}: passes TensorRT 10 ONNX parser rules")
        assert lines[1].startswith(f"real:    {path.name}: {RTX.label}'s ONNX parser takes it (")
    data = json.loads(runner.invoke(app, ["check", str(tiny_graphs["int8"]), "--json"]).stdout)
    assert data["passed"] and data["real"]["passed"] and data["real"]["product"] == RTX.label
    assert json.loads(runner.invoke(app, ["check", str(tiny_graphs["int8"]), "--json", "--no-real"]).stdout)["real"] \
        is None


def test_naive_col2im_export_fails_in_both_commands(tmp_path, tiny_onnx, tiny_naive_onnx):
    naive = tmp_path / "naive.onnx"
    proto = onnx.load(str(tiny_naive_onnx))
    write_info(proto, read_info(tiny_onnx))
    onnx.save(proto, str(naive))
    result = runner.invoke(app, ["check", str(naive)])
    assert result.exit_code == 4
    real = next(ln for ln in result.stdout.splitlines() if ln.startswith("real:"))
    assert real.endswith("(Col2Im): UNSUPPORTED_NODE: Col2Im is not supported by TensorRT's ONNX parser")
    before = files_in(tmp_path)
    line = assert_one_line_error(runner.invoke(app, ["engine", str(naive), "-o", str(tmp_path / "n.engine"),
                                                     "--runtime", "rtx"]), 4, "Col2Im", folder=tmp_path, before=before)
    assert "volo-export check" in line
    # without the offline check the real parser says no, with the same exit code
    line = assert_one_line_error(runner.invoke(app, ["engine", str(naive), "-o", str(tmp_path / "n.engine"),
                                                     "--runtime", "rtx", "--no-check"]), 4, folder=tmp_path,
                                 before=before)
    assert "TensorRT-RTX 1.7" in line and "(Col2Im): UNSUPPORTED_NODE: Col2Im is not supported" in line


def test_compute_capabilities_reach_the_plan_and_the_sidecar(tmp_path, tiny_graphs):
    engine = tmp_path / "t.engine"
    result = runner.invoke(app, ["engine", str(tiny_graphs["fp16"]), "-o", str(engine), "--compute-capability",
                                 "sm86,sm89", "--compute-capability", "sm120", "--max-batch", "4"])
    assert result.exit_code == 0, result.output
    prov = read_sidecar(engine)
    assert prov.compute_capabilities == ["8.6", "8.9", "12.0"] == prov.runtime.plan_header["compute_capabilities"]
    assert prov.profile.batches == (1, 4, 4)
    assert "config.set_compute_capability(trt.ComputeCapability.SM120, 2)" in prov.build.builder_calls


@pytest.mark.parametrize("args,code,fragment", [
    (["--runtime", "rtx", "--compute-capability", "sm75"], 2, "sm75 (Turing) cannot build a fp32 graph"),
    (["--runtime", "rtx", "--compute-capability", "sm90"], 2, "--compute-capability 'sm90'"),
    (["--runtime", "rtx", "--version-compatible"], 2, "--version-compatible does not apply to TensorRT-RTX"),
    (["--runtime", "rtx", "--hardware-compat", "ampere-plus"], 2, "--hardware-compat does not apply to TensorRT-RTX"),
    (["--runtime", "rtx", "--no-strongly-typed"], 2, "only strongly typed networks; drop --no-strongly-typed"),
    (["--runtime", "tensorrt"], 1, "TensorRT is not installed here"),
    (["--runtime", "tensorrt", "--compute-capability", "sm89"], 2, "--compute-capability applies to TensorRT-RTX only"),
])
def test_options_that_do_not_apply_are_refused(tmp_path, tiny_graphs, args, code, fragment):
    before = files_in(tmp_path)
    result = runner.invoke(app, ["engine", str(tiny_graphs["fp32"]), "-o", str(tmp_path / "x.engine"), *args])
    assert_one_line_error(result, code, fragment, folder=tmp_path, before=before)


def test_timing_cache_is_skipped_with_a_notice(tmp_path, tiny_graphs):
    cache = tmp_path / "t.cache"
    result = runner.invoke(app, ["engine", str(tiny_graphs["fp32"]), "-o", str(tmp_path / "t.engine"),
                                 "--timing-cache", str(cache)])
    assert result.exit_code == 0, result.output
    notes = " ".join(result.stderr.split())
    assert "skipped: timing caches are no-ops in TensorRT-RTX" in notes and not cache.exists()
    if find_library("tensorrt") is None:  # --runtime auto says what it picked
        assert f"note: --runtime auto: building with {RTX.label} (TensorRT is not installed)" in notes


@pytest.mark.skipif(find_library("tensorrt") is not None, reason="full TensorRT is installed here")
def test_check_real_requires_an_installed_parser(tiny_graphs):
    result = runner.invoke(app, ["check", str(tiny_graphs["fp32"]), "--real"])
    assert result.exit_code == 0 and RTX.label in result.stdout  # TensorRT-RTX is the real parser here
    from volo_export.errors import UsageError
    from volo_export.trt.check import check_artifact

    with pytest.raises(UsageError, match="^--real: TensorRT is not installed here"):
        check_artifact(tiny_graphs["fp32"], real=True, runtime="tensorrt")


def test_an_rtx_engine_refuses_to_load_without_a_gpu(tiny_engines, digits_folders):
    engine, _ = tiny_engines["fp32"]
    image = next(digits_folders[1].rglob("*.png"))
    line = assert_one_line_error(runner.invoke(app, ["predict", str(image), "--model", str(engine)]), 1)
    assert "needs an NVIDIA RTX GPU to run but none is visible here" in line


def test_the_real_validity_check_runs_before_deserialising(tiny_engines, tmp_path):
    """TensorRT-RTX's own pre-load check (Runtime.get_engine_validity), with no GPU here."""
    from volo_export.trt.rtx_session import RtxEngineSession

    plan = tiny_engines["fp32"][0].read_bytes()
    with pytest.raises(EngineError, match="TensorRT-RTX cannot load t.engine: it could not read this GPU's"):
        RtxEngineSession(plan, "t.engine", library=RTX)
    with pytest.raises(EngineError, match="TensorRT-RTX cannot load junk.engine: the plan is malformed"):
        RtxEngineSession(b"\0" * 4096, "junk.engine", library=RTX)


def test_environment_reports_tensorrt_rtx():
    from volo_export.trt.environment import running_environment

    env = running_environment()
    assert env.tensorrt_rtx == RTX.version and isinstance(env, Environment)


@pytest.mark.slow
def test_d1_graphs_parse_and_build(tmp_path, d1_fp32_onnx, d1_int8_onnx):
    """VOLO-D1 FP32, FP16 and INT8 through `check` and `engine --runtime rtx`: every MatMul/Gemm/Conv in
    the graph's precision (INT8: all 93 quantised nodes, 123 after the qkv/kv split)."""
    graphs = {"fp32": d1_fp32_onnx, "fp16": _quantized(d1_fp32_onnx, tmp_path / "d1_fp16.onnx", "fp16"),
              "int8": d1_int8_onnx}
    for precision, weighted in (("fp32", 93), ("fp16", 93), ("int8", 123)):
        checked = runner.invoke(app, ["check", str(graphs[precision])])
        assert checked.exit_code == 0 and f"{RTX.label}'s ONNX parser takes it" in checked.stdout
        engine = tmp_path / f"d1_{precision}.engine"
        result = runner.invoke(app, ["engine", str(graphs[precision]), "-o", str(engine), "--max-batch", "8"])
        assert result.exit_code == 0, result.output
        assert sidecar_path(engine).is_file()
        assert_precisions(_layers(engine), precision, weighted)
