"""`volo-export validate`: an existing .onnx or .engine against eager PyTorch rebuilt from its
metadata and the user's checkpoint, through the export gate's comparison and Report."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from helpers import assert_one_line_error, write_fake_engine
from volo_export.models.random_weights import randomize
from volo_export.cli import app
from volo_export.errors import UsageError
from volo_export.export.metadata import read_info, write_info
from volo_export.gate.inputs import InputSet, fit_to
from volo_export.models.volo import create_model
from volo_export.runtime.base import BatchRange
from volo_export.tolerances import FP16, FP32, GPU_FP32, GateOverrides, tolerance_for
from volo_export.trt.config import BuildSettings


def test_validate_onnx_against_its_checkpoint(tmp_path, tiny_onnx, tiny_checkpoint):
    report_file = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["validate", "--model", str(tiny_onnx), "--checkpoint", str(tiny_checkpoint),
                                   "--report", str(report_file), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report == json.loads(report_file.read_text())
    assert report["passed"] and report["tolerance"] == "fp32" and report["model"] == "volo_tiny_digits"
    comps = report["comparisons"]
    assert len(comps) >= 4 and {c["batch_size"] for c in comps} >= {1, 4, 8}
    assert any(c["inputs"].startswith("photos") for c in comps) and comps[-1]["inputs"] == "random"
    assert max(c["max_abs"] for c in comps) < 1e-4 and min(c["min_cosine"] for c in comps) > 0.99999
    assert all(c["top1_agreement"] == 1.0 for c in comps)


def test_validate_refuses_other_weights(tmp_path, tiny_onnx, tiny_config):
    other = tmp_path / "other.pth"
    torch.save(randomize(create_model(tiny_config), seed=7).state_dict(), other)
    res = CliRunner().invoke(app, ["validate", "--model", str(tiny_onnx), "-c", str(other)])
    assert_one_line_error(res, 2, "is not the checkpoint tiny_digits.onnx was exported from")


def test_validate_failure_shows_the_report_then_one_line(tiny_onnx, tiny_checkpoint):
    res = CliRunner().invoke(app, ["validate", "--model", str(tiny_onnx), "-c", str(tiny_checkpoint),
                                   "--min-cosine", "1"])
    assert_one_line_error(res, 3, "error: tiny_digits.onnx differs from eager PyTorch:", "cosine")
    assert "FAIL" in res.stdout


def test_validate_needs_a_reference(tmp_path, tiny_onnx):
    runner = CliRunner()
    res = runner.invoke(app, ["validate", "--model", str(tiny_onnx)])
    assert res.exit_code == 2 and "pass --checkpoint" in res.stderr and "sha256" in res.stderr, res.output
    proto = onnx.load(str(tiny_onnx))
    write_info(proto, dataclasses.replace(read_info(proto), checkpoint_sha256=None, random_weights=True))
    onnx.save(proto, str(tmp_path / "random.onnx"))
    res = runner.invoke(app, ["validate", "--model", str(tmp_path / "random.onnx")])
    assert res.exit_code == 2 and "was exported with random weights" in res.stderr
    res = runner.invoke(app, ["validate", "--model", str(tiny_onnx), "--engine", "x.engine"])
    assert res.exit_code == 2 and "exactly one of --engine" in res.stderr


def test_validate_engine_uses_its_profile_and_tensorrt_tolerance(fake_gpu, tmp_path, tiny_onnx, tiny_checkpoint):
    engine = write_fake_engine(tiny_onnx, tmp_path / "tiny.engine", BuildSettings(min_batch=2, max_batch=4))
    res = CliRunner().invoke(app, ["validate", "--engine", str(engine), "-c", str(tiny_checkpoint), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["passed"] and report["tolerance"] == "fp32-tf32" and report["precision"] == "fp32 (tensorrt)"
    assert {c["batch_size"] for c in report["comparisons"]} <= {2, 3, 4}  # every batch inside the profile
    assert set(fake_gpu.sessions[0].batches) <= {2, 3, 4}


def test_fit_to_batch_range():
    rows = np.arange(9, dtype=np.float32).reshape(9, 1)
    sets = [InputSet("one", rows[:1]), InputSet("nine", rows), InputSet("three", rows[:3])]
    fitted = fit_to(sets, BatchRange(2, 4))
    assert [(s.label, len(s.array)) for s in fitted] == [
        ("one (rows repeated to batch 2)", 2), ("nine[0:4]", 4), ("nine[4:8]", 4),
        ("nine[8:9] (rows repeated to batch 2)", 2), ("three", 3)]
    assert fitted[0].array[:, 0].tolist() == [0, 0] and fitted[3].array[:, 0].tolist() == [8, 8]
    assert [s.rows for s in fitted] == [1, None, None, 1, None]  # only real rows are compared
    unchanged = fit_to(sets, BatchRange())
    assert [s.label for s in unchanged] == ["one", "nine", "three"]
    assert all(a.array is b.array for a, b in zip(unchanged, sets))


def test_tolerance_follows_precision_and_runtime():
    assert tolerance_for("fp32") == FP32 and tolerance_for("fp32", "onnxruntime-cpu") == FP32
    for gpu in ("tensorrt", "tensorrt-rtx", "onnxruntime-tensorrt", "onnxruntime-cuda"):  # TF32 tensor cores
        assert tolerance_for("fp32", gpu) == GPU_FP32
    assert tolerance_for("fp16", "tensorrt") == FP16  # the precision is in the graph
    assert tolerance_for("fp32", overrides=GateOverrides(min_cosine=0.5)).min_cosine == 0.5
    with pytest.raises(UsageError, match="no gate for precision 'int3'"):
        tolerance_for("int3")


def test_the_gate_counts_rows_repeated_for_a_static_batch_once():
    from volo_export.gate.compare import run_gate
    from volo_export.gate.reference import Reference
    from volo_export.tolerances import INT8

    logits = np.eye(10, dtype=np.float32)[[0, 1, 2]] * 5  # three images, classes 0, 1, 2
    wrong_first = logits.copy()
    wrong_first[0] = np.eye(10, dtype=np.float32)[9] * 5  # the candidate gets the first image wrong
    table = {tuple(row): i for i, row in enumerate(np.arange(3, dtype=np.float32).reshape(3, 1))}
    reference = Reference(lambda x: logits[[table[tuple(r)] for r in x]], "ref")
    candidate = lambda x: wrong_first[[table[tuple(r)] for r in x]]  # noqa: E731
    sets = fit_to([InputSet("three", np.arange(3, dtype=np.float32).reshape(3, 1), np.array([0, 1, 2]))],
                  BatchRange(8, 8))
    assert len(sets[0].array) == 8  # rows 0, 1, 2, 0, 1, 2, 0, 1: the wrong image three times
    report = run_gate(reference, candidate, sets, INT8, artifact="a", model="m", precision="int8")
    pooled = report.comparisons[-1]
    assert pooled.inputs == "all 3 inputs" and pooled.top1_agreement == pytest.approx(2 / 3)
    assert pooled.accuracy == pytest.approx(2 / 3) and pooled.reference_accuracy == 1.0
