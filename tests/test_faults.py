"""The fault matrix: bad input and real faults, each with its exit code, its one-line message and the
promise that nothing new is left next to the output.

Rows run through typer's CliRunner; the faults that need a real process (signals at several points,
a file-size limit as a full disk) run `volo-export` in a child process. Image decoding is checked
property-style: every Pillow mode and EXIF orientation preprocesses like the plain 8-bit RGB picture.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from helpers import assert_one_line_error, files_in, tiny_preprocessing
from volo_export.cli import app
from volo_export.errors import InputDataError, first_line
from volo_export.io import process_start, remove_stale_staging
from volo_export.preprocess import load_image, preprocess_image

PREP = tiny_preprocessing()
CLI = [sys.executable, "-c", "from volo_export.cli import main; main()"]


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_state_dict):
    """Bad and good input files, in a folder of their own (never the output folder)."""
    d = tmp_path_factory.mktemp("inputs")
    torch.save({"state_dict": tiny_state_dict}, d / "good.pth.tar")
    data = (d / "good.pth.tar").read_bytes()
    (d / "truncated.pth.tar").write_bytes(data[: len(data) // 2])
    (d / "random.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "empty.pth").write_bytes(b"")
    (d / "folder.pth").mkdir()

    class Payload:  # what a malicious checkpoint carries: code that runs when unpickled
        def __reduce__(self):
            return (os.system, (f"touch {d / 'PWNED'}",))

    torch.save({"state_dict": tiny_state_dict, "extra": Payload()}, d / "pickled_code.pth.tar")
    (d / "random.onnx").write_bytes(np.random.default_rng(1).bytes(2048))
    (d / "empty.onnx").write_bytes(b"")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["input"], ["logits"])], "plain",
                                   [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
                                   [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 3, 64, 64])])
    onnx.save(onnx.helper.make_model(graph), d / "not_volo.onnx")
    (d / "empty_images").mkdir()
    img = Image.fromarray((np.random.default_rng(2).random((80, 80, 3)) * 255).astype(np.uint8))
    img.save(d / "photo.png")
    img.save(d / "photo.jpg", quality=90)
    (d / "truncated.jpg").write_bytes((d / "photo.jpg").read_bytes()[:300])
    for name, array in {"nan.npy": np.full((2, 3, 64, 64), np.nan, np.float32),
                        "inf.npy": np.full((2, 3, 64, 64), np.inf, np.float32),
                        "hwc.npy": np.zeros((2, 64, 64, 3), np.float32),
                        "ints.npy": np.zeros((2, 3, 64, 64), np.int64),
                        "none.npy": np.zeros((0, 3, 64, 64), np.float32)}.items():
        np.save(d / name, array)
    (d / "text.npy").write_text("this is not numpy\n")
    return d


def _cases(i: Path):
    """(id, command line with {out} for the output folder, exit code, fragment of the error line)."""
    tiny = ["onnx", "-m", "volo_tiny_digits", "-o", "{out}/m.onnx"]
    quant = ["onnx", "-m", "volo_tiny_digits", "-o", "{out}/m.onnx", "--precision", "int8", "--calib-data"]
    return [
        ("checkpoint truncated", [*tiny, "-c", i / "truncated.pth.tar"], 1, "is not a PyTorch checkpoint"),
        ("checkpoint random bytes", [*tiny, "-c", i / "random.pth"], 1, "random.pth is not a PyTorch checkpoint"),
        ("checkpoint empty", [*tiny, "-c", i / "empty.pth"], 1, "is empty (0 bytes)"),
        ("checkpoint is a folder", [*tiny, "-c", i / "folder.pth"], 1, "is a folder, not a file"),
        ("checkpoint missing", [*tiny, "-c", i / "gone.pth"], 1, "checkpoint not found"),
        ("checkpoint of another variant", ["onnx", "-m", "volo_d1_224", "-o", "{out}/m.onnx", "-c",
                                           i / "good.pth.tar"], 1, "does not fit volo_d1_224"),
        ("checkpoint with pickled code", [*tiny, "-c", i / "pickled_code.pth.tar"], 1,
         "contains pickled code or objects other than tensors"),
        ("unknown model", ["onnx", "-m", "volo_d9_224", "-o", "{out}/m.onnx"], 2, "unknown model 'volo_d9_224'"),
        ("output is a folder", ["onnx", "-m", "volo_tiny_digits", "-o", "{out}"], 2, "is a directory"),
        ("output folder missing", ["onnx", "-m", "volo_tiny_digits", "-o", "{out}/no/m.onnx"], 2, "does not exist"),
        ("report is a folder", [*tiny, "--report", "{out}"], 2, "is a directory"),
        ("report folder missing, checked before the run", ["validate", "-m", i / "gone.onnx", "--report",
                                                           "{out}/no/r.json"], 2, "output folder"),
        ("ONNX random bytes", ["check", i / "random.onnx"], 1, "is not an ONNX model"),
        ("ONNX empty", ["check", i / "empty.onnx"], 1, "is not an ONNX model (an empty file)"),
        ("ONNX not volo-export", ["predict", i / "photo.png", "-m", i / "not_volo.onnx"], 1,
         "carries no volo-export metadata"),
        ("ONNX missing", ["predict", i / "photo.png", "-m", i / "gone.onnx"], 1, "model not found"),
        ("calibration folder empty", [*quant, i / "empty_images"], 1, "no images"),
        ("calibration NaN", [*quant, i / "nan.npy"], 1, "NaN or infinity"),
        ("calibration Inf", [*quant, i / "inf.npy"], 1, "NaN or infinity"),
        ("calibration wrong shape", [*quant, i / "hwc.npy"], 1, "expected float tensors of shape (N, 3, 64, 64)"),
        ("calibration integers", [*quant, i / "ints.npy"], 1, "expected float tensors"),
        ("calibration no samples", [*quant, i / "none.npy"], 1, "holds no samples"),
        ("calibration text named .npy", [*quant, i / "text.npy"], 1, "is not a .npy file"),
        ("image is a folder", ["preprocess", i / "folder.pth", "--model-name", "volo_tiny_digits", "--out",
                               "{out}/x.bin"], 1, "is a folder, not an image"),
        ("image truncated", ["preprocess", i / "truncated.jpg", "--model-name", "volo_tiny_digits", "--out",
                             "{out}/x.bin"], 1, "cannot read image"),
        ("image missing", ["preprocess", i / "gone.png", "--model-name", "volo_tiny_digits", "--out",
                           "{out}/x.bin"], 1, "image not found"),
        ("--batch abc", [*tiny, "--batch", "abc"], 2, "Invalid value for '--batch'"),
        ("--precision int3", [*tiny, "--precision", "int3"], 2, "'int3' is not one of 'fp32', 'fp16', 'int8'"),
        ("--target cpu with fp32", [*tiny, "--target", "cpu"], 2, "--target cpu applies to --precision int8 only"),
        ("--opset 13", [*tiny, "--opset", "13"], 2, "--opset 13 unsupported"),
        ("unknown option", [*tiny, "--fast"], 2, "No such option: --fast"),
        ("predict --batch-size -2", ["predict", i / "photo.png", "-m", "{onnx}", "--batch-size", "-2"], 2,
         "batch -2 does not fit"),
        ("predict --batch-size 0", ["predict", i / "photo.png", "-m", "{onnx}", "--batch-size", "0"], 2,
         "batch 0 does not fit"),
        ("bench --threads -4", ["bench", "-m", "volo_tiny_digits", "--threads", "-4"], 2, "--threads must be >= 0"),
        ("engine -o x.onnx", ["engine", "{onnx}", "-o", "{out}/x.onnx"], 2, "an engine file ends with .engine"),
        ("int8 without calibration", ["onnx", "-m", "volo_tiny_digits", "-o", "{out}/m.onnx", "--precision", "int8"],
         2, "--precision int8 needs --calib-data"),
    ]


@pytest.mark.parametrize("case", range(len(_cases(Path(".")))), ids=[c[0] for c in _cases(Path("."))])
def test_fault_matrix(case, inputs, tiny_onnx, tmp_path):
    name, args, code, fragment = _cases(inputs)[case]
    out = tmp_path / "out"
    out.mkdir()
    line = [str(a).replace("{out}", str(out)).replace("{onnx}", str(tiny_onnx)) for a in args]
    started = time.perf_counter()
    result = _run(*line)
    error = assert_one_line_error(result, code, fragment, folder=out)
    assert "weights_only" not in error  # never the advice to switch the safety off
    assert not (inputs / "PWNED").exists()  # the pickled payload never ran
    if name.startswith(("calibration", "int8")):  # bad calibration input fails before the export starts
        assert "exporting to ONNX" not in result.output and time.perf_counter() - started < 60


def test_images_above_the_pixel_limit_are_refused_with_the_way_out(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("VOLO_EXPORT_MAX_IMAGE_PIXELS", "1000")
    result = _run("preprocess", inputs / "photo.png", "--model-name", "volo_tiny_digits", "--out", tmp_path / "x.bin")
    assert_one_line_error(result, 1, "80x80", "decompression-bomb limit", "VOLO_EXPORT_MAX_IMAGE_PIXELS=6400",
                          folder=tmp_path)
    monkeypatch.setenv("VOLO_EXPORT_MAX_IMAGE_PIXELS", "6400")
    assert _run("preprocess", inputs / "photo.png", "--model-name", "volo_tiny_digits", "--out",
                tmp_path / "x.bin").exit_code == 0


@pytest.mark.parametrize("name", ["a[v2]", "b[bold]x", "c[/]d"])
def test_user_paths_print_as_written(name, inputs, tiny_onnx, tmp_path):
    """Rich markup in a path is text, not style: printed intact, and no crash after writing."""
    image, out, model = (tmp_path / f"{name}{suffix}" for suffix in (".png", ".bin", ".onnx"))
    image.parent.mkdir(parents=True, exist_ok=True)  # "c[/]d": a folder "c[" holding "]d.*"
    Image.open(inputs / "photo.png").save(image)
    model.write_bytes(tiny_onnx.read_bytes())
    result = _run("preprocess", image, "--model-name", "volo_tiny_digits", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout and str(image) in result.stdout
    predicted = _run("predict", image, "-m", model)
    assert predicted.exit_code == 0, predicted.output
    assert image.name in predicted.stdout and model.name in predicted.stdout


def test_predict_warns_on_random_weights_and_takes_folders_and_foreign_onnx(tiny_onnx, inputs, tmp_path):
    import dataclasses

    from volo_export.export.metadata import read_info, write_info

    proto = onnx.load(str(tiny_onnx))
    write_info(proto, dataclasses.replace(read_info(proto), checkpoint_sha256=None, random_weights=True))
    onnx.save(proto, tmp_path / "random.onnx")
    images = tmp_path / "imgs" / "sub"
    images.mkdir(parents=True)
    for k in range(3):
        Image.open(inputs / "photo.png").save(images / f"{k}.png")
    result = _run("predict", tmp_path / "imgs", "-m", tmp_path / "random.onnx", "--json")
    assert result.exit_code == 0, result.output
    assert "RANDOM weights" in result.stderr and result.stdout.count('"file"') == 3
    del proto.metadata_props[:]
    onnx.save(proto, tmp_path / "foreign.onnx")
    assert_one_line_error(_run("predict", inputs / "photo.png", "-m", tmp_path / "foreign.onnx"), 1,
                          "carries no volo-export metadata")
    result = _run("predict", str(images / "*.png"), "-m", tmp_path / "foreign.onnx", "--model-name", "volo_tiny_digits")
    assert result.exit_code == 0, result.output
    assert "0.png" in result.stdout and "2.png" in result.stdout
    assert_one_line_error(_run("predict", inputs / "photo.png", "-m", tiny_onnx, "--model-name", "volo_d1_224"), 2,
                          "--model-name is for ONNX files without it")


def test_version_choices_and_untruncated_tables():
    version = _run("--version")
    assert version.exit_code == 0 and version.stdout.startswith("volo-export ")
    help_text = _run("onnx", "--help").stdout
    for choices in ("<fp32|fp16|int8", "<tensorrt|cpu|o", "<minmax|entropy", "<float32|float1"):  # may wrap
        assert choices in help_text, help_text
    table = _run("models").stdout  # CliRunner's stdout is not a terminal, like `| cat`
    for name in ("volo_d1_224", "volo_d5_512", "volo_tiny_digits"):
        assert table.count(name) == 1, table
    assert "…" not in table


@pytest.mark.slow  # a CLI export to watch the order of its lines
def test_notices_come_before_the_work(tmp_path):
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "m.onnx", "--no-validate")
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("notice: using bundled weights") < out.index("exporting to ONNX")


@pytest.mark.slow
def test_failed_int8_gate_keeps_only_the_calibration_cache(tmp_path, digits_folders):
    calib, test = digits_folders
    result = _run("onnx", "-m", "volo_tiny_digits", "-o", tmp_path / "m.onnx", "--precision", "int8", "--calib-data",
                  calib, "--validate-images", test, "--validate-count", "16", "--min-cosine", "1", "--no-fallback")
    assert_one_line_error(result, 3, "failed its int8 gate, not written")
    assert files_in(tmp_path) == {"m.calib.json"}  # a cache of ranges, kept on purpose for the next run
    assert "ranges saved to" in result.output and "kept for the next run" in result.output


# ------------------------------------------------------------------------------------------- images


def _picture() -> Image.Image:
    """An 8-bit RGB test picture whose colours a palette holds exactly (<= 256 of them), not square."""
    rng = np.random.default_rng(3)
    levels = np.array([0, 85, 170, 255], np.uint8)
    return Image.fromarray(levels[rng.integers(0, 4, (48, 72, 3))], "RGB")


def _grey() -> Image.Image:
    return _picture().convert("L")


MODES = {
    # mode: (picture in that mode, the 8-bit RGB picture it shows, file format)
    "RGB": (lambda: _picture(), _picture, "PNG"),
    "L": (lambda: _grey(), lambda: _grey().convert("RGB"), "PNG"),
    "RGBA opaque": (lambda: _picture().convert("RGBA"), _picture, "PNG"),
    "LA opaque": (lambda: _grey().convert("LA"), lambda: _grey().convert("RGB"), "PNG"),
    "P": (lambda: _picture().quantize(256), _picture, "PNG"),
    "CMYK": (lambda: _picture().convert("CMYK"), _picture, "TIFF"),
    "CMYK jpeg": (lambda: _picture().convert("CMYK"), _picture, "JPEG"),
    "1": (lambda: _grey().point(lambda v: 255 * (v > 128)).convert("1"),
          lambda: _grey().point(lambda v: 255 * (v > 128)).convert("RGB"), "PNG"),
    "I;16": (lambda: Image.fromarray(np.asarray(_grey()).astype(np.uint16) * 257), lambda: _grey().convert("RGB"),
             "PNG"),
    "I;16B": (lambda: Image.frombytes("I;16B", _grey().size,
                                      (np.asarray(_grey()).astype(">u2") * 257).tobytes()),
              lambda: _grey().convert("RGB"), "TIFF"),
    "I 16-bit values": (lambda: Image.fromarray(np.asarray(_grey()).astype(np.int32) * 257, "I"),
                        lambda: _grey().convert("RGB"), "TIFF"),
    "I 8-bit values": (lambda: _grey().convert("I"), lambda: _grey().convert("RGB"), "TIFF"),
    "F": (lambda: _grey().convert("F"), lambda: _grey().convert("RGB"), "TIFF"),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_every_pillow_mode_preprocesses_like_8_bit_rgb(mode, tmp_path):
    make, shows, fmt = MODES[mode]
    path = tmp_path / f"x.{fmt.lower()}"
    make().save(path, fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    got = preprocess_image(load_image(path), PREP)
    want = preprocess_image(shows(), PREP)
    tolerance = 0.1 if fmt == "JPEG" else 1e-5  # JPEG is lossy; everything else must be exact
    assert np.abs(got - want).max() < tolerance, (mode, np.abs(got - want).max())


def test_transparency_is_composited_over_black(tmp_path):
    rgba = _picture().convert("RGBA")
    alpha = np.asarray(rgba).copy()
    alpha[:, :36, 3] = 0  # left half transparent
    Image.fromarray(alpha, "RGBA").save(tmp_path / "t.png")
    shown = np.asarray(load_image(tmp_path / "t.png"))
    assert (shown[:, :36] == 0).all() and (shown[:, 36:] == np.asarray(_picture())[:, 36:]).all()
    paletted = _picture().quantize(256)
    paletted.info["transparency"] = 0
    paletted.save(tmp_path / "p.png", transparency=0)
    assert np.asarray(load_image(tmp_path / "p.png"))[np.asarray(paletted) == 0].max() == 0


# EXIF orientation o: how the stored pixels must be transformed to show the picture (Pillow's
# exif_transpose); we store the inverse transform of the picture so it shows the picture.
_STORED = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(orientation, fmt, tmp_path):
    picture = _picture()
    stored = picture.transpose(_STORED[orientation]) if orientation in _STORED else picture
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.{fmt.lower()}"
    stored.save(path, fmt, exif=exif, **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))
    got = preprocess_image(load_image(path), PREP)
    want = preprocess_image(picture, PREP)
    assert np.abs(got - want).max() < (0.15 if fmt == "JPEG" else 1e-5)
    if orientation in (5, 6, 7, 8):  # a rotated picture is not the stored one: the test can fail
        assert np.abs(preprocess_image(stored.convert("RGB"), PREP) - want).max() > 0.5


# ------------------------------------------------------------------------------------- real faults


def _child(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, **kwargs)


def _wait_for(child: subprocess.Popen, marker: str, seen: list[str]) -> None:
    """Read the child's output until a line containing `marker` (or its end)."""
    for line in child.stdout:
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"{marker!r} never came: {''.join(seen)}")


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow  # two exports under a file-size limit (11 s)
def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, inputs):
    """A real write failure (file-size limit in the child: EFBIG, like ENOSPC) while writing the ONNX."""
    out = tmp_path / "out"
    out.mkdir()
    child = _child(["onnx", "-m", "volo_tiny_digits", "-o", out / "m.onnx", "--no-validate"],
                   preexec_fn=_limit_file_size(100_000))
    output = child.communicate(timeout=600)[0]
    assert child.returncode == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "File too large" in errors[0] and "Traceback" not in output, output
    assert files_in(out) == set()
    small = _child(["preprocess", inputs / "photo.png", "--model-name", "volo_tiny_digits", "--out", out / "x.bin"],
                   preexec_fn=_limit_file_size(1_000))
    output = small.communicate(timeout=300)[0]
    assert small.returncode == 1 and "File too large" in output and "Traceback" not in output, output
    assert files_in(out) == set()


