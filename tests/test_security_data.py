"""The data boundaries of SECURITY.md, one row per fault of issue 18 (items 3, 10-15 and the smaller
ones): preprocessing metadata checked once at open, image work bounded by the decoded and the resized
size, calibration reads bounded by --calib-size, .npz archives and caches that do not validate.

Memory bounds are real: the command runs in a child process under `resource.setrlimit(RLIMIT_AS)`,
so a regression fails (MemoryError, or killed) instead of eating the machine. The metadata and
image-shape spaces are searched with hypothesis: any input either works or is one `error:` line.
"""

from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from typer.testing import CliRunner

from helpers import assert_one_line_error, engine_sidecar, tiny_preprocessing
from volo_export.cli import app
from volo_export.errors import InputDataError
from volo_export.export.metadata import PREFIX, ArtifactInfo
from volo_export.models.variants import Preprocessing, get_config
from volo_export.preprocess import preprocess_image

PREP = tiny_preprocessing()
CLI = [sys.executable, "-c", "from volo_export.cli import main; main()"]
D1 = get_config("volo_d1_224").preprocessing
HERE = Path(__file__).parent


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _limited(limit_bytes: int):
    """preexec_fn: the child's address space is capped, so an unbounded allocation fails in the child."""
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return apply


def _child(args, limit_mb: int | None, env: dict | None = None, timeout: float = 300, cwd=None):
    """Run `args` in a child under an address-space limit of `limit_mb` MiB (None: none)."""
    environment = {**os.environ, "PYTHONPATH": f"{HERE.parent}{os.pathsep}{HERE}", "OPENBLAS_NUM_THREADS": "1",
                   "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, env=environment, timeout=timeout,
                          cwd=cwd or HERE.parent, preexec_fn=_limited(limit_mb << 20) if limit_mb else None)


def _one_error_line(result, *fragments: str) -> str:
    """A child's result that failed with exactly one `error:` line and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, result.stderr)
    return errors[0]


def _with_props(src: Path, dst: Path, **props) -> Path:
    """A copy of the ONNX `src` with some volo_export.* metadata values replaced."""
    model = onnx.load(str(src))
    for p in model.metadata_props:
        key = p.key[len(PREFIX):]
        if key in props:
            p.value = props[key]
    onnx.save(model, str(dst))
    return dst


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(path)
    return path


# ---------------------------------------------------------------- items 10, 11: preprocessing metadata

BAD_METADATA = [
    ({"std": "[0, 0, 0]"}, "std R = 0"),
    ({"std": "[NaN, 1, 1]"}, "std R = nan"),
    ({"mean": "[0.5]"}, "mean must be 3 numbers"),
    ({"mean": "[0.1, 0.2, 0.3, 0.4]"}, "mean must be 3 numbers"),
    ({"mean": '"abc"'}, "mean R = 'a'"),
    ({"crop_pct": "0"}, "crop_pct 0.0"),
    ({"crop_pct": "nan"}, "crop_pct nan"),
    ({"crop_pct": "-1"}, "crop_pct -1.0"),
    ({"crop_pct": "1e9"}, "crop_pct 1000000000.0"),
    ({"image_size": "0"}, "image_size 0"),
    ({"image_size": "-3"}, "image_size -3"),
    ({"image_size": "999"}, "(N, 3, 999, 999)"),
    ({"image_size": "32"}, "(N, 3, 32, 32)"),
    ({"interpolation": "cubic-ish"}, "interpolation 'cubic-ish'"),
    ({"num_classes": "0"}, "num_classes 0"),
]


@pytest.mark.parametrize("props,fragment", BAD_METADATA, ids=[f"{k}={v}" for (p, _) in BAD_METADATA
                                                                for k, v in p.items()])
def test_bad_metadata_is_one_error_line_at_open(tmp_path, tiny_onnx, photo, props, fragment):
    """Items 10/11: NaN top-1s, all-NaN tensors, silent broadcasts and tracebacks became one line."""
    bad = _with_props(tiny_onnx, tmp_path / "bad.onnx", **props)
    assert_one_line_error(_run("predict", photo, "--model", bad), 1, fragment)
    # checked when the artifact is opened, before any image is read (here: one that does not exist)
    assert_one_line_error(_run("preprocess", tmp_path / "missing.png", "--model", bad, "--out", tmp_path / "x.bin"),
                          1, fragment, folder=tmp_path, before={"bad.onnx"})


@pytest.mark.parametrize("props,fragment", BAD_METADATA[:2] + BAD_METADATA[11:12])
def test_bad_metadata_is_refused_by_validate_and_triton_repo(tmp_path, tiny_onnx, props, fragment):
    bad = _with_props(tiny_onnx, tmp_path / "bad.onnx", **props)
    assert_one_line_error(_run("validate", "--model", bad), 1, fragment)
    assert_one_line_error(_run("triton-repo", bad, "--out", tmp_path / "repo", "--image-ensemble"), 1, fragment)
    assert not (tmp_path / "repo").exists()


def test_served_model_with_bad_metadata_names_the_fault(tiny_onnx):
    """Through `predict --url`: a served model's metadata gets the same check (not 'carries none')."""
    from volo_export.serve.client import model_config_pb2, served_model

    config = model_config_pb2().ModelConfig(name="tiny")
    info = ArtifactInfo.from_props({p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props})
    for key, value in info.to_props().items():
        config.parameters[key].string_value = value
    config.parameters[PREFIX + "std"].string_value = "[0, 1, 1]"
    config.input.add(name="input", dims=[3, 64, 64])
    config.output.add(name="logits", dims=[10])
    with pytest.raises(InputDataError, match=r"served model 'tiny' has bad volo-export metadata .*std R = 0"):
        served_model(config)


