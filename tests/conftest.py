"""Shared fixtures: the tiny model (random and trained), its exports and checkpoints, the digits
folders, a fake GPU for the TensorRT runner, a full-size D1 export. Plain helpers: helpers.py."""

from __future__ import annotations

import pytest
import torch

from helpers import build_environment, fake_session_factory
from volo_export.models.random_weights import randomize, save_random_checkpoint
from volo_export.models.variants import VoloConfig, get_config
from volo_export.models.volo import VOLO, create_model


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The user cache (~/.cache/volo-export: OpenVINO model cache, --runtime auto verdicts) of this test
    session: a temporary folder, so tests neither read nor leave the developer's."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("xdg-cache")
        patch.setenv("XDG_CACHE_HOME", str(root))
        yield root


@pytest.fixture(scope="session")
def tiny_config() -> VoloConfig:
    return get_config("volo_tiny_digits")


@pytest.fixture(scope="session")
def tiny_model(tiny_config) -> VOLO:
    torch.manual_seed(0)
    return randomize(create_model(tiny_config))


@pytest.fixture(scope="session")
def tiny_state_dict(tiny_model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in tiny_model.state_dict().items()}


@pytest.fixture(scope="session")
def tiny_trained():
    """The bundled, trained volo_tiny_digits (LoadedModel)."""
    from volo_export.models.checkpoint import load_model

    return load_model("volo_tiny_digits")


@pytest.fixture(scope="session")
def tiny_fp32(tiny_trained):
    """FP32 ONNX ModelProto (with metadata) of the trained tiny model, exported once per session."""
    from volo_export.export.to_onnx import export_model

    return export_model(tiny_trained)[0]


@pytest.fixture(scope="session")
def digits_folders(tmp_path_factory):
    """The digits calib and test splits written as class folders: (calib_dir, test_dir)."""
    from volo_export.datasets import write_image_folder

    root = tmp_path_factory.mktemp("digits")
    write_image_folder("calib", root / "calib")
    write_image_folder("test", root / "test")
    return root / "calib", root / "test"


# --- artifacts shared by the TensorRT / runtime / predict / validate tests -------------------

@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_state_dict):
    """The randomized tiny model's weights as a plain state-dict file."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny_digits.pth"
    torch.save(tiny_state_dict, path)
    return path


@pytest.fixture(scope="session")
def tiny_onnx_export(tmp_path_factory, tiny_checkpoint):
    """`volo-export onnx` on volo_tiny_digits (rewrite on, dynamic batch, metadata): (path, CLI output)."""
    from typer.testing import CliRunner

    from volo_export.cli import app

    out = tmp_path_factory.mktemp("onnx") / "tiny_digits.onnx"
    result = CliRunner().invoke(app, ["onnx", "--model", "volo_tiny_digits", "--checkpoint", str(tiny_checkpoint),
                                      "--output", str(out), "--no-validate"])
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="session")
def tiny_onnx(tiny_onnx_export):
    return tiny_onnx_export[0]


@pytest.fixture(scope="session")
def tiny_naive_onnx(tmp_path_factory, tiny_model):
    """The naive export (no rewrite): F.fold becomes Col2Im."""
    import onnx

    from volo_export.export.to_onnx import ExportOptions, torch_to_onnx

    out = tmp_path_factory.mktemp("onnx") / "tiny_digits_naive.onnx"
    onnx.save(torch_to_onnx(tiny_model, ExportOptions(rewrite=False)), str(out))
    return out


@pytest.fixture(scope="session")
def tiny_fp16_onnx(tmp_path_factory, tiny_onnx):
    """FP16 conversion of the FP32 export with onnxruntime's converter (float32 I/O kept)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = tmp_path_factory.mktemp("onnx") / "tiny_digits_fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(tiny_onnx)), keep_io_types=True), str(out))
    return out


# --- a TensorRT stand-in for CPU tests: real sidecars, plans that name the ONNX to run ----------

class FakeGpu:
    """What `running_environment()` reports while the fixture is active; change `running` to simulate
    another machine. Sessions run the named ONNX with ONNX Runtime on CPU. For tests that go through
    the CLI; library tests pass `running=` and `session=` to TensorRTRunner instead."""

    def __init__(self):
        self.running = build_environment()
        self.sessions: list = []


@pytest.fixture
def fake_gpu(monkeypatch):
    from volo_export.trt import environment, infer

    gpu = FakeGpu()
    monkeypatch.setattr(environment, "running_environment", lambda: gpu.running)
    monkeypatch.setattr(infer, "EngineSession", fake_session_factory(gpu.sessions))
    return gpu


