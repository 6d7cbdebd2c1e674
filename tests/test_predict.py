"""predict: real photos through the tiny model's ONNX (and a fake-GPU engine), top-k mechanics,
labels from metadata, and one-line errors for bad images or batches."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from helpers import assert_one_line_error, write_fake_engine
from volo_export.cli import app
from volo_export.errors import InputDataError, UsageError
from volo_export.labels import class_names
from volo_export.predict import predict_files, softmax, top_k
from volo_export.preprocess import preprocess_files, sample_photos
from volo_export.runtime import open_runner
from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner
from volo_export.trt.config import BuildSettings


@pytest.fixture(scope="module")
def photos():
    files = sample_photos()
    if len(files) < 6:
        pytest.skip("scikit-image's sample photos are not installed")
    return files[:6]


def test_predict_real_photos_with_digits_model(tiny_onnx, photos):
    runner = open_runner(tiny_onnx)
    preds = predict_files(runner, photos, k=3)
    assert [p.file for p in preds] == [str(f) for f in photos]
    batch = preprocess_files(photos, runner.info.preprocessing).array
    assert batch.shape == (6, 3, 64, 64)
    logits = runner(batch)
    for p, row in zip(preds, logits):
        assert len(p.top) == 3
        assert [c.index for c in p.top] == list(np.argsort(-row, kind="stable")[:3])
        assert [c.label for c in p.top] == [str(c.index) for c in p.top]  # digits model: labels '0'..'9'
        probs = [c.probability for c in p.top]
        assert probs == sorted(probs, reverse=True) and 0 < probs[-1] <= probs[0] < 1
        assert p.top[0].logit == pytest.approx(float(row.max()), abs=1e-6)
    full = predict_files(runner, photos[:1], k=50)[0]  # k above the class count: all 10 classes
    assert len(full.top) == 10 and sum(c.probability for c in full.top) == pytest.approx(1.0, abs=1e-9)


def test_top_k_with_imagenet_names():
    logits = np.zeros((2, 1000), np.float32)
    logits[0, 281], logits[0, 285], logits[1, 1] = 5.0, 4.0, 3.0
    first, second = top_k(logits, class_names("imagenet-1k", 1000), 2, ["cat.jpg", "fish.png"])
    assert [(c.index, c.label) for c in first.top] == [(281, "tabby, tabby cat"), (285, "Egyptian cat")]
    assert second.top[0].label == "goldfish, Carassius auratus"
    assert first.top[0].probability == pytest.approx(softmax(logits)[0, 281])
    assert first.to_dict()["top"][0] == {"index": 281, "label": "tabby, tabby cat",
                                         "probability": pytest.approx(first.top[0].probability), "logit": 5.0}


def test_cli_predict_json(tiny_onnx, photos):
    res = CliRunner().invoke(app, ["predict", *map(str, photos[:4]), "--model", str(tiny_onnx), "--top-k", "2",
                                   "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["runtime"].startswith("ONNX Runtime ") and out["runtime"].endswith(" CPUExecutionProvider")
    assert [len(p["top"]) for p in out["predictions"]] == [2, 2, 2, 2]
    assert all(c["label"] in "0123456789" for p in out["predictions"] for c in p["top"])
    table = CliRunner().invoke(app, ["predict", str(photos[0]), "-m", str(tiny_onnx)])
    assert table.exit_code == 0 and photos[0].name in table.stdout and "probability" in table.stdout


def test_cli_predict_engine_matches_onnx(fake_gpu, tmp_path, tiny_onnx, photos):
    engine = write_fake_engine(tiny_onnx, tmp_path / "tiny.engine", BuildSettings(max_batch=4))
    args = [*map(str, photos), "--top-k", "3", "--json"]
    via_engine = CliRunner().invoke(app, ["predict", *args, "--model", str(engine)])
    via_onnx = CliRunner().invoke(app, ["predict", *args, "--model", str(tiny_onnx)])
    assert via_engine.exit_code == 0, via_engine.output
    assert json.loads(via_engine.stdout)["predictions"] == json.loads(via_onnx.stdout)["predictions"]
    assert fake_gpu.sessions[0].batches == [4, 2]  # 6 images in the engine's profile 1..4


def test_cli_predict_bad_inputs(fake_gpu, tmp_path, tiny_onnx, photos):
    runner = CliRunner()
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a picture")
    assert_one_line_error(runner.invoke(app, ["predict", str(photos[0]), str(not_image), "-m", str(tiny_onnx)]),
                    1, "cannot read image")
    assert_one_line_error(runner.invoke(app, ["predict", str(tmp_path / "gone.png"), "-m", str(tiny_onnx)]),
                    1, "image not found")
    assert_one_line_error(runner.invoke(app, ["predict", str(photos[0]), "-m", str(tiny_onnx), "--top-k", "0"]),
                    2, "--top-k must be >= 1")

    engine = write_fake_engine(tiny_onnx, tmp_path / "tiny.engine", BuildSettings(max_batch=4))
    assert_one_line_error(runner.invoke(app, ["predict", str(photos[0]), "-m", str(engine), "--batch-size", "8"]),
                    2, "batch 8 does not fit tiny.engine, which takes batch 1..4; choose a --batch-size in range")

    plan = engine.read_bytes()
    engine.write_bytes(b"\x08\x07" + plan[2:])  # an engine file that is not the plan its sidecar describes
    assert_one_line_error(runner.invoke(app, ["predict", str(photos[0]), "-m", str(engine)]),
                    1, "tiny.engine does not match its sidecar (sha256 differs)")
    engine.write_bytes(b"not a plan")
    assert_one_line_error(runner.invoke(app, ["predict", str(photos[0]), "-m", str(engine)]),
                    1, "10 bytes: too small to be a TensorRT plan")
    orphan = tmp_path / "orphan.engine"
    orphan.write_bytes(plan)
    assert_one_line_error(runner.invoke(app, ["predict", str(photos[0]), "-m", str(orphan)]),
                    1, "has no sidecar orphan.engine.json beside it")


def test_cli_predict_engine_from_another_machine(fake_gpu, tmp_path, tiny_onnx, photos):
    import dataclasses

    engine = write_fake_engine(tiny_onnx, tmp_path / "tiny.engine")
    fake_gpu.running = dataclasses.replace(fake_gpu.running, gpu_name="NVIDIA H100 80GB HBM3",
                                           compute_capability="9.0", tensorrt="11.1.0")
    assert_one_line_error(CliRunner().invoke(app, ["predict", str(photos[0]), "-m", str(engine)]),
                    1, "built with TensorRT 10.13.0.35 but this machine runs TensorRT 11.1.0")


def test_predict_needs_metadata_and_images(tiny_onnx):
    runner = open_runner(tiny_onnx)
    with pytest.raises(UsageError, match="no images"):
        predict_files(runner, [])
    stripped = onnx.load(str(tiny_onnx))
    del stripped.metadata_props[:]
    with pytest.raises(InputDataError, match="carries no volo-export metadata"):
        predict_files(OnnxRuntimeRunner(stripped.SerializeToString()), sample_photos()[:1])