def test_engine_sidecar_image_size_is_checked_against_its_profile(tmp_path, tiny_onnx):
    from volo_export.artifact import read_artifact_info

    info = ArtifactInfo.from_props({p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props})
    sidecar = engine_sidecar(info)
    sidecar["metadata"][PREFIX + "image_size"] = "32"
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(InputDataError, match=r"input has shape \(\d+, 3, 64, 64\).*\(N, 3, 32, 32\)"):
        read_artifact_info(tmp_path / "m.engine")
    sidecar = engine_sidecar(info)
    sidecar["profile"]["max"] = ["8", "3", "64", "64"]  # item 15: a profile of strings
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    (tmp_path / "m.engine").write_bytes(b"\0" * 4096)
    assert_one_line_error(_run("triton-repo", tmp_path / "m.engine", "--out", tmp_path / "repo"), 1,
                          "m.engine.json is incomplete or damaged", "positive integers")


# Property: any metadata either opens (and then preprocesses to finite numbers) or is one InputDataError.
# Run in a child under an address-space limit: metadata that slipped through (crop_pct 1e-300) would
# otherwise resize to a huge image inside the test process.
METADATA_PROPERTY = textwrap.dedent("""
    import json
    import numpy as np
    from hypothesis import given, settings, strategies as st
    from PIL import Image
    from volo_export.errors import InputDataError
    from volo_export.export.metadata import PREFIX, ArtifactInfo
    from volo_export.models.variants import get_config
    from volo_export.preprocess import preprocess_image

    # Mostly well-formed values (three numbers, a float crop_pct) so that bad *values* reach preprocessing.
    numbers = st.one_of(st.sampled_from([0, 0.5, 1e-300, -1, float("nan"), float("inf")]),
                        st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6))
    values = st.one_of(st.lists(numbers, min_size=3, max_size=3), numbers, st.text(max_size=4), st.none(),
                       st.lists(numbers, max_size=5), st.lists(st.text(max_size=2), max_size=4))
    as_json = values.map(lambda v: json.dumps(v, allow_nan=True))
    base = ArtifactInfo(model="m", preprocessing=get_config("volo_tiny_digits").preprocessing, num_classes=10,
                        labels="digits").to_props()

    @settings(max_examples=40, deadline=None, database=None)
    @given(image_size=st.one_of(st.integers(-5, 300).map(str), st.text(max_size=5)),
           crop_pct=st.one_of(numbers.map(repr), st.sampled_from(["0.875", "1e-300", "1e9"]), st.text(max_size=5)),
           interpolation=st.sampled_from(["bicubic", "bilinear", "nearest", "lanczos", "box", ""]),
           mean=as_json, std=as_json, num_classes=st.one_of(st.integers(-3, 2000).map(str), st.text(max_size=3)))
    def prop(image_size, crop_pct, interpolation, mean, std, num_classes):
        props = {**base, PREFIX + "image_size": image_size, PREFIX + "crop_pct": crop_pct,
                 PREFIX + "interpolation": interpolation, PREFIX + "mean": mean, PREFIX + "std": std,
                 PREFIX + "num_classes": num_classes}
        try:
            info = ArtifactInfo.from_props(props, "m.onnx")
        except InputDataError as e:
            assert "\\n" not in str(e) and str(e).startswith("m.onnx"), str(e)
            return
        x = preprocess_image(Image.new("RGB", (37, 23), (200, 100, 50)), info.preprocessing)
        assert x.shape == (3, info.preprocessing.size, info.preprocessing.size) and np.isfinite(x).all()
        assert info.num_classes >= 1

    prop()
    print("ok")
""")


