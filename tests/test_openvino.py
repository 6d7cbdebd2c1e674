"""OpenVINO as a runtime (runner, model cache, refusals), `--runtime` for predict/validate (auto: measured once,
cached), BF16 as a precision (an inference hint, gated in OpenVINO) and the OpenVINO INT8 form, on the tiny model.
No timed assertions: which runtime `auto` picks is decided by a stand-in timing where it matters."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from typer.testing import CliRunner

from helpers import assert_one_line_error, write_fake_engine
from volo_export.cli import app
from volo_export.errors import RuntimeUnavailable, UsageError
from volo_export.export.metadata import graph_sha256, read_info, write_info
from volo_export.hardware import cpu_isa
from volo_export.runtime import auto, open_runner
from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner
from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings
from volo_export.tolerances import BF16, FP16, FP32, INT8, tolerance_for

BF16_CPU = cpu_isa().bf16
needs_bf16 = pytest.mark.skipif(not BF16_CPU, reason="this CPU has no AVX512_BF16/AMX-BF16 (refusal tested below)")


def _x(n=3, size=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def _cosine(a, b):
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def _restamped(src: Path, dst: Path, **changes) -> Path:
    """A copy of an ONNX file with some metadata fields changed (precision, target, extra)."""
    proto = onnx.load(str(src))
    write_info(proto, dataclasses.replace(read_info(proto), **changes))
    onnx.save(proto, str(dst))
    return dst


# ---------------------------------------------------------------- the runner


def test_openvino_computes_fp32_like_onnxruntime(tiny_onnx):
    runner = OpenVinoRunner(tiny_onnx)
    assert runner.runtime == "openvino-cpu" and runner.inference_precision == "f32"
    assert runner.describe().startswith("OpenVINO ") and runner.describe().endswith("CPU (f32)")
    assert runner.batch_range.lo == 1 and runner.batch_range.hi is None and runner.info.model == "volo_tiny_digits"
    x = _x(5)
    ours, ort = runner(x), OnnxRuntimeRunner(tiny_onnx)(x)
    scale = np.abs(ort).max()
    assert np.abs(ours - ort).max() / scale < FP32.max_abs_rel and _cosine(ours, ort) > FP32.min_cosine
    kinds = Counter(layer for layer, _, _ in runner.runtime_ops())
    assert kinds["FullyConnected"] > 0 and kinds["Convolution"] == 5  # 4 stem convs + the downsample
    # compiled for the static batch of each call (faster than a dynamic-batch compile), once per size
    assert runner.compiled.inputs[0].get_partial_shape()[0].get_length() == 5
    compiled_for_5 = runner.compiled
    two = runner(x[:2])
    assert runner.compiled.inputs[0].get_partial_shape()[0].get_length() == 2
    assert np.abs(two - ours[:2]).max() / scale < FP32.max_abs_rel  # a row does not depend on the batch
    runner(x)
    assert runner.compiled is compiled_for_5 and runner.batch_range.hi is None


def test_model_cache_second_start_and_content_key(tmp_path, tiny_onnx):
    settings = OpenVinoSettings(cache_dir=tmp_path / "cache")
    model = tmp_path / "m.onnx"
    model.write_bytes(tiny_onnx.read_bytes())
    first, second = OpenVinoRunner(model, settings), OpenVinoRunner(model, settings)
    assert not first.loaded_from_cache and second.loaded_from_cache
    # OpenVINO's own cache key for a path is path + size + mtime: the same file rewritten with other weights,
    # same size and time, must not get the old blob (it did, measured, before blobs were keyed by content).
    proto = onnx.load(str(model))
    head = next(t for t in proto.graph.initializer if "head" in t.name and len(t.dims) == 2)
    head.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(head), head.name))
    stat = model.stat()
    onnx.save(proto, str(model))
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model.stat().st_size == stat.st_size
    edited = OpenVinoRunner(model, settings)
    x = _x(2)
    assert not edited.loaded_from_cache
    np.testing.assert_allclose(edited(x), OnnxRuntimeRunner(model)(x), rtol=0, atol=1e-4)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one folder per content
    assert not OpenVinoRunner(model, OpenVinoSettings(cache=False)).loaded_from_cache


def test_default_cache_under_xdg(monkeypatch, tmp_path, tiny_onnx):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    OpenVinoRunner(tiny_onnx)
    assert [p.name for p in (tmp_path / "volo-export" / "openvino").iterdir()][0].isalnum()


def test_cpu_target_int8_is_refused_in_one_line(tmp_path, tiny_onnx):
    cpu = _restamped(tiny_onnx, tmp_path / "cpu_int8.onnx", precision="int8", target="cpu")
    with pytest.raises(RuntimeUnavailable, match="OpenVINO computes --target cpu INT8 graphs wrong"):
        OpenVinoRunner(cpu)
    res = CliRunner().invoke(app, ["validate", "--model", str(cpu), "--runtime", "openvino"])
    assert_one_line_error(res, 1, "OpenVINO computes --target cpu INT8 graphs wrong", "--runtime onnxruntime")
    candidates, skipped = auto.cpu_candidates(read_info(cpu), cpu.name)
    assert candidates == ["onnxruntime"] and "wrong" in skipped["openvino"]


def test_missing_openvino_is_one_line(monkeypatch, tiny_onnx):
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    with pytest.raises(RuntimeUnavailable, match=r"OpenVINO is not installed \(pip install 'volo-export\[openvino\]'\)"):
        OpenVinoRunner(tiny_onnx)
    assert auto.cpu_candidates(read_info(tiny_onnx), "m")[0] == ["onnxruntime"]


def test_bf16_refused_where_the_cpu_has_none(monkeypatch, tmp_path, tiny_onnx):
    import volo_export.hardware as hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: ["avx", "avx2", "fma"])
    bf16 = _restamped(tiny_onnx, tmp_path / "bf16.onnx", precision="bf16", extra={"inference_precision": "bf16"})
    with pytest.raises(RuntimeUnavailable, match=r"bf16 needs a CPU with AVX512_BF16 or AMX-BF16; .*AVX2\)"):
        OpenVinoRunner(bf16)
    from volo_export.precision.convert import PrecisionRequest

    with pytest.raises(RuntimeUnavailable, match="bf16 needs a CPU with AVX512_BF16"):
        PrecisionRequest(precision="bf16")
    runner = open_runner(bf16, runtime="auto")  # no runtime does bf16 here: float32 in ONNX Runtime, said so
    assert runner.runtime == "onnxruntime-cpu" and "no runtime here computes bf16" in runner.notices[-1]


@needs_bf16
def test_bf16_artifact_runs_bf16_in_openvino_and_float32_in_onnxruntime(tmp_path, tiny_onnx):
    bf16 = _restamped(tiny_onnx, tmp_path / "bf16.onnx", precision="bf16", extra={"inference_precision": "bf16"})
    runner = OpenVinoRunner(bf16)
    assert runner.inference_precision == "bf16" and runner.describe().endswith("(bf16)")
    x = _x(4)
    exact = OnnxRuntimeRunner(tiny_onnx)(x)
    got = runner(x)
    assert 0 < np.abs(got - exact).max() / np.abs(exact).max() < BF16.max_abs_rel  # rounded, within the gate
    assert _cosine(got, exact) > BF16.min_cosine
    ort = open_runner(bf16, runtime="onnxruntime")
    assert "runs in float32 here" in ort.notices[0]
    np.testing.assert_allclose(ort(x), exact, rtol=0, atol=1e-6)


def test_tolerances_are_keyed_by_runtime():
    assert tolerance_for("fp32", "openvino-cpu") == FP32 and tolerance_for("fp16", "openvino-cpu") == FP16
    assert tolerance_for("int8", "openvino-cpu") == INT8 and tolerance_for("bf16", "openvino-cpu") == BF16
    assert tolerance_for("bf16") == BF16 and BF16.min_cosine > INT8.min_cosine and BF16.tie_rel == 0.01


# ---------------------------------------------------------------- --runtime in predict / validate


def test_predict_and_validate_in_openvino(tiny_onnx, tiny_checkpoint):
    from volo_export.preprocess import sample_photos

    photos = [str(p) for p in sample_photos()[:3]]
    runner = CliRunner()
    outs = {rt: runner.invoke(app, ["predict", *photos, "--model", str(tiny_onnx), "--json", "--runtime", rt])
            for rt in ("openvino", "onnxruntime")}
    assert all(o.exit_code == 0 for o in outs.values()), outs
    parsed = {rt: json.loads(o.stdout) for rt, o in outs.items()}
    assert parsed["openvino"]["runtime"].startswith("OpenVINO") and parsed["onnxruntime"]["runtime"].startswith("ONNX")
    top = {rt: [[c["index"] for c in p["top"]] for p in d["predictions"]] for rt, d in parsed.items()}
    assert top["openvino"] == top["onnxruntime"]
    res = runner.invoke(app, ["validate", "--model", str(tiny_onnx), "-c", str(tiny_checkpoint), "--runtime",
                              "openvino", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["passed"] and report["precision"] == "fp32 (openvino-cpu)" and report["tolerance"] == "fp32"
    assert min(c["min_cosine"] for c in report["comparisons"]) > FP32.min_cosine


def test_engines_run_only_in_tensorrt(fake_gpu, tmp_path, tiny_onnx):
    engine = write_fake_engine(tiny_onnx, tmp_path / "t.engine")
    with pytest.raises(UsageError, match="t.engine is a TensorRT engine: only --runtime tensorrt"):
        open_runner(engine, runtime="openvino")
    assert open_runner(engine, runtime="auto").runtime == "tensorrt"
    with pytest.raises(UsageError, match="--runtime 'tvm'"):
        open_runner(tiny_onnx, runtime="tvm")


def test_auto_measures_once_then_uses_the_cache(monkeypatch, tmp_path, tiny_onnx):
    timed = []

    def stand_in(runners, size, batch, progress=None):  # a timing where OpenVINO wins
        timed.append((sorted(runners), size, batch))
        return {"onnxruntime": 9.0, "openvino": 4.0}

    monkeypatch.setattr(auto, "fastest", stand_in)
    cache = tmp_path / "choice.json"
    runner, choice = auto.choose(tiny_onnx, lambda name: open_runner(tiny_onnx, runtime=name), batch=4, cache=cache)
    assert runner.runtime == "openvino-cpu" and choice.runtime == "openvino" and not choice.cached
    assert timed == [(["onnxruntime", "openvino"], 64, 4)]
    assert choice.line() == ("--runtime auto chose openvino: fastest at batch 4 on this machine "
                             "(openvino 4.0 ms, onnxruntime 9.0 ms)")
    monkeypatch.setattr(auto, "fastest", lambda *a, **k: pytest.fail("measured again"))
    again, choice = auto.choose(tiny_onnx, lambda name: open_runner(tiny_onnx, runtime=name), batch=4, cache=cache)
    assert again.runtime == "openvino-cpu" and choice.cached and choice.line().endswith("cached)")
    saved = json.loads(cache.read_text())
    assert [v["runtime"] for v in saved.values()] == ["openvino"]
    assert json.loads(next(iter(saved)))["batch"] == 4  # the key names the batch, the CPU and the file


def test_auto_through_the_cli_says_what_it_chose(monkeypatch, tiny_onnx):
    from volo_export.preprocess import sample_photos

    monkeypatch.setattr(auto, "fastest", lambda runners, size, batch, progress=None: {"onnxruntime": 1.0,
                                                                                      "openvino": 2.0})
    res = CliRunner().invoke(app, ["predict", str(sample_photos()[0]), "--model", str(tiny_onnx), "--runtime",
                                   "auto", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["runtime"].startswith("ONNX Runtime")
    assert "--runtime auto chose onnxruntime: fastest at batch 1" in res.stderr


# ---------------------------------------------------------------- BF16 and the OpenVINO INT8 form, gated


@pytest.fixture(scope="module")
def eager_reference(tiny_trained):
    from volo_export.gate.reference import eager_reference as reference_of

    return reference_of(tiny_trained.model)


def _lower(tiny_fp32, eager_reference, digits_folders, tmp_path, **options):
    from volo_export.precision.convert import PrecisionRequest, lower_precision, lowering_data

    request = PrecisionRequest(**{"validate_count": 450, **options})
    info = read_info(tiny_fp32)
    data = lowering_data(info.preprocessing, request, digits_folders[1])
    return lower_precision(tiny_fp32, info, eager_reference, request, tmp_path / "m.onnx", data)


def _within_one_point(report, min_cos):
    pooled = report.comparisons[-1]
    assert report.passed and pooled.batch_size == 450
    assert abs(pooled.accuracy - pooled.reference_accuracy) <= 0.01
    assert min(c.min_cosine for c in report.comparisons) > min_cos


@needs_bf16
def test_bf16_precision_is_the_fp32_graph_gated_in_bf16(tiny_fp32, eager_reference, digits_folders, tmp_path):
    """Measured (450 test digits): OpenVINO bf16 cosine 0.99990, accuracy 98.44 % = FP32."""
    from volo_export.precision.forms import form_for

    lowered = _lower(tiny_fp32, eager_reference, digits_folders, tmp_path, precision="bf16")
    assert lowered.report.tolerance == "bf16"
    _within_one_point(lowered.report, 0.9995)
    assert graph_sha256(lowered.model) == graph_sha256(tiny_fp32)  # not one weight or node changed
    assert lowered.info.precision == "bf16" and lowered.info.extra["inference_precision"] == "bf16"
    gate = form_for("bf16").runner(lowered.model)
    assert isinstance(gate, OpenVinoRunner) and gate.inference_precision == "bf16"
    with pytest.raises(UsageError, match="bf16 is an inference hint for CPU runtimes"):
        form_for("bf16", "tensorrt")


def test_openvino_qdq_form(tiny_fp32, eager_reference, digits_folders, tmp_path):
    """Measured (450 test digits): OpenVINO cosine 0.99917, accuracy 98.44 % = FP32."""
    from volo_export.precision.forms import form_for

    lowered = _lower(tiny_fp32, eager_reference, digits_folders, tmp_path, precision="int8", target="openvino",
                     calib_data=str(digits_folders[0]))
    _within_one_point(lowered.report, 0.998)
    assert lowered.info.target == "openvino" and lowered.report.precision == "int8 (openvino)"
    assert isinstance(form_for("int8", "openvino").runner(lowered.model), OpenVinoRunner)
    model = lowered.model
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    ops = Counter(n.op_type for n in nodes)
    assert ops["AveragePool"] > 0 and ops["ReduceMean"] == 0 and ops["Gemm"] <= 1  # the exact passes ran
    from volo_export.passes.projections import fused_projections

    parts = [n for n in nodes if n.op_type == "MatMul" and n.name.rsplit("_", 1)[-1].startswith("part")]
    assert not fused_projections(model) and len(parts) >= 8  # qkv and kv split per part (passes.heads), and
    assert all(producer[n.input[1]].op_type == "DequantizeLinear" for n in parts)  # every part quantised

    shape_ops = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Split")

    def source(tensor):  # the Q whose DQ feeds `tensor` (through shape ops: Q/DQ were hoisted above them)
        node = producer.get(tensor)
        while node is not None and node.op_type in shape_ops:
            node = producer.get(node.input[0])
        return producer.get(node.input[0]) if node is not None and node.op_type == "DequantizeLinear" else None

    for conv in (n for n in nodes if n.op_type == "Conv"):  # never uint8 with zero point 0 before a convolution
        q = source(conv.input[0])
        assert q is not None and consts[q.input[2]].dtype == np.int8
    attention = [n for n in nodes if n.op_type == "MatMul" and source(n.input[0]) and source(n.input[1])]
    assert len(attention) >= 2  # q.k^T and attn.v of the transformer blocks are int8
    softmax_q = [n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] in producer
                 and producer[n.input[0]].op_type == "Softmax"]
    assert softmax_q and all(consts[q.input[2]].dtype == np.uint8 and consts[q.input[2]] == 0 for q in softmax_q)
    from volo_export.passes.graph import GraphIndex

    index = GraphIndex(model)
    hoistable = [q for q in nodes if q.op_type == "QuantizeLinear" and q.input[0] in producer
                 and producer[q.input[0]].op_type in shape_ops and index.only_consumer(q.input[0]) is q
                 and index.only_consumer(producer[q.input[0]].input[0]) is producer[q.input[0]]
                 and producer.get(producer[q.input[0]].input[0]) is not None
                 and producer[producer[q.input[0]].input[0]].op_type in ("Gelu", "MatMul", "Softmax")]
    assert not hoistable  # every pair that could climb to its producing kernel did


def test_openvino_target_without_openvino_is_refused_up_front(monkeypatch):
    from volo_export.precision.convert import PrecisionRequest

    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    with pytest.raises(RuntimeUnavailable, match="OpenVINO is not installed"):
        PrecisionRequest(precision="int8", target="openvino", calib_data="random")
    with pytest.raises(UsageError, match="--target openvino is for int8"):
        PrecisionRequest(precision="fp16", target="openvino")


@pytest.mark.parametrize("precision,target", [("fp16", None), pytest.param("int8", "tensorrt", marks=pytest.mark.slow),
                                              pytest.param("int8", "openvino", marks=pytest.mark.slow)])
def test_every_kind_validates_in_openvino(tiny_fp32, eager_reference, digits_folders, tmp_path, precision, target):
    """FP16 and INT8 (tensorrt, openvino) artifacts through `validate --runtime openvino`: the gate of their
    precision, judged on what OpenVINO computes (the bundled weights are the reference)."""
    from volo_export.export.to_onnx import save_onnx

    calib = str(digits_folders[0]) if precision == "int8" else None
    lowered = _lower(tiny_fp32, eager_reference, digits_folders, tmp_path, precision=precision, target=target,
                     calib_data=calib, validate_count=64)
    path = tmp_path / f"{precision}_{target}.onnx"
    save_onnx(lowered.model, path)
    res = CliRunner().invoke(app, ["validate", "--model", str(path), "--runtime", "openvino", "--json",
                                   "--validate-images", str(digits_folders[1])])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["passed"] and report["precision"] == f"{precision} (openvino-cpu)" and report["tolerance"] == precision
    assert min(c["min_cosine"] for c in report["comparisons"]) > (0.9999 if precision == "fp16" else 0.998)


@pytest.mark.slow
def test_d1_openvino_int8_and_bf16_end_to_end(d1_onnx_with_checkpoint, tmp_path):
    """Full-size VOLO-D1 (random weights), the photos that ship with scikit-image: `--target openvino` at cosine
    >= 0.99 vs eager (measured 0.9992), the FP32 export and the INT8 artifact validated in OpenVINO, BF16 gated."""
    from volo_export.calibration.samples import write_samples

    onnx_path, checkpoint = d1_onnx_with_checkpoint
    calib, val = write_samples("volo_d1_224", tmp_path / "samples")
    runner = CliRunner()
    out, report = tmp_path / "d1_int8_ov.onnx", tmp_path / "r.json"
    res = runner.invoke(app, ["quantize", str(onnx_path), "-c", str(checkpoint), "-o", str(out), "--target", "openvino",
                              "--calib-data", str(calib), "--validate-images", str(val), "--report", str(report)])
    assert res.exit_code == 0, res.output
    gate = json.loads(report.read_text())
    assert gate["passed"] and min(c["min_cosine"] for c in gate["comparisons"]) >= 0.99
    for artifact in (onnx_path, out):
        res = runner.invoke(app, ["validate", "--model", str(artifact), "-c", str(checkpoint), "--runtime", "openvino"])
        assert res.exit_code == 0, res.output
    if BF16_CPU:
        res = runner.invoke(app, ["quantize", str(onnx_path), "-c", str(checkpoint), "-o", str(tmp_path / "b.onnx"),
                                  "--precision", "bf16", "--validate-images", str(val)])
        assert res.exit_code == 0, res.output


def test_ctrl_c_after_the_runners_are_gone_stops_cleanly(tmp_path, tiny_onnx):
    """OpenVINO's CPU plugin installs an alternate signal stack per Core and puts the one it found back when
    that Core goes: Cores released first-in first-out left the process on a freed stack, and the next
    Ctrl-C killed it with SIGSEGV (the gate's runners come and go). Checked in a fresh Python."""
    script = textwrap.dedent(f"""
        import gc, signal
        from volo_export.runtime.openvino_runner import OpenVinoRunner
        first = OpenVinoRunner({str(tiny_onnx)!r})
        second = OpenVinoRunner({str(tiny_onnx)!r})
        first = None
        gc.collect()
        second = None
        gc.collect()
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            print("stopped cleanly")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path),
                               "XDG_CACHE_HOME": str(tmp_path)})
    assert done.returncode == 0 and "stopped cleanly" in done.stdout, (done.returncode, done.stderr[-2000:])
