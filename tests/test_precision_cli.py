"""`volo-export onnx --precision` and `volo-export quantize` through typer's CliRunner:
artifacts, metadata, the calibration cache, failed gates and every bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from helpers import assert_one_line_error
from volo_export.cli import app
from volo_export.export.metadata import read_info
from volo_export.export.to_onnx import save_onnx

runner = CliRunner()


@pytest.fixture(scope="module")
def fp32_file(tiny_fp32, tmp_path_factory):
    path = tmp_path_factory.mktemp("fp32") / "tiny.onnx"
    save_onnx(tiny_fp32, path)
    return path


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result, result.output


def test_quantize_int8_writes_gated_artifact_and_reuses_cache(fp32_file, digits_folders, tmp_path):
    calib, test = digits_folders
    out, report = tmp_path / "tiny_int8.onnx", tmp_path / "r.json"
    args = ["quantize", fp32_file, "-o", out, "--calib-data", calib, "--validate-images", test, "--validate-count",
            "450", "--report", report]
    result, output = _invoke(*args)
    assert result.exit_code == 0, output
    assert "vs eager PyTorch (int8 (tensorrt), int8 gate): PASS" in output.replace("\n", " ")
    info = read_info(out)
    assert (info.precision, info.target, info.model) == ("int8", "tensorrt", "volo_tiny_digits")
    calibration = json.loads(info.extra["calibration"])
    assert calibration["method"] == "minmax" and calibration["size"] == "256" and calibration["random"] == "false"
    # 20 of the 29 linear layers; the 5 convolutions and the 9 GEMMs on one row per image stay float16
    assert info.extra["quantized_nodes"] == "20" and "calibration_random" not in info.extra
    assert info.extra["high_precision"] == "fp16" and "5 Conv (left in float16" in info.extra["kept_float32"]
    data = json.loads(report.read_text())
    pooled = data["comparisons"][-1]
    assert data["passed"] and pooled["scope"] == "all" and pooled["batch_size"] == 450
    assert abs(pooled["accuracy"] - pooled["reference_accuracy"]) <= 0.01
    cache = tmp_path / "tiny_int8.calib.json"
    assert cache.is_file() and "no calibration cache at" in output

    args[args.index("--validate-count") + 1] = "32"
    result, output = _invoke(*args)
    assert result.exit_code == 0 and "reusing calibration cache" in output
    result, output = _invoke(*args, "--high-precision", "fp32")  # the earlier form: all 34 quantised, float32 rest
    assert result.exit_code == 0 and "reusing calibration cache" in output
    assert read_info(out).extra["quantized_nodes"] == "34" and read_info(out).extra["high_precision"] == "fp32"
    result, output = _invoke(*args, "--precision", "fp8")  # one calibration cache serves every Q/DQ form
    assert result.exit_code == 0 and "reusing calibration cache" in output
    assert "vs eager PyTorch (fp8 (tensorrt), fp8 gate): PASS" in " ".join(output.split())
    assert (read_info(out).precision, read_info(out).target) == ("fp8", "tensorrt")
    # the commands that open artifacts know FP8: validate (its gate, ONNX Runtime and OpenVINO) and triton-repo
    for runtime in ("onnxruntime", "openvino"):
        result, output = _invoke("validate", "-m", out, "--validate-images", test, "--runtime", runtime)
        assert result.exit_code == 0 and f"(fp8 ({runtime}-cpu), fp8 gate): PASS" in " ".join(output.split()), output
    result, output = _invoke("triton-repo", out, "-o", tmp_path / "repo")
    assert result.exit_code == 0, output
    assert 'value: "fp8"' in (tmp_path / "repo" / "tiny_int8" / "config.pbtxt").read_text()
    result, output = _invoke(*args, "--calib-size", "100", "--target", "cpu")
    assert result.exit_code == 0, output
    assert "is stale: calibration size changed (256 -> 100 samples)" in " ".join(output.split())
    assert read_info(out).target == "cpu"


@pytest.mark.slow
def test_onnx_precision_int8_cpu_end_to_end(digits_folders, tmp_path):
    calib, test = digits_folders
    out = tmp_path / "d.onnx"
    result, output = _invoke("onnx", "-m", "volo_tiny_digits", "-o", out, "--precision", "int8", "--target", "cpu",
                             "--calib-data", calib, "--validate-images", test, "--calib-size", "64")
    assert result.exit_code == 0, output
    flat = " ".join(output.split())
    assert "(FP32 stage)" in flat and "int8 (cpu), int8 gate): PASS" in flat and "target cpu" in flat
    info = read_info(out)
    assert (info.precision, info.target) == ("int8", "cpu") and not info.random_weights
    assert info.extra["fp32_graph_sha256"] and json.loads(info.extra["calibration"])["size"] == "64"


def test_quantize_fp16(fp32_file, digits_folders, tmp_path):
    out = tmp_path / "h.onnx"
    result, output = _invoke("quantize", fp32_file, "-o", out, "--precision", "fp16", "--validate-images",
                             digits_folders[1], "--io-dtype", "float16")
    assert result.exit_code == 0, output
    info = read_info(out)
    assert (info.precision, info.target, info.extra["io_dtype"]) == ("fp16", "any", "float16")
    assert "LayerNormalization (op type kept float32)" in json.loads(info.extra["kept_float32"])[0]


def test_random_calibration_is_stamped(fp32_file, digits_folders, tmp_path):
    out = tmp_path / "r.onnx"
    result, output = _invoke("quantize", fp32_file, "-o", out, "--calib-data", "random", "--calib-size", "32",
                             "--validate-images", digits_folders[1], "--validate-count", "16", "--no-fallback",
                             "--min-cosine", "0", "--min-top1", "0", "--max-accuracy-drop", "1")
    assert result.exit_code == 0, output
    assert "calibrated on RANDOM data" in " ".join(output.split())
    info = read_info(out)
    assert info.extra["calibration_random"] == "true" and json.loads(info.extra["calibration"])["random"] == "true"


@pytest.mark.slow
def test_failed_gate_writes_nothing_and_shows_the_report(fp32_file, digits_folders, tmp_path):
    out, report = tmp_path / "f.onnx", tmp_path / "f.json"
    result, output = _invoke("quantize", fp32_file, "-o", out, "--calib-data", digits_folders[0], "--validate-images",
                             digits_folders[1], "--validate-count", "16", "--min-cosine", "1", "--report", report)
    assert_one_line_error(result, 3, "INT8 misses the gate even with 10 of 20 quantisable nodes left unquantised")
    assert "automatic precision fallback" in output and "FAIL" in output
    assert not out.exists() and not list(tmp_path.glob(".f.onnx*"))
    data = json.loads(report.read_text())
    assert data["passed"] is False and len(data["steps"]) == 6  # 0, 1, 2, 4, 8 and 10 of the 20 left unquantised


@pytest.mark.slow
def test_counted_skip_of_unreadable_calibration_images(fp32_file, digits_folders, tmp_path):
    calib = tmp_path / "calib"
    for i, png in enumerate(sorted(digits_folders[0].rglob("*.png"))[:40]):
        (calib / png.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(png).save(calib / png.parent.name / f"{i}.png")
    (calib / "0" / "corrupt.jpg").write_bytes(b"not a jpeg")
    (calib / "README.txt").write_text("notes")
    result, output = _invoke("quantize", fp32_file, "-o", tmp_path / "s.onnx", "--calib-data", calib,
                             "--validate-images", digits_folders[1], "--validate-count", "32")
    flat = " ".join(output.split())
    assert result.exit_code == 0, output
    assert "skipped 1 unreadable image(s): corrupt.jpg" in flat and "ignored 1 non-image file(s)" in flat


def test_bad_inputs_are_one_line_errors(fp32_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("x")
    (junk / "b.png").write_bytes(b"no png")
    np.save(tmp_path / "hwc.npy", np.zeros((2, 64, 64, 3), np.float32))
    out = tmp_path / "o.onnx"
    q = ["quantize", fp32_file, "-o", out]
    cases = [
        (["onnx", "-m", "volo_tiny_digits", "-o", out, "--precision", "int8"], 2, "--precision int8 needs --calib-data"),
        ([*q, "--calib-data", empty], 1, "no images (jpg/jpeg/png/webp/bmp/tif/tiff) under"),
        ([*q, "--calib-data", junk], 1, "none of the 1 image file(s)"),
        ([*q, "--calib-data", tmp_path / "hwc.npy"], 1, "expected float tensors of shape (N, 3, 64, 64)"),
        ([*q, "--calib-data", tmp_path / "missing"], 1, "not found"),
        ([*q, "--calib-data", "random", "--calib-method", "kl"], 2, "'kl' is not one of 'minmax', 'entropy', 'percentile'"),
        ([*q, "--calib-data", "random", "--target", "gpu"], 2, "'gpu' is not one of 'tensorrt', 'cpu'"),
        ([*q, "--precision", "fp32"], 2, "the source already is FP32"),
        ([*q, "--precision", "fp16", "--calib-data", "random"], 2, "--calib-data applies to --precision int8/fp8 only"),
        ([*q, "--precision", "fp16", "--target", "cpu"], 2, "--target cpu is for int8"),
        ([*q, "--calib-data", "random", "--exclude-nodes", "nope"], 2, "--exclude-nodes: no node named 'nope'"),
        (["quantize", fp32_file, "-o", fp32_file, "--calib-data", "random"], 2, "must differ from input MODEL"),
        (["onnx", "-m", "volo_tiny_digits", "-o", out, "--precision", "fp16", "--no-validate"], 2,
         "--no-validate is not available with --precision fp16"),
    ]
    for args, code, message in cases:
        assert_one_line_error(_invoke(*args)[0], code, message)
        assert not out.exists()


def test_quantize_refuses_non_fp32_and_foreign_models(fp32_file, digits_folders, tmp_path):
    fp16 = tmp_path / "h.onnx"
    result, _ = _invoke("quantize", fp32_file, "-o", fp16, "--precision", "fp16", "--validate-images",
                        digits_folders[1], "--validate-count", "8")
    assert result.exit_code == 0
    result, output = _invoke("quantize", fp16, "-o", tmp_path / "x.onnx", "--calib-data", "random")
    assert_one_line_error(result, 2, "is already fp16")
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"not onnx")
    result, output = _invoke("quantize", foreign, "-o", tmp_path / "y.onnx", "--calib-data", "random")
    assert_one_line_error(result, 1, "is not an ONNX model")


def test_cli_defaults_match_the_library():
    from volo_export.cli.options import GateOptions, Precision, PrecisionOptions
    from volo_export.precision.convert import PrecisionRequest

    cli = PrecisionOptions(calib_data="x").request(GateOptions(), Precision.INT8)
    assert cli == PrecisionRequest(precision="int8", calib_data="x")
    assert PrecisionOptions().request(GateOptions(), Precision.FP32) == PrecisionRequest()


@pytest.mark.slow
def test_d1_fp16_and_int8_end_to_end(d1_onnx_with_checkpoint, d1_samples, d1_int8_onnx, tmp_path):
    """Full-size VOLO-D1 (randomized weights, checkpoint saved so the gate compares with eager PyTorch):
    FP16 and INT8 `--target cpu` through `quantize`, INT8 `--target tensorrt` through the shared session
    export (`d1_int8_onnx`, the same use case), calibrated on scikit-image photo crops, gated on the other photos."""
    onnx_path, checkpoint = d1_onnx_with_checkpoint
    calib, val = d1_samples
    int8 = ["--calib-data", calib, "--calib-size", "64", "--calib-cache", tmp_path / "d1.calib.json"]
    runs = [("fp16", "tensorrt", []), ("int8", "cpu", int8)]
    written = {("int8", "tensorrt"): (d1_int8_onnx, d1_int8_onnx.parent / "d1_int8.json")}
    for precision, target, extra in runs:
        out, report = tmp_path / f"d1_{precision}_{target}.onnx", tmp_path / f"{precision}_{target}.json"
        result, output = _invoke("quantize", onnx_path, "-o", out, "-c", checkpoint, "--precision", precision,
                                 "--target", target, "--validate-images", val, "--report", report, *extra)
        assert result.exit_code == 0, output
        written[precision, target] = out, report
    for (precision, target), (out, report) in written.items():
        data = json.loads(report.read_text())
        pooled = data["comparisons"][-1]
        assert data["passed"] and data["reference"] == "eager PyTorch" and pooled["batch_size"] == 13
        assert min(c["min_cosine"] for c in data["comparisons"]) > (0.9999 if precision == "fp16" else 0.99)
        info = read_info(out)
        assert info.precision == precision and info.target == (target if precision == "int8" else "any")
