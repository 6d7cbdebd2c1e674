"""torch -> ONNX: no Col2Im in any variant, only TensorRT-parseable op types, dynamic batch, metadata."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from helpers import small_config
from volo_export.export import to_onnx
from volo_export.export.metadata import ArtifactInfo, read_info
from volo_export.export.to_onnx import ExportOptions, finalize, op_histogram, save_onnx, torch_to_onnx
from volo_export.models.variants import model_names
from volo_export.models.volo import create_model
from volo_export.runtime.onnxruntime_runner import OnnxRuntimeRunner

# Every op type our export may contain; each is in TensorRT 10/11's ONNX parser support table
# (onnx-tensorrt docs/operators.md). Col2Im is not, and must never appear.
TENSORRT_SAFE_OPS = {
    "Add", "AveragePool", "Concat", "Constant", "Conv", "Expand", "Gather", "Gelu", "Gemm",
    "LayerNormalization", "MatMul", "Mul", "Pad", "ReduceMax", "ReduceMean", "Relu", "Reshape", "Shape", "Slice",
    "Softmax", "Split", "Squeeze", "Transpose", "Unsqueeze",
}


def _export(config, **options):
    model = create_model(config)
    proto = torch_to_onnx(model, ExportOptions(**options))
    return model, proto


def _assert_exact_and_col2im_free(config):
    """Export `config`, run it in ONNX Runtime against eager, and check its op types."""
    model, proto = _export(config)
    x = torch.randn(1, 3, model.config.img_size, model.config.img_size)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(OnnxRuntimeRunner(proto.SerializeToString())(x.numpy()) - ref).max() < 1e-4
    ops = op_histogram(proto)
    assert "Col2Im" not in ops
    assert set(ops) <= TENSORRT_SAFE_OPS, set(ops) - TENSORRT_SAFE_OPS
    assert ops["LayerNormalization"] >= 5 and ops["Softmax"] >= 3


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_every_variant_exports_without_col2im(name):
    """Each variant at its real resolution and widths, one block per stage (op types do not depend on
    depth), exported and run in ONNX Runtime against eager."""
    _assert_exact_and_col2im_free(small_config(name))


# D3 is D2's widths and heads with more blocks: with one block per stage it would be D2 again.
@pytest.mark.parametrize("family", ["volo_d1_224", *(pytest.param(f, marks=pytest.mark.slow)
                                                     for f in ("volo_d2_224", "volo_d4_224", "volo_d5_224"))])
def test_every_family_exports_without_col2im_at_64px(family):
    """The fast form of the test above: every architecture's real widths and heads at 64x64."""
    _assert_exact_and_col2im_free(small_config(family, size=64))


@pytest.mark.slow  # one more tiny export each; test_foreign_onnx covers the naive export in the fast lane
def test_naive_export_has_col2im(tiny_config):
    """The problem the rewrite solves is real: the stock export emits Col2Im."""
    _, proto = _export(tiny_config, rewrite=False)
    assert op_histogram(proto)["Col2Im"] == tiny_config.layers[0]


def test_dynamic_batch_matches_eager(tiny_model):
    proto = torch_to_onnx(tiny_model, ExportOptions())
    runner = OnnxRuntimeRunner(proto.SerializeToString())
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param and not dim.dim_value
    for batch in (1, 3, 8):
        x = torch.randn(batch, 3, 64, 64)
        with torch.no_grad():
            ref = tiny_model(x).numpy()
        out = runner(x.numpy())
        assert out.shape == (batch, 10)
        assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_static_batch(tiny_model):
    proto = torch_to_onnx(tiny_model, ExportOptions(batch=4))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [4, 3, 64, 64]
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [4, 10]


def test_io_names_and_metadata_roundtrip(tmp_path, tiny_model):
    info = ArtifactInfo.for_model(tiny_model.config, "ab" * 32, 20)
    proto = finalize(torch_to_onnx(tiny_model, ExportOptions()), info)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert proto.opset_import[0].version == 20
    path = tmp_path / "m.onnx"
    save_onnx(proto, path)
    back = read_info(path)
    assert back == info
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["volo_export.model"] == "volo_tiny_digits"
    assert props["volo_export.mean"] == "[0.485, 0.456, 0.406]"
    assert props["volo_export.crop_pct"] == "1.0"
    assert props["volo_export.checkpoint_sha256"] == "ab" * 32
    assert "torch" in back.versions and "onnx" in back.versions


@pytest.mark.slow  # one more tiny export each; test_foreign_onnx covers the naive export in the fast lane
def test_external_data_only_when_required(tmp_path, tiny_model, monkeypatch):
    proto = torch_to_onnx(tiny_model, ExportOptions())
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64), dtype=np.float32)
    ref = OnnxRuntimeRunner(proto.SerializeToString())(x)
    save_onnx(proto, tmp_path / "small.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.onnx"]
    monkeypatch.setattr(to_onnx, "_PROTOBUF_LIMIT", 1000)  # pretend the model is over 2 GB
    save_onnx(proto, tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").stat().st_size > 500_000
    assert np.array_equal(OnnxRuntimeRunner(tmp_path / "big.onnx")(x), ref)


@pytest.mark.parametrize("opset", [17, 25])
def test_opset_out_of_range(opset):
    from volo_export.errors import UsageError

    with pytest.raises(UsageError, match="--opset"):
        ExportOptions(opset=opset)


@pytest.mark.slow  # one more tiny export each; test_foreign_onnx covers the naive export in the fast lane
def test_opset_18_exports(tiny_model):
    proto = torch_to_onnx(tiny_model, ExportOptions(opset=18))
    assert proto.opset_import[0].version == 18
    assert "Col2Im" not in op_histogram(proto)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = tiny_model(x).numpy()
    assert np.abs(OnnxRuntimeRunner(proto.SerializeToString())(x.numpy()) - ref).max() < 1e-4


@pytest.mark.slow  # exports a foreign graph; test_security_data and test_foreign_onnx check these refusals in the fast lane
def test_read_info_rejects_non_onnx_and_foreign_onnx(tmp_path, tiny_model):
    from volo_export.errors import InputDataError

    (tmp_path / "junk.onnx").write_bytes(b"\xff\xfe not protobuf" * 8)
    with pytest.raises(InputDataError, match="is not an ONNX model"):
        read_info(tmp_path / "junk.onnx")
    save_onnx(torch_to_onnx(tiny_model, ExportOptions()), tmp_path / "plain.onnx")  # no volo_export metadata
    with pytest.raises(InputDataError, match="carries no volo-export metadata"):
        read_info(tmp_path / "plain.onnx")
