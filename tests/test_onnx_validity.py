"""Every ONNX volo-export writes passes onnx's full checker and strict shape inference: `finalize` drops
value_info that graph rewrites left stale (the float16 converter declared LayerNorm weights float16 while
storing them float32, and kept `*_cast_to_fp32` entries no node produces) and then runs the full check."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from volo_export.errors import ExportError
from volo_export.export.metadata import read_info
from volo_export.export.to_onnx import finalize, prune_value_info
from volo_export.names import Precision
from volo_export.precision.forms import forms

INT8_FORMS = [f for f in forms() if f.precision == Precision.INT8]


def _strictly_valid(model) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


@pytest.fixture(scope="module")
def lowered(tiny_fp32):
    """The tiny model's FP16 graph and both INT8 forms, straight from their targets (before finalize)."""
    from volo_export.activations import collect_stats
    from volo_export.calibration.methods import compute_ranges
    from volo_export.precision.fp16 import to_fp16
    from volo_export.precision.int8 import find_targets
    from volo_export.precision.form import Prepared
    from volo_export.precision.forms import qdq_calibration_tensors
    from volo_export.precision.forms.int8_openvino import Int8OpenVino
    from volo_export.precision.qdq_form import QdqState

    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)
    tensors = qdq_calibration_tensors(tiny_fp32)
    ranges = compute_ranges(collect_stats(tiny_fp32, tensors, x, histogram=False), "minmax")
    lowered = {"fp16": to_fp16(tiny_fp32).model}
    for form in INT8_FORMS:
        state = QdqState(find_targets(tiny_fp32, form().selection()), ranges, [], x)
        if form is Int8OpenVino:
            state = form().passed(tiny_fp32, state)
        lowered[f"int8-{form.target}"] = form().build(tiny_fp32, Prepared(state)).model
    return lowered


def test_fp32_export_is_strictly_valid(tiny_fp32):
    _strictly_valid(tiny_fp32)
    initializers = {t.name for t in tiny_fp32.graph.initializer}
    assert not [v for v in tiny_fp32.graph.value_info if v.name in initializers]


@pytest.mark.parametrize("form", ["fp16", *(f"int8-{form.target}" for form in INT8_FORMS)])
def test_lowered_graphs_are_strictly_valid_after_finalize(lowered, tiny_fp32, form):
    model = onnx.ModelProto()
    model.CopyFrom(lowered[form])
    _strictly_valid(finalize(model, read_info(tiny_fp32)))


def _as_exported(fp32):
    """`fp32` with value_info for its initializers, as torch's dynamo exporter writes them (before finalize)."""
    from onnx import helper

    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    model.graph.value_info.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                                  for t in model.graph.initializer)
    return model


def test_fp16_conversion_leaves_stale_value_info_that_finalize_drops(tiny_fp32):
    from volo_export.precision.fp16 import to_fp16

    fp16 = to_fp16(_as_exported(tiny_fp32)).model
    with pytest.raises(onnx.shape_inference.InferenceError, match="Inferred elem type differs from existing elem"):
        onnx.checker.check_model(fp16, full_check=True)  # LayerNorm weights declared float16, stored float32
    produced = {o for n in fp16.graph.node for o in n.output}
    stale = [v.name for v in fp16.graph.value_info if v.name.endswith("_cast_to_fp32") and v.name not in produced]
    assert "network.0.0.norm1.weight_cast_to_fp32" in stale  # declared, produced by no node (drop_noop_casts)
    _strictly_valid(finalize(fp16, read_info(tiny_fp32)))
    assert not {v.name for v in fp16.graph.value_info} & ({t.name for t in fp16.graph.initializer} | set(stale))
    assert prune_value_info(fp16.graph) == 0




def test_finalize_refuses_an_invalid_graph(tiny_fp32):
    broken = onnx.ModelProto()
    broken.CopyFrom(tiny_fp32)
    broken.graph.node[0].input[0] = "nothing_makes_this"
    with pytest.raises(ExportError, match="exported graph fails onnx.checker"):
        finalize(broken, read_info(tiny_fp32))