@pytest.fixture(scope="session")
def d1_onnx_with_checkpoint(tmp_path_factory):
    """Full-size VOLO-D1 (randomized weights, saved as a checkpoint) exported by the pipeline without
    its gate: about a minute on 2 cores. Returns (onnx path, checkpoint path)."""
    from volo_export.pipeline import OnnxRequest, export_onnx

    folder = tmp_path_factory.mktemp("d1")
    checkpoint = save_random_checkpoint("volo_d1_224", folder / "d1_random.pth")
    out = folder / "volo_d1_224.onnx"
    export_onnx(OnnxRequest(model="volo_d1_224", output=out, checkpoint=checkpoint, validate=False))
    return out, checkpoint


@pytest.fixture(scope="session")
def tiny_trained_onnx(tmp_path_factory):
    """`volo_export.export` of the bundled, trained volo_tiny_digits (gated FP32, dynamic batch): (path,
    ExportResult). Shared by the API tests and the documentation examples."""
    import volo_export as ve

    out = tmp_path_factory.mktemp("trained") / "volo_tiny_digits.onnx"
    return out, ve.export("volo_tiny_digits", out)


@pytest.fixture(scope="session")
def d1_fp32_onnx(d1_onnx_with_checkpoint):
    """The VOLO-D1 FP32 export of `d1_onnx_with_checkpoint` (path; not gated here: its users gate what they make)."""
    return d1_onnx_with_checkpoint[0]


@pytest.fixture(scope="session")
def d1_samples(tmp_path_factory):
    """scikit-image photo crops at D1's preprocessing: (calibration folder, held-out folder)."""
    from volo_export.calibration.samples import write_samples

    return write_samples("volo_d1_224", tmp_path_factory.mktemp("d1_samples"))


@pytest.fixture(scope="session")
def d1_int8_onnx(tmp_path_factory, d1_onnx_with_checkpoint, d1_samples):
    """VOLO-D1 INT8 (--target tensorrt) of `d1_fp32_onnx`, calibrated on 64 photo crops and gated against eager
    PyTorch (the saved checkpoint) on the held-out ones; its gate report is `d1_int8.json` beside it (path).
    One quantisation for every slow test that needs a D1 INT8 graph."""
    from volo_export.pipeline import QuantizeRequest, quantize_onnx
    from volo_export.precision.convert import PrecisionRequest

    onnx_path, checkpoint = d1_onnx_with_checkpoint
    calib, val = d1_samples
    folder = tmp_path_factory.mktemp("d1_int8")
    out = folder / "d1_int8_tensorrt.onnx"
    precision = PrecisionRequest(precision="int8", target="tensorrt", calib_data=str(calib), calib_size=64,
                                 calib_cache=folder / "d1.calib.json")
    quantize_onnx(QuantizeRequest(onnx_path, out, precision, checkpoint=checkpoint, validate_images=val,
                                  report=folder / "d1_int8.json"))
    return out


@pytest.fixture(scope="session")
def d1_fp8_onnx(tmp_path_factory, d1_onnx_with_checkpoint, d1_samples, d1_int8_onnx):
    """VOLO-D1 FP8 (TensorRT Q/DQ) of `d1_fp32_onnx`, calibrated and gated like `d1_int8_onnx`, from the same
    calibration cache (one cache serves every Q/DQ form) (path)."""
    from volo_export.pipeline import QuantizeRequest, quantize_onnx
    from volo_export.precision.convert import PrecisionRequest

    onnx_path, checkpoint = d1_onnx_with_checkpoint
    calib, val = d1_samples
    out = tmp_path_factory.mktemp("d1_fp8") / "d1_fp8.onnx"
    precision = PrecisionRequest(precision="fp8", calib_data=str(calib), calib_size=64,
                                 calib_cache=d1_int8_onnx.parent / "d1.calib.json")
    quantize_onnx(QuantizeRequest(onnx_path, out, precision, checkpoint=checkpoint, validate_images=val))
    return out


@pytest.fixture(scope="session")
def d1_int8_openvino_onnx(tmp_path_factory, d1_onnx_with_checkpoint, d1_samples):
    """VOLO-D1 INT8 for OpenVINO (--target openvino) of `d1_fp32_onnx`, calibrated and gated like
    `d1_int8_onnx` (path): the INT8 form the C++ app's CPU backend (OpenVINO) is for."""
    from volo_export.pipeline import QuantizeRequest, quantize_onnx
    from volo_export.precision.convert import PrecisionRequest

    onnx_path, checkpoint = d1_onnx_with_checkpoint
    calib, val = d1_samples
    folder = tmp_path_factory.mktemp("d1_int8_openvino")
    out = folder / "d1_int8_openvino.onnx"
    precision = PrecisionRequest(precision="int8", target="openvino", calib_data=str(calib), calib_size=64,
                                 calib_cache=folder / "d1.calib.json")
    quantize_onnx(QuantizeRequest(onnx_path, out, precision, checkpoint=checkpoint, validate_images=val))
    return out
