"""examples/cpp built with CMake (OpenVINO backend; TensorRT needs a GPU and is compile-checked
elsewhere), its unit tests under ctest, and volo_infer run for real against the Python side: the same
tensor file gives the same logits as ONNX Runtime, the same photos the same top-1 as `volo-export
predict` (its C++ decoder and Pillow-exact resize measured against `volo-export preprocess`), and bad
input fails in one line. volo_inspect reads exactly what Python writes (tensor files, sidecars)."""

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
# Input tensors from JPEGs: stb_image and Pillow's libjpeg-turbo decode to 8-bit pixels that differ by a few
# levels (IDCT and chroma upsampling rounding). Measured at 224 px: 2 levels (0.035) on the shipped JPEGs, 3 levels
# (3/255/0.225 = 0.0523) on cat.jpg; at 64 px 1 level. The bound allows 4 levels at the smallest ImageNet std
# (4/255/0.224 = 0.070). PNG/BMP pixels decode identically and the resize is Pillow's own arithmetic: bit-equal.
JPEG_INPUT_ATOL = 4 / 255 / 0.224
LOGITS_MIN_COSINE = 0.999  # the gate for images decoded in C++ vs Python
SAME_TENSOR_ATOL = 1e-4    # the gate for the same tensor file, FP32


def openvino_cmake_dir() -> str:
    import openvino.utils

    return str(openvino.utils.get_cmake_path())


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory) -> Path:
    """examples/cpp configured with the OpenVINO backend from the pip wheel, built, and its ctest suite run
    (asserted green): the build folder."""
    build = build_cmake_project(SOURCE, tmp_path_factory.mktemp("cpp_build"), "-DVOLO_WITH_OPENVINO=ON",
                                "-DVOLO_WITH_TENSORRT=OFF", f"-DOpenVINO_DIR={openvino_cmake_dir()}")
    result = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (build / "ctest.log").write_text(result.stdout)
    return build


@pytest.fixture
def build(cpp_build) -> Path:
    return cpp_build


def inspect(build: Path, *args, expect_rc: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(build / "volo_inspect"), *map(str, args)], capture_output=True, text=True)
    assert result.returncode == expect_rc, result.stdout + result.stderr
    return result


def inspect_json(build: Path, *args) -> dict:
    return json.loads(inspect(build, *args).stdout)


def test_cpp_unit_tests_pass_under_ctest(build):
    log = (build / "ctest.log").read_text()
    assert "100% tests passed, 0 tests failed out of 2" in log
    assert "volo_io_test" in log and "volo_image_test" in log


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
    assert result.stderr == (f"error: {tmp_path / 'broken.json'} is not valid JSON: parse error at line 2, column 30: "
                             "syntax error while parsing object key - unexpected '}'; expected string literal\n")


# ---------------------------------------------------------------- volo_infer (OpenVINO backend)

def infer(build: Path, *args, expect_rc: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(build / "volo_infer"), *map(str, args)], capture_output=True, text=True)
    assert result.returncode == expect_rc, result.stdout + result.stderr
    return result