def test_property_metadata_opens_or_is_one_error_within_a_memory_bound():
    result = _child([sys.executable, "-c", METADATA_PROPERTY], 1200)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


# ---------------------------------------------------------------- item 3: memory by aspect ratio

def _png(path: Path, w: int, h: int) -> Path:
    Image.new("RGB", (w, h), (200, 20, 20)).save(path)
    return path


def test_thin_image_beyond_the_resize_limit_is_one_error_line_in_bounded_memory(tmp_path):
    """Item 3: a 143-byte 20000x1 PNG resized for volo_d1_224 would be 5.1 GP: MemoryError under 8 GB."""
    img = _png(tmp_path / "thin.png", 20000, 1)
    result = _child([*CLI, "preprocess", img, "--model-name", "volo_d1_224", "--out", tmp_path / "x.bin"], 1024)
    _one_error_line(result, "20000x1", "aspect ratio 20000:1", "megapixel limit")
    assert not (tmp_path / "x.bin").exists()


def test_worst_allowed_aspect_ratio_works_in_bounded_memory(tmp_path):
    """1365:1 is the most extreme shape whose resize target (349440x256 for volo_d1_224) is within the
    ~89-megapixel limit: it used to cost 2 GB (the whole resized image in float32); now only the crop is
    resampled."""
    img = _png(tmp_path / "thin.png", 1365, 1)
    result = _child([*CLI, "preprocess", img, "--model-name", "volo_d1_224", "--out", tmp_path / "x.bin"], 700)
    assert result.returncode == 0, result.stderr
    assert "float32 (1, 3, 224, 224)" in result.stdout


# Run in a child under an address-space limit: a property failure or an allocation beyond the limit fails.
IMAGE_SHAPE_PROPERTY = textwrap.dedent("""
    import numpy as np
    from hypothesis import given, settings, strategies as st
    from PIL import Image
    from volo_export.errors import InputDataError
    from volo_export.models.variants import Preprocessing
    from volo_export.preprocess import preprocess_image

    @settings(max_examples=30, deadline=None, database=None)
    @given(w=st.integers(1, 40000), h=st.integers(1, 40000), size=st.sampled_from([7, 32, 64, 224]),
           crop_pct=st.floats(0.25, 4.0),
           interpolation=st.sampled_from(["bicubic", "bilinear", "nearest", "lanczos"]))
    def prop(w, h, size, crop_pct, interpolation):
        if w * h > 4_000_000:  # the decoded size is bounded by the decompression-bomb check; keep it fast
            w = max(1, 4_000_000 // h)
        prep = Preprocessing(size=size, crop_pct=crop_pct, interpolation=interpolation)
        try:
            x = preprocess_image(Image.new("RGB", (w, h), (10, 200, 30)), prep, "img")
        except InputDataError as e:
            assert "\\n" not in str(e) and "megapixel limit" in str(e), str(e)
            return
        assert x.shape == (3, size, size) and np.isfinite(x).all()

    prop()
    print("ok")
""")


def test_property_image_shapes_work_or_are_one_error_within_a_memory_bound():
    result = _child([sys.executable, "-c", IMAGE_SHAPE_PROPERTY], 1200)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_resize_of_the_crop_only_gives_the_pixels_of_resize_then_crop():
    """The crop-box resample is the same arithmetic as the full resize (within float rounding)."""
    from volo_export.preprocess import _pil_filter, resized_size

    rng = np.random.default_rng(0)
    for interpolation in ("bicubic", "bilinear", "nearest", "lanczos"):
        for w, h in ((500, 375), (375, 500), (31, 300), (300, 7), (64, 64)):
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            prep = Preprocessing(size=64, crop_pct=0.875, interpolation=interpolation, mean=(0, 0, 0), std=(1, 1, 1))
            nw, nh = resized_size(w, h, prep)
            full = np.asarray(img.resize((nw, nh), _pil_filter(interpolation)), np.float32) / 255
            top, left = (nh - 64) // 2, (nw - 64) // 2
            want = full[max(top, 0):max(top, 0) + 64, max(left, 0):max(left, 0) + 64]
            got = preprocess_image(img, prep).transpose(1, 2, 0)
            got = got[max(-top, 0):max(-top, 0) + want.shape[0], max(-left, 0):max(-left, 0) + want.shape[1]]
            assert np.abs(got - want).max() <= 2.5 / 255, (interpolation, w, h)
            assert (np.abs(got - want) > 0.5 / 255).mean() < 0.05, (interpolation, w, h)  # float rounding of the box


