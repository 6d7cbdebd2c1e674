"""`volo-export preprocess`: images -> tensor file, with the preprocessing of an .onnx, an
engine sidecar or a registered variant, through the one preprocessing implementation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from helpers import assert_one_line_error, engine_sidecar
from volo_export.cli import app
from volo_export.errors import InputDataError
from volo_export.export.metadata import ArtifactInfo, write_info
from volo_export.artifact import read_artifact_info
from volo_export.models.variants import Preprocessing, get_config
from volo_export.preprocess import load_image, preprocess_image, sample_photos
from volo_export.tensorfile import read_tensor

runner = CliRunner()

# Deliberately unlike any registered variant, so the test shows whose preprocessing was used.
ODD_PREP = Preprocessing(size=40, crop_pct=0.8, interpolation="bilinear", mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def odd_info() -> ArtifactInfo:
    return ArtifactInfo(model="volo_tiny_digits", preprocessing=ODD_PREP, num_classes=10, labels="digits",
                        precision="fp16", opset=20, versions={"volo-export": "0.1.0"})


def photos(n: int = 2) -> list[Path]:
    found = [p for p in sample_photos() if p.name in ("astronaut.png", "coffee.png", "camera.png")]
    assert len(found) >= n, "scikit-image's sample photos are missing"
    return found[:n]


def expected(paths: list[Path], prep: Preprocessing) -> np.ndarray:
    return np.stack([preprocess_image(load_image(p), prep) for p in paths])


def metadata_only_onnx(path: Path, info: ArtifactInfo) -> Path:
    """A one-node ONNX carrying `info`: enough for anything that reads only metadata."""
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 40, 40])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3, 40, 40])])
    model = helper.make_model(graph)
    write_info(model, info)
    onnx.save(model, path)
    return path


def run(*args: str):
    return runner.invoke(app, ["preprocess", *map(str, args)])


def test_model_name_uses_the_variants_preprocessing(tmp_path):
    images, out = photos(2), tmp_path / "input.bin"
    result = run(*images, "--model-name", "volo_tiny_digits", "--out", out)
    assert result.exit_code == 0, result.output
    tensor = read_tensor(out)
    prep = get_config("volo_tiny_digits").preprocessing
    assert tensor.shape == (2, 3, prep.size, prep.size)
    np.testing.assert_array_equal(tensor, expected(images, prep))
    assert "(2, 3, 64, 64)" in result.output and f"1: {images[1]}" in result.output


def test_onnx_metadata_decides_the_preprocessing(tmp_path):
    model = metadata_only_onnx(tmp_path / "m.onnx", odd_info())
    images, out = photos(2), tmp_path / "input.bin"
    result = run(*images, "--model", model, "--out", out)
    assert result.exit_code == 0, result.output
    tensor = read_tensor(out)
    assert tensor.shape == (2, 3, 40, 40)
    np.testing.assert_array_equal(tensor, expected(images, ODD_PREP))
    # Not the registered variant's: a real difference, not a coincidence.
    assert not np.allclose(tensor[:, :, :40, :40],
                           expected(images, get_config("volo_tiny_digits").preprocessing)[:, :, :40, :40])


@pytest.mark.parametrize("as_sidecar", [False, True])
def test_engine_sidecar_decides_the_preprocessing(tmp_path, as_sidecar):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"opaque plan")
    (tmp_path / "m.engine.json").write_text(json.dumps(engine_sidecar(odd_info())))
    images, out = photos(1), tmp_path / "input.bin"
    result = run(*images, "--model", tmp_path / "m.engine.json" if as_sidecar else engine, "--out", out)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(read_tensor(out), expected(images, ODD_PREP))


def test_sidecar_metadata_round_trips_and_bad_sidecars_are_one_line(tmp_path):
    path = tmp_path / "m.engine.json"
    path.write_text(json.dumps(engine_sidecar(odd_info())))
    assert read_artifact_info(path) == odd_info()
    for name, content, needle in [
        ("a", json.dumps({"format": "volo-export.engine/1"}), "incomplete or damaged"),
        ("b", json.dumps({**engine_sidecar(odd_info()), "format": "other/9"}), "format 'other/9'"),
        ("c", json.dumps(engine_sidecar(odd_info(), metadata={"volo_export.model": "x"})), "incomplete volo-export metadata"),
        ("d", "{not json", "is not valid JSON"),
        ("e", "[1, 2]", "format 'list'"),
    ]:
        (tmp_path / f"{name}.engine.json").write_text(content)
        with pytest.raises(InputDataError, match=needle) as info:
            read_artifact_info(tmp_path / f"{name}.engine.json")
        assert "\n" not in str(info.value)


def test_unreadable_image_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_bytes(b"this is text, not a JPEG")
    out = tmp_path / "input.bin"
    assert_one_line_error(run(photos(1)[0], bad, "--model-name", "volo_tiny_digits", "--out", out), 1,
                    f"cannot read image {bad}")
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_missing_image_is_one_line(tmp_path):
    assert_one_line_error(run(tmp_path / "nope.jpg", "--model-name", "volo_tiny_digits", "--out", tmp_path / "x.bin"), 1,
                    f"image not found: {tmp_path / 'nope.jpg'}")


@pytest.mark.parametrize("args, code, needle", [
    ((), 2, "give exactly one of --model"),
    (("--model", "m.onnx", "--model-name", "volo_tiny_digits"), 2, "give exactly one of --model"),
    (("--model-name", "volo_nope"), 2, "volo_nope"),
    (("--model", "missing.engine"), 1, "has no sidecar"),
    (("--model", "missing.onnx"), 1, "model not found"),
])
def test_bad_model_options_are_one_line(tmp_path, monkeypatch, args, code, needle):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(run(photos(1)[0], *args, "--out", tmp_path / "input.bin"), code, needle)
    assert not (tmp_path / "input.bin").exists()


def test_unwritable_output_fails_before_work(tmp_path):
    assert_one_line_error(run(photos(1)[0], "--model-name", "volo_tiny_digits", "--out", tmp_path / "no" / "x.bin"), 2,
                    "does not exist")