def assert_one_line_failure(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Failed the promised way: nothing on stdout, exactly one `error:` line on stderr holding every fragment."""
    assert result.returncode != 0 and result.stdout == "", result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def python_preprocess(images, model: Path, out: Path) -> np.ndarray:
    result = CliRunner().invoke(app, ["preprocess", *map(str, images), "--model", str(model), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return read_tensor(out)


def onnxruntime_logits(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """The photos volo-export ships (scikit-image's), plus cat.jpg: the cat photo as a JPEG stored rotated with
    EXIF orientation 6 (shown upright only when the orientation is applied)."""
    from PIL import Image

    shipped = sample_photos()
    assert len(shipped) >= 20, "scikit-image's photos are missing"
    folder = tmp_path_factory.mktemp("cat")
    chelsea = next(p for p in shipped if p.name == "chelsea.png")
    with Image.open(chelsea) as img:
        exif = Image.Exif()
        exif[0x0112] = 6
        img.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(folder / "cat.jpg", quality=90, exif=exif)
    return [*shipped, folder / "cat.jpg"]


def check_model_against_python(build: Path, model: Path, images: list[Path], tmp_path: Path,
                               reference=onnxruntime_logits) -> dict:
    """volo_infer on `images` vs Python: input tensors vs `volo-export preprocess` (PNG/BMP bit-equal, JPEG within
    JPEG_INPUT_ATOL), logits vs `reference` on Python's tensor (cosine >= LOGITS_MIN_COSINE), top-1 vs
    `volo-export predict`; and the same tensor file through both (max abs <= SAME_TENSOR_ATOL). Returns the numbers."""
    expected_input = python_preprocess(images, model, tmp_path / "py_input.bin")
    seen = json.loads(infer(build, model, *images, "--json", "--top-k", "1", "--output", tmp_path / "cpp_logits.bin",
                            "--dump-input", tmp_path / "cpp_input.bin").stdout)
    cpp_input, cpp_logits = read_tensor(tmp_path / "cpp_input.bin"), read_tensor(tmp_path / "cpp_logits.bin")
    assert cpp_input.shape == expected_input.shape and [p["file"] for p in seen["predictions"]] == list(map(str, images))
    diff = np.abs(cpp_input - expected_input).reshape(len(images), -1).max(1)
    jpeg = np.array([p.suffix.lower() in (".jpg", ".jpeg") for p in images])
    assert diff[~jpeg].max() == 0.0, dict(zip([p.name for p in images], diff))
    assert diff[jpeg].max() <= JPEG_INPUT_ATOL, dict(zip([p.name for p in images], diff))

    python_logits = reference(model, expected_input)
    cos = cosine(cpp_logits, python_logits)
    assert cos.min() >= LOGITS_MIN_COSINE, dict(zip([p.name for p in images], cos))
    predicted = CliRunner().invoke(app, ["predict", *map(str, images), "--model", str(model), "--json", "--top-k", "1"])
    assert predicted.exit_code == 0, predicted.output
    python_top1 = [p["top"][0]["index"] for p in json.loads(predicted.output)["predictions"]]
    assert [p["top"][0]["index"] for p in seen["predictions"]] == python_top1

    infer(build, model, tmp_path / "py_input.bin", "--output", tmp_path / "same.bin")
    same = read_tensor(tmp_path / "same.bin")
    same_max = float(np.abs(same - python_logits).max())
    assert same_max <= SAME_TENSOR_ATOL
    return {"input_max_abs_jpeg": float(diff[jpeg].max()), "min_cosine": float(cos.min()), "same_tensor_max_abs": same_max}


def test_cpp_tiny_onnx_matches_python_on_the_photos(build, tiny_onnx, photos, tmp_path):
    numbers = check_model_against_python(build, tiny_onnx, photos, tmp_path)
    assert numbers["input_max_abs_jpeg"] > 0.0  # the JPEGs do go through another decoder
    print("tiny_onnx", numbers)  # the numbers examples/cpp/README.md quotes (pytest -s)


def test_cpp_same_tensor_file_as_onnxruntime(build, tiny_onnx, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3, 64, 64)).astype(np.float32)
    infer(build, tiny_onnx, write_tensor(tmp_path / "x.bin", x), "--output", tmp_path / "logits.bin")
    logits = read_tensor(tmp_path / "logits.bin")
    assert logits.shape == (5, 10)
    assert float(np.abs(logits - onnxruntime_logits(tiny_onnx, x)).max()) <= SAME_TENSOR_ATOL


def write_mode_images(folder: Path) -> list[Path]:
    """PNGs in the colour modes preprocess.to_rgb handles, and one per EXIF orientation."""
    from PIL import Image

    rng = np.random.default_rng(4)
    rgb = Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8), "RGB")
    alpha = Image.fromarray(rng.integers(0, 256, (45, 70), dtype=np.uint8), "L")
    grey16 = Image.fromarray(rng.integers(0, 65536, (50, 40), dtype=np.uint16))  # mode I;16
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    images = {"rgb.png": rgb, "grey.png": rgb.convert("L"), "grey16.png": grey16, "rgba.png": rgb.copy(),
              "la.png": rgb.convert("L"), "palette_trns.png": palette, "rgb.bmp": rgb}
    images["rgba.png"].putalpha(alpha)
    images["la.png"].putalpha(alpha)
    paths = []
    for name, img in images.items():
        img.save(folder / name, **({"transparency": 3} if name == "palette_trns.png" else {}))
        paths.append(folder / name)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        rgb.save(folder / f"orientation{orientation}.png", exif=exif)
        paths.append(folder / f"orientation{orientation}.png")
    return paths


def test_cpp_colour_modes_and_exif_orientation_are_bit_equal_to_python(build, tiny_onnx, tmp_path):
    images = write_mode_images(tmp_path)
    expected = python_preprocess(images, tiny_onnx, tmp_path / "py.bin")
    infer(build, tiny_onnx, *images, "--dump-input", tmp_path / "cpp.bin")
    seen = read_tensor(tmp_path / "cpp.bin")
    for i, path in enumerate(images):
        np.testing.assert_array_equal(seen[i], expected[i], err_msg=path.name)
    assert not np.array_equal(expected[-1], expected[-8])  # the orientations do change the input


def test_cpp_batches_top_k_labels_and_json(build, tiny_onnx, photos, tmp_path):
    images = photos[:7]
    labels = tmp_path / "digits.txt"
    labels.write_text("".join(f"digit {i}\n" for i in range(10)))
    whole = json.loads(infer(build, tiny_onnx, *images, "--json", "--top-k", "3", "--labels", labels,
                             "--output", tmp_path / "a.bin").stdout)
    infer(build, tiny_onnx, *images, "--batch", "3", "--output", tmp_path / "b.bin")  # batches of 3, 3, 1
    np.testing.assert_allclose(read_tensor(tmp_path / "b.bin"), read_tensor(tmp_path / "a.bin"), rtol=0, atol=1e-5)
    assert whole["runtime"].startswith("OpenVINO ") and len(whole["predictions"]) == 7
    logits = read_tensor(tmp_path / "a.bin").astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    for row, p in enumerate(whole["predictions"]):
        order = np.argsort(-logits[row], kind="stable")[:3]
        assert [c["index"] for c in p["top"]] == order.tolist()
        assert [c["label"] for c in p["top"]] == [f"digit {i}" for i in order]
        np.testing.assert_allclose([c["probability"] for c in p["top"]], probs[row, order], rtol=1e-5)
    text = infer(build, tiny_onnx, images[0], "--top-k", "2", "--labels", labels).stdout.splitlines()
    assert text[0].startswith(f"{tiny_onnx} (volo_tiny_digits, fp32) on OpenVINO") and text[1] == str(images[0])
    assert len(text) == 4 and text[2].lstrip().startswith("1. digit ")
    folder = infer(build, tiny_onnx, photos[0].parent, "--json", "--top-k", "1").stdout
    assert [p["file"] for p in json.loads(folder)["predictions"]] == list(map(str, sample_photos()))


def corrupt_metadata(source: Path, out: Path, key: str, value: str | None) -> Path:
    import onnx

    model = onnx.load(str(source))
    for prop in list(model.metadata_props):
        if prop.key == key:
            if value is None:
                model.metadata_props.remove(prop)
            else:
                prop.value = value
    onnx.save(model, str(out))
    return out


def test_cpp_bad_input_is_one_line(build, tiny_onnx, photos, tmp_path):
    cat = photos[-1]
    assert_one_line_failure(infer(build, tiny_onnx, tmp_path / "nope.jpg", expect_rc=1), "image not found: ")
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not a picture")
    assert_one_line_failure(infer(build, tiny_onnx, cat, not_image, expect_rc=1),
                            f"cannot read image {not_image}: not a JPEG, PNG or BMP file")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(photos[0].read_bytes()[:300])
    assert_one_line_failure(infer(build, tiny_onnx, truncated, expect_rc=1), f"cannot read image {truncated}: ")
    assert_one_line_failure(infer(build, tmp_path / "missing.onnx", cat, expect_rc=1), "model not found: ")
    assert_one_line_failure(infer(build, not_image, cat, expect_rc=1), "give an .onnx (OpenVINO, CPU) or an .engine")
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x08\x07garbage" * 10)
    assert_one_line_failure(infer(build, fake, cat, expect_rc=1), f"{fake} is not an ONNX model")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny_onnx.read_bytes()[:5000])
    assert_one_line_failure(infer(build, cut, cat, expect_rc=1), f"{cut}")
    bare = corrupt_metadata(tiny_onnx, tmp_path / "bare.onnx", "volo_export.model", None)
    assert_one_line_failure(infer(build, bare, cat, expect_rc=1), "carries no volo-export metadata")
    broken = corrupt_metadata(tiny_onnx, tmp_path / "broken.onnx", "volo_export.mean", "[0.5, 0.5")
    assert_one_line_failure(infer(build, broken, cat, expect_rc=1), "volo_export.mean is not valid JSON")
    zero_std = corrupt_metadata(tiny_onnx, tmp_path / "zero.onnx", "volo_export.std", "[0.2, 0.0, 0.2]")
    assert_one_line_failure(infer(build, zero_std, cat, expect_rc=1), "incomplete volo-export metadata")
    wrong_size = write_tensor(tmp_path / "224.bin", np.zeros((1, 3, 224, 224), np.float32))
    assert_one_line_failure(infer(build, tiny_onnx, wrong_size, expect_rc=1), "preprocessed for another model?")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 4096)
    assert_one_line_failure(infer(build, engine, cat, expect_rc=1), "built without TensorRT")
    (tmp_path / "m.engine.json").write_text('{"format": "volo-export.engine/1", "profile": ')
    assert_one_line_failure(infer(build, engine, cat, expect_rc=1), f"{tmp_path / 'm.engine.json'} is not valid JSON")
    assert_one_line_failure(infer(build, tiny_onnx, cat, "--top-k", "0", expect_rc=2), "--top-k needs an integer >= 1")


@pytest.mark.slow
@pytest.mark.parametrize("artifact", ["d1_fp32_onnx", "d1_int8_openvino_onnx"])
def test_cpp_d1_matches_python(build, artifact, photos, tmp_path, request):
    """Full-size VOLO-D1 (random weights): FP32 vs ONNX Runtime, INT8 (--target openvino, the form for the app's
    CPU backend) vs Python's OpenVINO runner, on the same tensor file and from the photos."""
    model = request.getfixturevalue(artifact)
    reference = onnxruntime_logits
    if artifact == "d1_int8_openvino_onnx":
        from volo_export.runtime.openvino_runner import OpenVinoRunner

        def reference(path, x):  # noqa: F811 - the reference runtime of an OpenVINO INT8 artifact
            return OpenVinoRunner(path)(x)
    numbers = check_model_against_python(build, model, photos, tmp_path, reference)
    print(artifact, numbers)