# ---------------------------------------------------------------- items 12, 13: calibration files

def _zeros_npz(path: Path, samples: int, size: int) -> Path:
    """A compressed .npz of `samples` zero tensors (N, 3, size, size), written without holding them."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (samples, 3, size, size)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(3 * size * size * 4 * 256)
            for start in range(0, samples, 256):
                f.write(chunk[:3 * size * size * 4 * min(256, samples - start)])
    return path


def test_calibration_read_is_bounded_by_calib_size(tmp_path):
    """Item 12: 1.2 GB of samples in a small .npz, --calib-size 16: only 16 samples are read."""
    npz = _zeros_npz(tmp_path / "many.npz", 25000, 64)
    assert npz.stat().st_size < 8 << 20
    code = textwrap.dedent(f"""
        from volo_export.calibration.data import load_calibration_data
        from volo_export.models.variants import get_config
        data = load_calibration_data({str(npz)!r}, get_config("volo_tiny_digits").preprocessing, 16)
        print(data.array.shape, data.description)
    """)
    result = _child([sys.executable, "-c", code], 600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(16, 3, 64, 64) 16 of 25000 tensors" in result.stdout
    # and the samples read a few at a time are the stored ones, in order (C- and Fortran-ordered, .npz and .npy)
    from volo_export.calibration.data import load_calibration_data

    s = PREP.size
    rng = np.random.default_rng(0)
    a, b = rng.random((40, 3, s, s), np.float32), np.asfortranarray(rng.random((2, 3, s, s), np.float32))
    np.savez(tmp_path / "t.npz", a=a, b=b)
    assert np.array_equal(load_calibration_data(tmp_path / "t.npz", PREP, 42).array, np.concatenate([a, b]))
    assert np.array_equal(load_calibration_data(tmp_path / "t.npz", PREP, 20).array, a[:20])
    np.save(tmp_path / "t.npy", a)
    assert np.array_equal(load_calibration_data(tmp_path / "t.npy", PREP, 33).array, a[:33])


def test_calib_size_and_export_batch_beyond_memory_are_refused_up_front(tmp_path, tiny_onnx):
    """`onnx --batch 100000` ran 45 s to a numpy _ArrayMemoryError traceback. In children under 6 GiB of
    address space (torch needs ~3 GiB mapped), so a regression fails instead of allocating 49 GB."""
    start = time.monotonic()
    result = _child([*CLI, "onnx", "--model", "volo_tiny_digits", "--batch", "100000", "-o", tmp_path / "m.onnx"],
                    6144)
    _one_error_line(result, "--batch 100000 is above 4096")
    result = _child([*CLI, "quantize", tiny_onnx, "--calib-data", "random", "--calib-size", "1000000",
                     "-o", tmp_path / "q.onnx"], 6144)
    _one_error_line(result, "--calib-size 1000000 would hold 45.8 GiB")
    assert time.monotonic() - start < 120
    assert not list(tmp_path.iterdir())


def _bad_npz(folder: Path) -> dict[str, Path]:
    s = PREP.size
    np.savez(folder / "object.npz", a=np.array([1, "x"], dtype=object))
    np.savez(folder / "mixed.npz", a=np.ones((2, 3, s, s), np.float32), b=np.array([{"x": 1}], dtype=object))
    np.savez(folder / "good.npz", a=np.ones((4, 3, s, s), np.float32))
    raw = (folder / "good.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(raw[:len(raw) // 2])
    corrupt = bytearray(raw)
    corrupt[raw.index(b"\x93NUMPY") + 300] ^= 0xFF
    (folder / "crc.npz").write_bytes(bytes(corrupt))
    return {name: folder / f"{name}.npz" for name in ("object", "mixed", "truncated", "crc")}


@pytest.mark.parametrize("name,fragment", [("object", "holds Python objects"), ("mixed", "mixed.npz[b]: holds"),
                                           ("truncated", "BadZipFile"), ("crc", "Bad CRC-32")])
def test_bad_npz_is_one_error_line(tmp_path, tiny_onnx, name, fragment):
    """Item 13: object arrays, mixed arrays, truncated and CRC-corrupt archives were tracebacks."""
    from volo_export.calibration.data import load_calibration_data

    path = _bad_npz(tmp_path)[name]
    with pytest.raises(InputDataError, match=re.escape(fragment)):
        load_calibration_data(path, PREP, 16)
    out = tmp_path / "out"
    out.mkdir()
    assert_one_line_error(_run("quantize", tiny_onnx, "--calib-data", path, "-o", out / "q.onnx"), 1, fragment,
                          folder=out)


# ---------------------------------------------------------------- item 14: caches

@pytest.mark.parametrize("entry", [{"runtime": "openvino", "ms": "fast"}, "openvino", {"runtime": 3},
                                   {"runtime": "openvino", "ms": {"openvino": "1"}}])
def test_a_runtime_choice_that_does_not_validate_is_measured_again(monkeypatch, tmp_path, tiny_onnx, entry):
    from helpers import RecordingProgress
    from volo_export.runtime import auto, open_runner

    monkeypatch.setattr(auto, "fastest", lambda runners, size, batch, progress=None: {"onnxruntime": 1.0,
                                                                                      "openvino": 2.0})
    cache = tmp_path / "runtime-choice.json"
    cache.write_text(json.dumps({auto.choice_key(tiny_onnx, 0, 4): entry}))
    progress = RecordingProgress()
    runner, choice = auto.choose(tiny_onnx, lambda name: open_runner(tiny_onnx, runtime=name), batch=4, cache=cache,
                                 progress=progress)
    assert choice.runtime == "onnxruntime" and not choice.cached
    assert any("ignoring the cached verdict" in s for s in progress.stages), progress.stages
    assert list(json.loads(cache.read_text()).values())[0]["runtime"] == "onnxruntime"  # rebuilt


@pytest.mark.parametrize("ranges", ["lo-hi", ["a", "b"], {"t": "ab"}, {"t": [1]}, {"t": [2.0, 1.0]},
                                    {"t": [float("nan"), 1.0]}])
def test_a_calibration_cache_that_does_not_validate_is_ignored(tmp_path, ranges):
    from volo_export.calibration import cache

    key = cache.CacheKey("g", "d", {"size": 64}, "minmax", 16)
    path = tmp_path / "calib.json"
    cache.save(path, key, {})
    body = json.loads(path.read_text())
    body["ranges"] = ranges
    path.write_text(json.dumps(body))
    found = cache.lookup(path, key, ["t"])
    assert not found.hit and "damaged" in found.reason and "recomputing" in found.reason


def test_quantize_with_a_damaged_calibration_cache_rebuilds_it(tmp_path, tiny_onnx):
    calib = tmp_path / "calib.json"
    calib.write_text(json.dumps({"format": "volo-export-calibration-cache/1",
                                 "key": {"graph_sha256": "x", "data_sha256": "y", "preprocessing": {},
                                         "method": "minmax", "size": 8}, "ranges": ["a", "b"]}))
    result = _run("quantize", tiny_onnx, "--calib-data", "random", "--calib-size", 8, "--calib-cache", calib,
                  "-o", tmp_path / "q.onnx")
    assert result.exit_code == 0, result.output
    assert "damaged" in result.output and isinstance(json.loads(calib.read_text())["ranges"], dict)


# ---------------------------------------------------------------- item 15: more one-line errors

def test_model_name_on_a_foreign_rank2_graph_is_one_error_line(tmp_path, photo):
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["input"], ["logits"])], "r2",
        [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 10])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 10])])
    path = tmp_path / "rank2.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))
    assert_one_line_error(_run("predict", photo, "--model", path, "--model-name", "volo_tiny_digits"), 1,
                          "input has shape (N, 10)", "(N, 3, 64, 64)")
    assert_one_line_error(_run("quantize", path, "--calib-data", "random", "-o", tmp_path / "q.onnx"), 1,
                          "carries no volo-export metadata")


@pytest.mark.parametrize("url,fragment", [("http://127.0.0.1:99999", "Port out of range"),
                                          ("http://[::1", "Invalid IPv6 URL"), ("grpc://h:0", "give only a host")])
def test_bad_url_is_one_line_without_a_traceback_at_exit(photo, url, fragment):
    result = _child([*CLI, "predict", photo, "--url", url], None)
    _one_error_line(result, fragment)
    assert result.returncode == 2


def test_non_ascii_file_name_on_an_ascii_terminal(tmp_path):
    img = _png(tmp_path / "ïmg.png", 20, 20)
    result = _child([*CLI, "preprocess", img, "--model-name", "volo_tiny_digits", "--out", tmp_path / "ö.bin"],
                       None, env={"PYTHONIOENCODING": "ascii"})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "\\xefmg.png" in result.stdout + result.stderr and (tmp_path / "ö.bin").is_file()


def test_quantize_of_a_graph_whose_external_data_onnx_refuses_is_one_line(tmp_path, tiny_fp32):
    """The bundled weights' export: quantize rebuilds the eager reference, then reads the graph's weights."""
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.ModelProto()
    model.CopyFrom(tiny_fp32)
    convert_model_to_external_data(model, location="w.bin", size_threshold=1024)
    onnx.save(model, str(tmp_path / "m.onnx"))
    model = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../../../etc/hostname"
    onnx.save(model, str(tmp_path / "bad.onnx"))
    result = _child([*CLI, "quantize", tmp_path / "bad.onnx", "--calib-data", "random", "-o", tmp_path / "q.onnx"],
                    None)
    _one_error_line(result, "bad.onnx")  # was an onnx.checker.ValidationError traceback from pipeline.py
    assert not (tmp_path / "q.onnx").exists()


# ---------------------------------------------------------------- smaller ones

def test_openvino_without_a_usable_cache_folder_still_runs(tmp_path, tiny_onnx):
    pytest.importorskip("openvino")
    from volo_export.runtime.openvino_runner import OpenVinoRunner, OpenVinoSettings

    (tmp_path / "file").write_text("not a folder")
    runner = OpenVinoRunner(tiny_onnx, OpenVinoSettings(cache_dir=tmp_path / "file" / "cache"))
    assert runner(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 10)
    assert any("model cache" in n and "compiling without it" in n for n in runner.notices), runner.notices


def test_openvino_errors_keep_their_reason():
    from volo_export.runtime.openvino_runner import openvino_reason

    error = RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\n"
                         "Exception from src/inference/src/dev/core_impl.cpp:42:\n"
                         "Couldn't create directory [\"/x\"], err=Permission denied)\n")
    assert openvino_reason(error) == "Couldn't create directory [\"/x\"], err=Permission denied)"


def test_runtime_auto_says_why_openvino_was_left_out(monkeypatch, tmp_path, tiny_onnx):
    from volo_export.errors import RuntimeUnavailable
    from volo_export.runtime import auto, open_runner

    def open_one(name):
        if name == "openvino":
            raise RuntimeUnavailable("OpenVINO cannot compile m.onnx: no CPU plugin")
        return open_runner(tiny_onnx, runtime=name)

    _, choice = auto.choose(tiny_onnx, open_one, batch=4, cache=tmp_path / "c.json")
    assert choice.runtime == "onnxruntime"
    assert "openvino did not open: OpenVINO cannot compile m.onnx: no CPU plugin" in choice.line()


def test_plain_pickle_checkpoint_is_refused_without_torch_warnings(tmp_path):
    import pickle

    from volo_export.errors import CheckpointError
    from volo_export.models.checkpoint import read_state_dict

    path = tmp_path / "plain.pth"
    path.write_bytes(pickle.dumps({"a": [1, 2]}, protocol=4))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
            read_state_dict(path)
    assert not seen, [str(w.message) for w in seen]


def test_zero_class_checkpoint_is_refused_up_front(tmp_path, tiny_state_dict):
    import torch

    sd = {k: (v[:0] if k.startswith(("head.", "aux_head.")) else v) for k, v in tiny_state_dict.items()}
    torch.save(sd, tmp_path / "zero.pth")
    out = tmp_path / "out"
    out.mkdir()
    assert_one_line_error(_run("onnx", "--model", "volo_tiny_digits", "--checkpoint", tmp_path / "zero.pth",
                               "-o", out / "m.onnx"), 1, "classifier has 0 classes", folder=out)


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_predict_url_timeout(photo, silent_server, scheme):
    pytest.importorskip(f"tritonclient.{scheme}")
    start = time.monotonic()
    result = _child([*CLI, "predict", photo, "--url", f"{scheme}://127.0.0.1:{silent_server}", "--timeout", "1"],
                       None, timeout=60)
    _one_error_line(result, f"Triton at {scheme}://127.0.0.1:{silent_server}")
    assert time.monotonic() - start < 15  # was 60 s (HTTP) / 21 s (gRPC), with no way to shorten it
