"""benchmarks/vs_modelopt.py, its pure parts: finding ModelOpt (and the one line when it is missing), the table
and the issue-17 verdicts from layer reports. No ModelOpt, export or build runs here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from volo_export.results import Mark
from volo_export.trt.layers import LayerReport

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_modelopt.py"


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("vs_modelopt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _layers(layers, by_precision, float32_input, traffic_mb, attention, fused_attention=0) -> dict:
    """A sidecar's `layers` as the build writes it (only the mix matters here)."""
    return LayerReport(layers, {}, by_precision=by_precision, float32_input=float32_input,
                       fused_attention=fused_attention, traffic_bytes=traffic_mb * 1e6,
                       attention={f"attn_{i}": p for i, p in enumerate(attention)}).to_dict()


def _rows(vs):
    """Issue 17's D1 numbers: ours INT8 as today, ModelOpt INT8, ours FP8 missing, ModelOpt FP8, ours FP16."""
    Row = vs.Row
    return [Row("ours INT8", vs.OURS, "int8", layers=_layers(288, {"int8": 93, "fp32": 194}, 194, 207.0, ["fp32"] * 32),
                min_cosine=0.99934, top1=1.0),
            Row("ModelOpt INT8", vs.MODELOPT, "int8", min_cosine=0.99868, top1=1.0,
                layers=_layers(292, {"int8": 102, "fp16": 158, "fp32": 31}, 31, 103.0, ["fp16"] * 32, 3)),
            Row("ours FP8", vs.OURS, "fp8", error="UsageError: --precision fp8: choose one of fp32, fp16, int8"),
            Row("ModelOpt FP8", vs.MODELOPT, "fp8", min_cosine=0.99308, top1=0.9,
                layers=_layers(275, {"fp8": 87, "int8": 4, "fp16": 146, "fp32": 27}, 27, 95.0, ["fp16"] * 32, 7)),
            Row("ours FP16", vs.OURS, "fp16", min_cosine=0.99999, top1=1.0,
                layers=_layers(257, {"fp16": 182, "fp32": 14}, 14, 72.0, ["fp16"] * 32, 46))]


def test_goals_compare_ours_with_modelopt_and_the_bounds(vs):
    got = {(g.precision, g.goal): (g.ours, g.bound, g.passed) for g in vs.goals(_rows(vs))}
    assert got[("int8", "min cosine vs eager >= ModelOpt's")] == ("0.99934", "0.99868", True)
    assert got[("int8", "float32-input layers <= ModelOpt's")] == ("194", "31", False)
    assert got[("int8", "activation traffic MB/image <= ModelOpt's")] == ("207", "103", False)
    assert got[("int8", "float32-input layers <= 10% of layers")] == ("67.4 %", "10.0 %", False)
    assert got[("int8", "attention GEMMs in float32 = 0")] == ("32", "0", False)
    assert got[("int8", "activation traffic MB/image <= FP16's + 10%")] == ("207", "79.2", False)
    # ours FP8 failed: every goal is unknown, never met by default
    assert {g.passed for g in vs.goals(_rows(vs)) if g.precision == "fp8"} == {None}
    assert not any(g.precision == "fp16" for g in vs.goals(_rows(vs)))


def test_goals_met_when_ours_is_the_better_engine(vs):
    rows = _rows(vs)
    rows[0].layers = _layers(260, {"int8": 93, "fp16": 150, "fp32": 17}, 20, 75.0, ["int8"] * 32, 16)
    assert all(g.passed for g in vs.goals(rows) if g.precision == "int8")


def test_table_cells_and_json(vs):
    result = vs.VsModelOpt("volo_d1_224", _rows(vs), "13 held-out images of val", {"cpu": "x"}, {"commands": {}})
    mix, goal_table = result.tables()
    header = [c.name for c in mix.columns]
    assert "accuracy (FP32)" not in header  # nothing labelled
    rows = {r[0]: dict(zip(header, r)) for r in mix.rows}
    assert rows["ModelOpt FP8"]["INT8/FP8"] == "87 fp8 + 4 int8"
    assert rows["ours INT8"]["float32 input"] == "194 (67.4 %)"
    assert rows["ours INT8"]["attention GEMMs fp32"] == "32 of 32"
    assert rows["ModelOpt INT8"]["traffic MB/img"] == "103" and rows["ModelOpt INT8"]["min cos"] == "0.99868"
    assert rows["ModelOpt FP8"]["<= 10% f32 input"] == Mark("yes", "good")  # 27 of 275
    assert rows["ModelOpt INT8"]["traffic <= FP16+10%"] == Mark("no", "bad")  # 103 > 79.2
    assert rows["ours FP8"]["layers"] == Mark("failed", "bad")
    assert result.problems() == ["ours FP8: failed: UsageError: --precision fp8: choose one of fp32, fp16, int8"]
    assert len(goal_table.rows) == 12
    data = json.loads(json.dumps(result.to_dict()))
    assert [r["label"] for r in data["rows"]][:2] == ["ours INT8", "ModelOpt INT8"]
    assert data["bounds"] == {"max_float32_input": 0.1, "max_traffic_over_fp16": 0.1}


def test_modelopt_found_by_option_environment_or_venv(vs, tmp_path):
    python = tmp_path / ".venv-modelopt" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    version = {python: "0.47.0"}.get
    assert vs.find_modelopt(None, {}, tmp_path, version) == (python, "0.47.0")  # in the checkout
    assert vs.find_modelopt(None, {}, tmp_path / "repo", version) == (python, "0.47.0")  # beside it
    assert vs.find_modelopt(None, {vs.ENV_VAR: str(python)}, tmp_path / "x" / "y", version)[0] == python
    with pytest.raises(vs.ModelOptMissing):  # the option is the only place looked at when given
        vs.find_modelopt(tmp_path / "other", {}, tmp_path, version)


def test_missing_modelopt_is_one_line_that_says_how_to_install(vs, tmp_path):
    with pytest.raises(vs.ModelOptMissing) as e:
        vs.find_modelopt(None, {}, tmp_path, lambda p: None)
    message = str(e.value)
    assert "\n" not in message and 'pip install "nvidia-modelopt[onnx]"' in message
    assert str(tmp_path / ".venv-modelopt" / "bin" / "python") in message
    # the script itself: one error line, exit status 1, before any export work
    done = subprocess.run([sys.executable, str(SCRIPT), "--modelopt-python", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stderr.startswith("error: NVIDIA ModelOpt not found")
    assert len(done.stderr.strip().splitlines()) == 1