@pytest.mark.parametrize("sig,marker,code", [
    (signal.SIGTERM, "exporting to ONNX", 128 + signal.SIGTERM),
    pytest.param(signal.SIGINT, "calibrating", 130, marks=pytest.mark.slow),
    pytest.param(signal.SIGTERM, "gating against", 128 + signal.SIGTERM, marks=pytest.mark.slow),
])
def test_handled_signals_leave_the_old_file_untouched(sig, marker, code, tmp_path, digits_folders):
    """SIGTERM/SIGINT during the export, the calibration and the INT8 gate (each takes seconds, so the
    signal lands inside it): exit 143/130, the staging folder gone, the previous file untouched.
    (Only the calibration cache may be new: it is kept on purpose.)"""
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.onnx").write_bytes(b"the previous, validated model")
    calib, test = digits_folders
    # SIGINT as from a terminal: a child of a shell's background job inherits it ignored (and then Python
    # rightly keeps ignoring it), so the child gets the default disposition back.
    child = _child(["onnx", "-m", "volo_tiny_digits", "-o", out / "m.onnx", "--precision", "int8", "--calib-data",
                    calib, "--validate-images", test], preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen: list[str] = []
    _wait_for(child, marker, seen)
    child.send_signal(sig)
    output = "".join(seen) + child.communicate(timeout=300)[0]
    assert child.returncode == code, output
    assert "Traceback" not in output and output.strip().splitlines()[-1].startswith("error:")
    assert files_in(out) - {"m.calib.json"} == {"m.onnx"}
    assert (out / "m.onnx").read_bytes() == b"the previous, validated model"


@pytest.mark.slow
def test_sigkill_staging_is_removed_by_the_next_run_but_never_a_live_one(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.onnx").write_bytes(b"old")
    child = _child(["onnx", "-m", "volo_tiny_digits", "-o", out / "m.onnx"])
    _wait_for(child, "validating against eager PyTorch", [])
    child.kill()
    child.wait(timeout=60)
    left = files_in(out) - {"m.onnx"}
    assert left and all(".volo-export-" in p for p in left)  # SIGKILL cannot be handled: staging stays ...
    assert (out / "m.onnx").read_bytes() == b"old"
    live = out / f".other.onnx.volo-export-{os.getpid()}-{process_start(os.getpid())}.abcd"
    live.mkdir()  # ... but a live process's staging folder is not stale
    removed = remove_stale_staging(out)
    assert {p.name for p in removed} == {Path(p).parts[0] for p in left}
    assert files_in(out) == {"m.onnx", live.name}
    child = _child(["onnx", "-m", "volo_tiny_digits", "-o", out / "m.onnx", "--no-validate"])
    assert child.wait(timeout=600) == 0
    assert files_in(out) == {"m.onnx", live.name} and (out / "m.onnx").read_bytes() != b"old"


def test_a_library_error_becomes_one_line_even_without_a_message():
    assert first_line(RuntimeError("\n  bad graph: node 3\n  at frame 2")) == "bad graph: node 3"
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(OSError("disk full\nerrno 28"), typed=True) == "OSError: disk full"
    assert first_line(ValueError(" \n "), typed=True) == "ValueError"
    assert first_line("  \n[TRT] network has no output\n detail") == "[TRT] network has no output"
    assert first_line("", typed=True) == ""  # a logged message carries no type name


def test_a_runtime_that_fails_silently_still_gives_one_line(monkeypatch, tmp_path):
    import onnxruntime

    from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner

    def silent_failure(*args, **kwargs):
        raise RuntimeError()  # an empty message: a bare splitlines()[0] raised IndexError here

    monkeypatch.setattr(onnxruntime, "InferenceSession", silent_failure)
    with pytest.raises(InputDataError, match=r"^ONNX Runtime cannot load .*m\.onnx: RuntimeError$"):
        OnnxRuntimeRunner(tmp_path / "m.onnx")


def test_a_failed_gate_whose_report_cannot_be_written_still_fails_in_one_line(capsys):
    import typer

    from volo_export.cli.console import user_errors
    from volo_export.errors import ValidationFailed

    def disk_full(report):
        raise OSError(28, "No space left on device", "r.json")

    with pytest.raises(typer.Exit) as exit_info, user_errors(disk_full):
        raise ValidationFailed("m.onnx: cosine 0.5 < 0.99", report=object())
    assert exit_info.value.exit_code == 3
    err = capsys.readouterr().err
    assert "the report was not written: [Errno 28] No space left on device" in err and "cosine 0.5" in err
