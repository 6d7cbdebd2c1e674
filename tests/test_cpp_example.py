"""examples/cpp built without TensorRT (-DVOLO_WITH_TENSORRT=OFF): its unit tests pass under
ctest, and the C++ side reads exactly what the Python side writes (tensor files, engine
sidecars) and ranks logits like numpy. volo_infer itself needs TensorRT and is not built here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import build_cmake_project, engine_sidecar
from volo_export.cli import app
from volo_export.export.metadata import ArtifactInfo
from volo_export.models.variants import get_config
from volo_export.preprocess import sample_photos
from volo_export.tensorfile import read_tensor, write_tensor

SOURCE = Path(__file__).resolve().parents[1] / "examples" / "cpp"


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    return build_cmake_project(SOURCE, tmp_path_factory.mktemp("cpp_build"), "-DVOLO_WITH_TENSORRT=OFF")


def inspect(build: Path, *args, expect_rc: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(build / "volo_inspect"), *map(str, args)], capture_output=True, text=True)
    assert result.returncode == expect_rc, result.stdout + result.stderr
    return result


def inspect_json(build: Path, *args) -> dict:
    return json.loads(inspect(build, *args).stdout)


def test_cpp_unit_tests_pass_under_ctest(build):
    result = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "100% tests passed" in result.stdout


def test_cpp_reads_the_preprocessed_photos_exactly(build, tmp_path):
    images = [p for p in sample_photos() if p.name in ("astronaut.png", "coffee.png")]
    out = tmp_path / "input.bin"
    result = CliRunner().invoke(app, ["preprocess", *map(str, images), "--model-name", "volo_tiny_digits",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = read_tensor(out)
    seen = inspect_json(build, "tensor", out)
    assert seen["dims"] == [2, 3, 64, 64] and seen["count"] == expected.size
    np.testing.assert_array_equal(np.float32(seen["first"]), expected.ravel()[:8])  # %.9g round-trips float32
    assert np.float32(seen["min"]) == expected.min() and np.float32(seen["max"]) == expected.max()
    assert seen["sum"] == pytest.approx(float(expected.astype(np.float64).sum()), rel=1e-12)
    assert seen["sum_abs"] == pytest.approx(float(np.abs(expected.astype(np.float64)).sum()), rel=1e-12)
    assert seen["non_finite"] == 0


def test_cpp_writes_what_python_reads(build, tmp_path):
    rng = np.random.default_rng(1)
    array = rng.standard_normal((3, 5, 7)).astype(np.float32)
    array[0, 0, :3] = [np.nan, np.inf, -0.0]
    src = write_tensor(tmp_path / "a.bin", array)
    inspect(build, "copy", src, tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()
    np.testing.assert_array_equal(read_tensor(tmp_path / "b.bin"), array)


def test_cpp_top5_matches_numpy(build, tmp_path):
    rng = np.random.default_rng(2)
    logits = (rng.standard_normal((4, 10)) * 4).astype(np.float32)
    logits[1, 7] = logits[1, 2] = logits[1].max() + 1  # a tie: the lower index ranks first
    logits[2] += 900.0  # large logits must not overflow the softmax
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    seen = inspect_json(build, "top", write_tensor(tmp_path / "logits.bin", logits), "--labels", labels)
    x = logits.astype(np.float64)
    probs = np.exp(x - x.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for row, preds in enumerate(seen["rows"]):
        order = np.argsort(-logits[row], kind="stable")[:5]
        assert [p["index"] for p in preds] == order.tolist()
        assert [p["label"] for p in preds] == [f"digit {i}" for i in order]
        np.testing.assert_array_equal(np.float32([p["logit"] for p in preds]), logits[row, order])
        np.testing.assert_allclose([p["probability"] for p in preds], probs[row, order], rtol=1e-6, atol=1e-9)
    assert seen["rows"][1][0]["index"] == 2 and seen["rows"][1][1]["index"] == 7


def write_sidecar(path: Path, **overrides) -> tuple[Path, dict]:
    info = ArtifactInfo.for_model(get_config("volo_tiny_digits"), checkpoint_sha256=None, opset=20)
    path.write_text(json.dumps(engine_sidecar(info, **overrides), indent=2))
    return path, json.loads(path.read_text())


def test_cpp_reads_the_python_sidecar(build, tmp_path):
    path, sidecar = write_sidecar(tmp_path / "m.engine.json", build={"plugins": ["libvolo_plugins.so"]})
    seen = inspect_json(build, "sidecar", path)
    env, meta = sidecar["environment"], sidecar["metadata"]
    assert (seen["engine_file"], seen["engine_bytes"]) == (sidecar["engine"]["file"], sidecar["engine"]["bytes"])
    assert (seen["tensorrt"], seen["cuda_runtime"], seen["gpu_name"], seen["compute_capability"]) == (
        env["tensorrt"], env["cuda_runtime"], env["gpu_name"], env["compute_capability"])
    assert (seen["input"], seen["output"]) == (sidecar["io"]["input"], sidecar["io"]["output"])
    assert seen["profile"] == {k: sidecar["profile"][k] for k in ("min", "opt", "max")}
    assert (seen["version_compatible"], seen["hardware_compat"], seen["plugins"]) == (
        False, "none", ["libvolo_plugins.so"])
    prep = get_config("volo_tiny_digits").preprocessing
    assert seen["has_metadata"] and seen["num_classes"] == int(meta["volo_export.num_classes"]) == 10
    assert (seen["model"], seen["precision"], seen["labels"]) == ("volo_tiny_digits", "fp32", "digits")
    assert seen["preprocessing"] == {"size": prep.size, "crop_pct": prep.crop_pct, "interpolation": prep.interpolation,
                                     "mean": list(prep.mean), "std": list(prep.std)}
    assert seen["errors"] == [] and seen["warnings"] == []


def test_cpp_explains_a_sidecar_from_another_tensorrt_or_gpu(build, tmp_path):
    path, _ = write_sidecar(tmp_path / "m.engine.json")
    ok = inspect_json(build, "sidecar", path, "--tensorrt", "10.13.0", "--compute-capability", "8.9")
    assert ok["errors"] == [] and ok["warnings"] == []
    other_trt = inspect(build, "sidecar", path, "--tensorrt", "11.1.0", "--compute-capability", "8.9", expect_rc=1)
    assert other_trt.stderr.strip().splitlines() == [
        "error: m.engine was built with TensorRT 10.13.0.35 but this program runs TensorRT 11.1.0: a plan loads only "
        "on the TensorRT version that built it; rebuild here (volo-export engine) or build with --version-compatible"]
    other_gpu = inspect(build, "sidecar", path, "--tensorrt", "10.13.0", "--compute-capability", "9.0",
                        "--gpu-name", "NVIDIA H100", expect_rc=1)
    assert ("m.engine was built on NVIDIA L4 (compute capability 8.9) but this is NVIDIA H100 (compute capability "
            "9.0)") in other_gpu.stderr
    portable, _ = write_sidecar(tmp_path / "p.engine.json",
                                build={"version_compatible": True, "hardware_compat": "ampere-plus"})
    assert inspect_json(build, "sidecar", portable, "--tensorrt", "10.16.0", "--compute-capability", "9.0")["errors"] == []
    assert "within TensorRT 10.x" in inspect(build, "sidecar", portable, "--tensorrt", "11.1.0",
                                             "--compute-capability", "9.0", expect_rc=1).stderr


def test_cpp_rejects_a_plan_that_is_not_the_sidecars(build, tmp_path):
    path, _ = write_sidecar(tmp_path / "m.engine.json")
    (tmp_path / "m.engine").write_bytes(b"\0" * 4096)
    assert inspect_json(build, "sidecar", path, "--engine", tmp_path / "m.engine")["errors"] == []
    (tmp_path / "m.engine").write_bytes(b"\0" * 5000)
    assert "does not match its sidecar (5000 bytes, sidecar says 4096)" in inspect(
        build, "sidecar", path, "--engine", tmp_path / "m.engine", expect_rc=1).stderr
    (tmp_path / "tiny.engine").write_bytes(b"not a plan")
    assert "10 bytes: too small to be a TensorRT plan" in inspect(
        build, "sidecar", path, "--engine", tmp_path / "tiny.engine", expect_rc=1).stderr


def test_cpp_rejects_a_batch_outside_the_profile(build, tmp_path):
    path, _ = write_sidecar(tmp_path / "m.engine.json")
    fits = write_tensor(tmp_path / "fits.bin", np.zeros((8, 3, 64, 64), np.float32))
    assert inspect_json(build, "sidecar", path, "--input", fits)["errors"] == []
    too_big = write_tensor(tmp_path / "big.bin", np.zeros((9, 3, 64, 64), np.float32))
    result = inspect(build, "sidecar", path, "--input", too_big, expect_rc=1)
    assert result.stderr.strip() == ("error: batch 9 is outside the engine's profile for 'input' (batch 1..8); split "
                                     "the input or rebuild with a larger --max-batch")
    wrong_size = write_tensor(tmp_path / "224.bin", np.zeros((1, 3, 224, 224), np.float32))
    assert "preprocessed for another model" in inspect(build, "sidecar", path, "--input", wrong_size, expect_rc=1).stderr


@pytest.mark.parametrize("content, needle", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "is not a volo-export tensor file (no VOLOTNSR magic"),
    (b"VOLOTNSR", "only 8 bytes"),
])
def test_cpp_rejects_bad_tensor_files_in_one_line(build, tmp_path, content, needle):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    result = inspect(build, "tensor", bad, expect_rc=1)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_cpp_rejects_a_malformed_sidecar_in_one_line(build, tmp_path):
    size = get_config("volo_tiny_digits").preprocessing.size
    path, _ = write_sidecar(tmp_path / "m.engine.json", profile={
        "input": "input", "min": [1, 3, size, size], "opt": [9, 3, size, size], "max": [8, 3, size, size]})
    assert "min <= opt <= max" in inspect(build, "sidecar", path, expect_rc=1).stderr
    path, _ = write_sidecar(tmp_path / "n.engine.json", environment={"compute_capability": 8.9})
    assert "environment.compute_capability must be a string, got a number" in inspect(
        build, "sidecar", path, expect_rc=1).stderr
    path, _ = write_sidecar(tmp_path / "f.engine.json", format="volo-export.engine/2")
    assert "format 'volo-export.engine/2', expected 'volo-export.engine/1'" in inspect(
        build, "sidecar", path, expect_rc=1).stderr
    (tmp_path / "broken.json").write_text('{"format": "volo-export.engine/1",\n "compute_capability": "8.9",}')
    result = inspect(build, "sidecar", tmp_path / "broken.json", expect_rc=1)
    assert result.stderr == f"error: {tmp_path / 'broken.json'} is not valid JSON: expected a string key at line 2 column 30\n"
