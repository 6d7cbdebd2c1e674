"""The Python API (`import volo_export as ve`) on the bundled, trained tiny model: real numbers against
eager PyTorch, labelled predictions on held-out digits, typed errors (never SystemExit), and an
`import volo_export` that loads no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import volo_export as ve


@pytest.fixture(scope="module")
def api_fp32(tiny_trained_onnx):
    """ve.export of the trained volo_tiny_digits (conftest): (path, ExportResult)."""
    return tiny_trained_onnx


def _test_images(digits_folders, per_class: int = 5):
    """`per_class` held-out test digits of every class: (paths, labels)."""
    _, test_dir = digits_folders
    paths, labels = [], []
    for label in range(10):
        for path in sorted((test_dir / str(label)).glob("*.png"))[:per_class]:
            paths.append(path)
            labels.append(label)
    return paths, np.array(labels)


def test_import_loads_no_torch_and_exports_the_documented_names():
    light = subprocess.run([sys.executable, "-c", "import sys, volo_export; print(sorted(m for m in ('torch', 'onnx', "
                            "'onnxruntime', 'numpy') if m in sys.modules))"], capture_output=True, text=True, check=True)
    assert light.stdout.strip() == "[]"
    for name in ("export", "quantize", "check", "build_engine", "validate", "load", "Runner", "ExportResult",
                 "Report", "VoloExportError"):
        assert name in ve.__all__ and name in dir(ve) and getattr(ve, name).__doc__
    with pytest.raises(AttributeError, match="no attribute 'exprot'"):
        ve.exprot  # noqa: B018


def test_export_load_call_and_predict_match_eager(api_fp32, tiny_trained, digits_folders):
    path, result = api_fp32
    assert isinstance(result, ve.ExportResult)
    assert result.output == path and path.is_file() and result.report.passed
    assert result.info.model == "volo_tiny_digits" and result.info.precision == "fp32"
    assert "Col2Im" not in result.op_types and "passes TensorRT 10 ONNX parser rules" in result.trt_check
    runner = ve.load(path, runtime="onnxruntime")
    assert runner.runtime.startswith("onnxruntime") and runner.input_shape == (3, 64, 64)
    assert runner.labels == tuple("0123456789")

    paths, labels = _test_images(digits_folders)
    batch = runner.preprocess(paths)
    assert batch.shape == (50, 3, 64, 64) and batch.dtype == np.float32
    logits = runner(batch)
    assert logits.shape == (50, 10) and logits.dtype == np.float32
    with torch.no_grad():
        eager = tiny_trained.model(torch.from_numpy(batch)).numpy()
    cosine = (logits * eager).sum(1) / np.linalg.norm(logits, axis=1) / np.linalg.norm(eager, axis=1)
    assert cosine.min() > 0.9999 and np.abs(logits - eager).max() < 1e-3
    assert (logits.argmax(1) == eager.argmax(1)).all()

    predictions = runner.predict(paths, top_k=3)
    assert [p.file for p in predictions] == [str(p) for p in paths]
    assert all(len(p.top) == 3 and p.top[0].probability >= p.top[1].probability for p in predictions)
    top1 = np.array([int(p.top[0].label) for p in predictions])
    assert (top1 == labels).mean() >= 0.94  # 98.4 % on the whole test split
    assert (top1 == logits.argmax(1)).all()
    from_array = runner.predict(batch[:4], top_k=1)
    assert [p.file for p in from_array] == ["0", "1", "2", "3"]
    assert [p.top[0].index for p in from_array] == list(logits[:4].argmax(1))
    folder = runner.predict(digits_folders[1] / "7")  # a folder, recursively
    assert len(folder) > 30 and sum(p.top[0].label == "7" for p in folder) >= 0.9 * len(folder)


def test_load_auto_and_openvino_run_the_same_numbers(api_fp32, digits_folders):
    path, _ = api_fp32
    batch = ve.load(path, runtime="onnxruntime").preprocess(_test_images(digits_folders, 1)[0])
    reference = ve.load(path, runtime="onnxruntime")(batch)
    for runtime in ("openvino", "auto"):
        runner = ve.load(path, runtime=runtime, batch=len(batch))
        assert runner.runtime.split("-")[0] in ("onnxruntime", "openvino")
        np.testing.assert_allclose(runner(batch), reference, atol=2e-3)


def test_validate_check_and_build_an_engine(api_fp32, digits_folders, tmp_path):
    path, _ = api_fp32
    report = ve.validate(path, images=digits_folders[1], runtime="onnxruntime")
    assert isinstance(report, ve.Report) and report.passed and report.comparisons
    assert min(c.min_cosine for c in report.comparisons) > 0.9999
    checked = ve.check(path, real=False, trtexec=True)
    assert isinstance(checked, ve.CheckResult) and checked.passed and "Col2Im" not in checked.op_types
    assert checked.trtexec.startswith("trtexec --onnx=")

    pytest.importorskip("tensorrt_rtx")
    engine = ve.build_engine(path, tmp_path / "tiny.engine", runtime="rtx", max_batch=8)
    assert engine.engine.stat().st_size > 1_000_000 and engine.sidecar.is_file()
    assert engine.provenance.profile.batches == (1, 8, 8)
    assert engine.provenance.metadata["volo_export.model"] == "volo_tiny_digits"


@pytest.mark.slow
def test_quantize_int8_is_gated_and_validates(api_fp32, digits_folders, tmp_path):
    path, _ = api_fp32
    calib, test = digits_folders
    result = ve.quantize(path, tmp_path / "int8.onnx", precision="int8", calib_data=calib, calib_size=64,
                         validate_count=48)
    assert result.report.passed and result.info.precision == "int8" and result.op_types["QuantizeLinear"] > 10
    pooled = [c for c in result.report.comparisons if c.scope == "all"]
    assert pooled and pooled[0].min_cosine > 0.99 and pooled[0].top1_agreement > 0.95
    assert ve.validate(tmp_path / "int8.onnx", images=test, runtime="onnxruntime").passed
    assert ve.check(tmp_path / "int8.onnx", real=False).op_types["QuantizeLinear"] > 10


def test_errors_are_typed_never_system_exit(api_fp32, tiny_naive_onnx, tmp_path):
    path, _ = api_fp32
    cases = [
        (lambda: ve.export("volo_d9_224", tmp_path / "x.onnx"), ve.UnknownModelError, "unknown model"),
        (lambda: ve.export("volo_tiny_digits", tmp_path / "x.onnx", precision="int8"), ve.UsageError,
         "needs --calib-data"),
        (lambda: ve.export("volo_tiny_digits", tmp_path / "no" / "x.onnx"), ve.UsageError, "does not exist"),
        (lambda: ve.quantize(path, tmp_path / "x.onnx", precision="fp32"), ve.UsageError, "already is FP32"),
        (lambda: ve.load(tmp_path / "gone.onnx", runtime="onnxruntime"), ve.InputDataError, "model not found"),
        (lambda: ve.load(path, runtime="tensorflow"), ve.UsageError, "--runtime 'tensorflow'"),
        (lambda: ve.load(path, runtime="onnxruntime", model_name="volo_d1_224"), ve.UsageError,
         "carries volo-export metadata"),
        (lambda: ve.load(path, runtime="onnxruntime")(np.zeros((2, 3, 32, 32), np.float32)), ve.InputDataError,
         r"takes float \(N, 3, 64, 64\) input"),
        (lambda: ve.load(path, runtime="onnxruntime").predict(np.zeros((1, 3, 64, 64)), top_k=0), ve.UsageError,
         "top_k must be >= 1"),
        (lambda: ve.check(tiny_naive_onnx, real=False), ve.TensorRTCheckFailed, "Col2Im"),
        (lambda: ve.build_engine(path, tmp_path / "x.onnx", runtime="rtx"), ve.UsageError, "an engine file ends"),
        (lambda: ve.validate(path, checkpoint=tmp_path / "gone.pth"), ve.VoloExportError, "gone.pth"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            call()
        assert isinstance(caught.value, ve.VoloExportError) and caught.value.exit_code in (1, 2, 3, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failed_gate_raises_validation_failed_and_foreign_onnx_needs_model_name(api_fp32, tmp_path):
    path, _ = api_fp32
    with pytest.raises(ve.ValidationFailed, match="differs from eager PyTorch") as caught:
        ve.validate(path, min_cosine=1.0)
    assert caught.value.exit_code == 3 and not caught.value.report.passed
    assert any("cosine" in f for f in caught.value.report.failures)
    foreign = onnx.load(str(path))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    runner = ve.load(tmp_path / "foreign.onnx", runtime="onnxruntime", model_name="volo_tiny_digits")
    assert runner.info.model == "volo_tiny_digits" and runner.labels[3] == "3"
    with pytest.raises(ve.InputDataError, match="carries no volo-export metadata"):
        ve.load(tmp_path / "foreign.onnx", runtime="onnxruntime")
