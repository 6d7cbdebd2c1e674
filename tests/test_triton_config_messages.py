"""Triton configs are ModelConfig messages serialised with protobuf's text format (issue 16, part 3): for
every case of tests/triton_golden.py they parse to the same messages as the config.pbtxt text the earlier
hand-written writer produced (captured in tests/data/triton_configs_v0.json), and the written file is exactly
text_format of the message."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="triton-repo needs tritonclient (extra triton)")
from google.protobuf import text_format  # noqa: E402

from triton_golden import CASES, normalized_spec  # noqa: E402

GOLDEN = json.loads((Path(__file__).parent / "data" / "triton_configs_v0.json").read_text())


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_onnx):
    from helpers import write_fake_engine

    return write_fake_engine(tiny_onnx, tmp_path_factory.mktemp("engine") / "tiny.engine")


@pytest.mark.parametrize("case", sorted(CASES))
def test_configs_parse_to_the_messages_of_the_hand_written_text(case, tiny_onnx, engine, tmp_path):
    from volo_export.serve.repository import config_text, repository_models, write_models

    artifact, settings, local = CASES[case]
    spec = normalized_spec(engine if artifact == "engine" else tiny_onnx, artifact)
    models = repository_models(spec, settings, settings.name or "tiny", local)
    expected = {key.split("/", 1)[1]: text for key, text in GOLDEN.items() if key.split("/", 1)[0] == case}
    assert sorted(m.name for m in models) == sorted(expected)
    for model in models:
        assert isinstance(model.config, pb2.ModelConfig)
        assert model.config == text_format.Parse(expected[model.name], pb2.ModelConfig()), model.name
    if not local:  # what lands on disk is the message itself (the files are not the point here)
        write_models([replace(m, files={}) for m in models], tmp_path)
        for model in models:
            text = (tmp_path / model.name / "config.pbtxt").read_text()
            assert text == config_text(model.config)
            assert text_format.Parse(text, pb2.ModelConfig()) == model.config
