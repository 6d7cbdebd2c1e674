"""`volo-export onnx` end to end through the CLI: success, the gate, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from helpers import assert_one_line_error as _assert_one_line_error
from volo_export.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    result = _run("onnx", "--model", "volo_tiny_digits", "--output", out / "tiny.onnx", "--report", out / "r.json")
    return result, out


def test_onnx_writes_validated_model(tiny_export):
    result, out = tiny_export
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "wrote" in result.output
    report = json.loads((out / "r.json").read_text())
    assert report["passed"] is True and report["precision"] == "fp32"
    batches = {c["batch_size"] for c in report["comparisons"]}
    assert {1, 4, 8} <= batches  # several batch sizes through one dynamic-batch graph
    assert any(c["inputs"].startswith("photos") for c in report["comparisons"])  # real images, not only noise
    for c in report["comparisons"]:
        assert c["max_abs"] < 1e-4 * max(1.0, c["reference_scale"])
        assert c["min_cosine"] > 0.99999 and c["top1_agreement"] == 1.0
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "tiny.onnx"]  # no temp leftovers


def test_checkpoint_is_loaded_and_recorded(tmp_path, tiny_state_dict):
    from volo_export.export.metadata import read_info
    from volo_export.io import sha256_file

    ckpt = tmp_path / "tiny.pth.tar"
    torch.save({"state_dict_ema": tiny_state_dict, "epoch": 1}, ckpt)
    result = _run("onnx", "-m", "volo_tiny_digits", "-c", ckpt, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 0, result.output
    info = read_info(tmp_path / "x.onnx")
    assert info.checkpoint_sha256 == sha256_file(ckpt) and not info.random_weights
    assert "RANDOM weights" not in result.output


def test_unknown_model_lists_choices(tmp_path):
    result = _run("onnx", "--model", "volo_d9_224", "--output", tmp_path / "x.onnx")
    _assert_one_line_error(result, 2, "unknown model 'volo_d9_224'", "volo_d1_224", "volo_d5_512")
    assert not (tmp_path / "x.onnx").exists()


def test_missing_checkpoint(tmp_path):
    result = _run("onnx", "-m", "volo_tiny_digits", "-c", tmp_path / "none.pth.tar", "-o", tmp_path / "x.onnx")
    _assert_one_line_error(result, 1, "checkpoint not found")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_checkpoint(tmp_path):
    (tmp_path / "bad.pth.tar").write_bytes(b"PK\x03\x04 truncated zip")
    result = _run("onnx", "-m", "volo_tiny_digits", "-c", tmp_path / "bad.pth.tar", "-o", tmp_path / "x.onnx")
    _assert_one_line_error(result, 1, "is not a PyTorch checkpoint (corrupt, truncated or another kind of file)")
    assert not (tmp_path / "x.onnx").exists()


def test_checkpoint_of_other_variant(tmp_path, tiny_state_dict):
    torch.save({"state_dict": tiny_state_dict}, tmp_path / "tiny.pth.tar")
    result = _run("onnx", "-m", "volo_d1_224", "-c", tmp_path / "tiny.pth.tar", "-o", tmp_path / "x.onnx")
    _assert_one_line_error(result, 1, "does not fit volo_d1_224", "mis-shaped")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("target,fragment", [("missing/x.onnx", "does not exist"), (".", "is a directory")])
def test_unwritable_output(tmp_path, target, fragment):
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / target)
    _assert_one_line_error(result, 2, fragment)


@pytest.mark.parametrize("extra", [["--report", "r.json"], ["--validate-images", "."]])
def test_options_that_need_validation(tmp_path, extra):
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "x.onnx", "--no-validate", *extra)
    _assert_one_line_error(result, 2, "needs validation")


def test_bad_opset_and_batch(tmp_path):
    _assert_one_line_error(_run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "x.onnx", "--opset", "13"),
                           2, "--opset 13 unsupported")
    _assert_one_line_error(_run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "x.onnx", "--batch", "0"),
                           2, "--batch must be >= 1")


def test_failed_gate_shows_the_report_and_leaves_no_file(tmp_path):
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "x.onnx", "--min-cosine", "1",
                  "--report", tmp_path / "r.json")
    _assert_one_line_error(result, 3, "x.onnx failed its fp32 gate, not written", "cosine")
    assert "FAIL" in result.stdout and json.loads((tmp_path / "r.json").read_text())["passed"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # the report of the miss, no model


@pytest.mark.slow
def test_validate_images_folder_with_junk(tmp_path):
    from PIL import Image

    images = tmp_path / "imgs"
    (images / "sub").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (50 + 10 * i, 40), (40 * i, 100, 200)).save(images / "sub" / f"{i}.png")
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "x.onnx", "--validate-images", images,
                  "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert any("skipped 1 unreadable image(s): broken.jpg" in n for n in report["notes"])
    assert sum(c["batch_size"] for c in report["comparisons"] if c["inputs"].startswith("imgs")) == 3


def test_empty_validate_images_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "x.onnx", "--validate-images", tmp_path / "empty")
    _assert_one_line_error(result, 1, "no images")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_static_batch_export_validates(tmp_path):
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "x.onnx", "--batch", "3",
                  "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert {c["batch_size"] for c in report["comparisons"]} == {3}


def test_models_command_json():
    result = _run("models", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["volo_d1_224"]["gmacs"] == 6.9 and rows["volo_d5_512"]["image_size"] == 512


@pytest.mark.slow
def test_d1_224_end_to_end(tmp_path):
    """The README's main job: volo_d1_224 to a validated ONNX in one command."""
    result = _run("onnx", "--model", "volo_d1_224", "--output", tmp_path / "d1.onnx", "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and len(report["comparisons"]) >= 4
    assert max(c["max_abs"] for c in report["comparisons"]) < 1e-4
    from volo_export.export.metadata import read_info

    info = read_info(tmp_path / "d1.onnx")
    assert info.model == "volo_d1_224" and info.random_weights and info.preprocessing.crop_pct == 0.96
