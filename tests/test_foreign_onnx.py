"""A VOLO ONNX from elsewhere (a plain torch.onnx.export, timm's onnx_export.py): `engine` runs the TensorRT
check before it needs volo-export metadata, so a naive export is refused for its Col2Im (exit 4, with the fix),
and a clean foreign graph builds with `--model-name` supplying preprocessing and labels (TensorRT-RTX: no GPU)."""

from __future__ import annotations

import json

import onnx
import pytest
from typer.testing import CliRunner

from volo_export.cli import app


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_naive_export_fails_the_tensorrt_check_naming_col2im_and_the_fix(tiny_naive_onnx, tmp_path):
    assert not {p.key for p in onnx.load(str(tiny_naive_onnx), load_external_data=False).metadata_props
                if p.key.startswith("volo_export.")}
    for runtime in ("auto", "rtx", "tensorrt"):
        res = _invoke("engine", tiny_naive_onnx, "-o", tmp_path / "naive.engine", "--runtime", runtime)
        assert res.exit_code == 4, res.output
        line = res.stderr.strip().splitlines()[-1]
        assert line.startswith("error: tiny_digits_naive.onnx breaks TensorRT's ONNX parser rules")
        assert "Col2Im" in line and "export with `volo-export onnx`" in line
    res = _invoke("engine", tiny_naive_onnx, "-o", tmp_path / "naive.engine", "--model-name", "volo_tiny_digits")
    assert res.exit_code == 4 and "Col2Im" in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def foreign_onnx(tiny_onnx, tmp_path):
    """The project's own export with its volo-export metadata stripped: what a clean export from elsewhere is."""
    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    onnx.save(proto, str(path))
    return path


def test_a_clean_foreign_onnx_needs_model_name(foreign_onnx, tmp_path):
    res = _invoke("engine", foreign_onnx, "-o", tmp_path / "f.engine", "--runtime", "rtx", "--no-check")
    assert res.exit_code == 1
    line = res.stderr.strip().splitlines()[-1]
    assert "carries no volo-export metadata" in line and "--model-name NAME" in line
    res = _invoke("engine", foreign_onnx, "-o", tmp_path / "f.engine", "--runtime", "rtx", "--model-name",
                  "volo_d9_224")
    assert res.exit_code == 2 and "unknown model 'volo_d9_224'" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.onnx"]


def test_model_name_on_an_artifact_with_metadata_is_refused(tiny_onnx, tmp_path):
    res = _invoke("engine", tiny_onnx, "-o", tmp_path / "t.engine", "--runtime", "rtx", "--model-name", "volo_d1_224")
    assert res.exit_code == 2 and "carries volo-export metadata (model volo_tiny_digits)" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_clean_foreign_onnx_builds_with_model_name(foreign_onnx, tmp_path):
    pytest.importorskip("tensorrt_rtx")
    engine = tmp_path / "f.engine"
    res = _invoke("engine", foreign_onnx, "-o", engine, "--runtime", "rtx", "--model-name", "volo_tiny_digits",
                  "--max-batch", "4")
    assert res.exit_code == 0, res.output
    assert "wrote " in res.stdout and "batch 1/4/4" in res.stdout
    sidecar = json.loads((tmp_path / "f.engine.json").read_text())
    meta = sidecar["metadata"]
    assert meta["volo_export.model"] == "volo_tiny_digits" and meta["volo_export.labels"] == "digits"
    assert meta["volo_export.image_size"] == "64" and meta["volo_export.num_classes"] == "10"
    assert sidecar["onnx"]["file"] == "foreign.onnx" and engine.stat().st_size == sidecar["engine"]["bytes"] > 1_000_000
