"""`volo-export triton-repo`: repositories for ONNX and engine artifacts, every config.pbtxt parsed with
Triton's ModelConfig protobuf (tritonclient); the checks beyond the protobuf; one-line errors and nothing
half-written; the vendored preprocessing; client-side errors that need no server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import assert_one_line_error
from volo_export.cli import app

pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="triton-repo needs tritonclient (extra triton)")
from google.protobuf import text_format  # noqa: E402


def parse(path: Path):
    """A config.pbtxt as Triton reads it."""
    return text_format.Parse(path.read_text(), pb2.ModelConfig())


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The one `error:` line of a failed command (exit codes are asserted where each is expected)."""
    return assert_one_line_error(result, result.exit_code)


def no_staging_left(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".volo-export-" in p.name]


def test_onnx_repository_parses_as_triton_reads_it(tmp_path, tiny_onnx):
    from volo_export.artifact import read_artifact_info
    from volo_export.export.metadata import ArtifactInfo

    repo = tmp_path / "repo"
    result = invoke("triton-repo", tiny_onnx, "--out", repo, "--max-batch", "16", "--preferred-batch", "4,16",
                    "--max-queue-delay-us", "500", "--threads", "2", "--instances", "2", "--warmup-batch", "4")
    assert result.exit_code == 0, result.output
    config = parse(repo / "tiny_digits" / "config.pbtxt")
    assert (config.name, config.platform, config.max_batch_size) == ("tiny_digits", "onnxruntime_onnx", 16)
    assert [(t.name, pb2.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == \
        [("input", "TYPE_FP32", [3, 64, 64])]
    assert [(t.name, list(t.dims), t.label_filename) for t in config.output] == [("logits", [10], "labels.txt")]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert (config.instance_group[0].count, config.instance_group[0].kind) == (2, pb2.ModelInstanceGroup.KIND_CPU)
    assert config.version_policy.latest.num_versions == 1
    assert config.model_warmup[0].batch_size == 4 and "input" in config.model_warmup[0].inputs
    assert config.parameters["intra_op_thread_count"].string_value == "2"
    props = {k: v.string_value for k, v in config.parameters.items()}
    assert ArtifactInfo.from_props(props) == read_artifact_info(tiny_onnx)  # clients read preprocessing here
    assert (repo / "tiny_digits" / "1" / "model.onnx").read_bytes() == tiny_onnx.read_bytes()
    assert (repo / "tiny_digits" / "labels.txt").read_text().split("\n")[:10] == [str(i) for i in range(10)]
    assert sorted(p.name for p in repo.iterdir()) == ["tiny_digits"] and no_staging_left(tmp_path)


def test_external_weights_travel_with_the_onnx(tmp_path, tiny_onnx):
    import onnx

    split = tmp_path / "split.onnx"
    onnx.save(onnx.load(str(tiny_onnx)), str(split), save_as_external_data=True, location="split.weights",
              size_threshold=0)
    repo = tmp_path / "repo"
    assert invoke("triton-repo", split, "--out", repo).exit_code == 0
    assert (repo / "split" / "1" / "split.weights").read_bytes() == (tmp_path / "split.weights").read_bytes()
    (tmp_path / "split.weights").unlink()
    missing = invoke("triton-repo", split, "--out", tmp_path / "again")
    assert missing.exit_code == 1 and "its weights file split.weights is not beside it" in error_line(missing)


def test_gpu_repository_with_tensorrt_ep_keeps_the_graphs_precision(tmp_path, tiny_onnx):
    repo = tmp_path / "repo"
    result = invoke("triton-repo", tiny_onnx, "--out", repo, "--device", "gpu", "--gpus", "0,1", "--tensorrt-ep",
                    "--name", "volo", "--version", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["models"][0]["name"] == "volo"
    config = parse(repo / "volo" / "config.pbtxt")
    group = config.instance_group[0]
    assert group.kind == pb2.ModelInstanceGroup.KIND_GPU and list(group.gpus) == [0, 1]
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt"
    assert accelerator.parameters["precision_mode"] == "FP32"
    assert accelerator.parameters["trt_profile_max_shapes"] == "input:32x3x64x64"
    assert (repo / "volo" / "3" / "model.onnx").is_file()


def test_engine_repository_takes_the_profile(tmp_path, tiny_onnx):
    from helpers import write_fake_engine

    engine = tmp_path / "tiny.engine"
    write_fake_engine(tiny_onnx, engine)  # profile max batch 8
    opt = json.loads(engine.with_name("tiny.engine.json").read_text())["profile"]["opt"][0]
    repo = tmp_path / "repo"
    assert invoke("triton-repo", engine, "--out", repo).exit_code == 0
    config = parse(repo / "tiny" / "config.pbtxt")
    assert (config.platform, config.max_batch_size) == ("tensorrt_plan", 8)
    assert config.instance_group[0].kind == pb2.ModelInstanceGroup.KIND_GPU
    assert list(config.dynamic_batching.preferred_batch_size) == sorted({opt, 8})
    assert (repo / "tiny" / "1" / "model.plan").read_bytes() == engine.read_bytes()
    over = invoke("triton-repo", engine, "--out", tmp_path / "over", "--max-batch", "16")
    assert over.exit_code == 2
    assert "--max-batch 16 is above the engine profile of tiny.engine, which takes at most batch 8" in error_line(over)
    cpu = invoke("triton-repo", engine, "--out", tmp_path / "cpu", "--device", "cpu")
    assert cpu.exit_code == 2 and "a TensorRT plan runs on a GPU" in error_line(cpu)
    assert not (tmp_path / "over").exists() and not (tmp_path / "cpu").exists() and no_staging_left(tmp_path)


@pytest.mark.slow  # one more static-batch export
def test_static_batch_onnx_is_served_without_batching(tmp_path, tiny_checkpoint):
    static = tmp_path / "static.onnx"
    assert invoke("onnx", "--model", "volo_tiny_digits", "--checkpoint", tiny_checkpoint, "--batch", "2",
                  "--output", static, "--no-validate").exit_code == 0
    repo = tmp_path / "repo"
    assert invoke("triton-repo", static, "--out", repo).exit_code == 0
    config = parse(repo / "static" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [2, 3, 64, 64] and list(config.output[0].dims) == [2, 10]
    refused = invoke("triton-repo", static, "--out", tmp_path / "image", "--image-ensemble")
    assert refused.exit_code == 2 and "the image model needs a dynamic batch" in error_line(refused)


def test_image_ensemble_runs_the_one_preprocessing(tmp_path, tiny_onnx):
    """The ensemble validates across models, and the vendored preprocessing imports alone (python -I, only
    its own folder on sys.path: numpy and Pillow) and gives what local preprocessing gives."""
    from volo_export.artifact import read_artifact_info
    from volo_export.preprocess import preprocess_paths, sample_photos

    repo = tmp_path / "repo"
    result = invoke("triton-repo", tiny_onnx, "--out", repo, "--image-ensemble", "--max-batch", "8")
    assert result.exit_code == 0, result.output
    assert "Pillow" in result.stderr
    ensemble = parse(repo / "tiny_digits_image" / "config.pbtxt")
    assert ensemble.platform == "ensemble" and ensemble.max_batch_size == 8
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["tiny_digits_preprocess", "tiny_digits"]
    assert ensemble.output[0].label_filename == "labels.txt" and (repo / "tiny_digits_image" / "1").is_dir()
    pre = parse(repo / "tiny_digits_preprocess" / "config.pbtxt")
    assert (pre.backend, pb2.DataType.Name(pre.input[0].data_type)) == ("python", "TYPE_STRING")
    version = repo / "tiny_digits_preprocess" / "1"
    photos = sample_photos()[:3]
    script = ("import json, sys; import numpy as np\n"
              "from volo_export.models.variants import Preprocessing\n"
              "from volo_export.preprocess import decode_image, preprocess_image\n"
              "s = json.load(open('preprocessing.json')); s.pop('dtype')\n"
              "s['mean'], s['std'] = tuple(s['mean']), tuple(s['std'])\n"
              "x = np.stack([preprocess_image(decode_image(open(p, 'rb').read()), Preprocessing(**s)) "
              "for p in sys.argv[2:]])\n"
              "np.save(sys.argv[1], x)\n"
              "import volo_export; assert volo_export.__file__.startswith(sys.path[0]), volo_export.__file__\n"
              "assert not [m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime')]")
    out = tmp_path / "x.npy"
    done = subprocess.run([sys.executable, "-I", "-c", f"import os, sys; sys.path.insert(0, os.getcwd()); "
                           f"exec({script!r})", str(out), *map(str, photos)], cwd=version, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    served = np.load(out)
    np.testing.assert_array_equal(served, preprocess_paths(photos, read_artifact_info(tiny_onnx).preprocessing))


def test_several_artifacts_one_repository_and_force_replaces(tmp_path, tiny_onnx, tiny_fp16_onnx):
    repo = tmp_path / "repo"
    assert invoke("triton-repo", tiny_onnx, tiny_fp16_onnx, "--out", repo).exit_code == 0
    assert sorted(p.name for p in repo.iterdir()) == ["tiny_digits", "tiny_digits_fp16"]
    again = invoke("triton-repo", tiny_onnx, "--out", repo)
    assert again.exit_code == 2 and "exists and is not empty" in error_line(again)
    assert invoke("triton-repo", tiny_onnx, "--out", repo, "--force", "--name", "only").exit_code == 0
    # --force replaces the models it writes, never the repository's others (tests/test_security_files.py)
    assert sorted(p.name for p in repo.iterdir()) == ["only", "tiny_digits", "tiny_digits_fp16"]
    assert no_staging_left(tmp_path)
    clash = invoke("triton-repo", tiny_onnx, tiny_onnx, "--out", tmp_path / "clash")
    assert clash.exit_code == 2 and "two models would be named 'tiny_digits'" in error_line(clash)


@pytest.mark.parametrize("args, code, message", [
    (["--max-batch", "0"], 2, "--max-batch must be >= 1"),
    (["--preferred-batch", "64"], 2, "--preferred-batch [64] above the max batch 32"),
    (["--preferred-batch", "a,b"], 2, "--preferred-batch takes comma-separated integers"),
    (["--tensorrt-ep"], 2, "--tensorrt-ep is ONNX Runtime's TensorRT execution provider: it needs --device gpu"),
    (["--instances", "0"], 2, "--instances must be >= 1"),
    (["--name", "a/b"], 2, "--name 'a/b': use letters, digits"),
])
def test_bad_options_are_one_line_and_write_nothing(args, code, message, tmp_path, tiny_onnx):
    result = invoke("triton-repo", tiny_onnx, "--out", tmp_path / "repo", *args)
    assert result.exit_code == code, result.output
    assert message in error_line(result)
    assert not (tmp_path / "repo").exists() and no_staging_left(tmp_path)


def test_artifacts_that_are_not_classifiers_are_refused(tmp_path, tiny_onnx):
    import onnx

    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(tiny_onnx))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    for artifact, message in ((foreign, "carries no volo-export metadata"), (text, "is not an ONNX model"),
                              (tmp_path / "missing.onnx", "model not found"),
                              (tmp_path / "x.pt", "unsupported artifact type '.pt'")):
        result = invoke("triton-repo", artifact, "--out", tmp_path / "repo")
        assert result.exit_code == 1, result.output
        assert message in error_line(result)
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("text, message", [
    ('name: "a" platform: "onnxruntime_onnx" max_batch_sise: 4', 'has no field named "max_batch_sise"'),
    ('name: "a" platform: "x" input [ { name: "i" data_type: TYPE_FP33 dims: [ 1 ] } ]', "TYPE_FP33"),
    ('name: "a" platform: "x" max_batch_size: 0 dynamic_batching { }', "dynamic_batching needs max_batch_size > 0"),
    ('name: "a" platform: "x" max_batch_size: 4 dynamic_batching { preferred_batch_size: [ 8 ] }',
     "preferred_batch_size [8] > max_batch_size 4"),
    ('platform: "x"', "no name"),
    ('name: "a" platform: "x" input [ { name: "i" data_type: TYPE_FP32 dims: [ 3, 0 ] } ]', "has dims [3, 0]"),
    ('name: "e" platform: "ensemble" max_batch_size: 1 input [ { name: "i" data_type: TYPE_FP32 dims: [ 1 ] } ] '
     'output [ { name: "o" data_type: TYPE_FP32 dims: [ 1 ] } ] ensemble_scheduling { step [ { model_name: "m" '
     'model_version: -1 input_map { key: "x" value: "nothing" } output_map { key: "y" value: "o" } } ] }',
     "reads ['nothing'] before any step produces it"),
])
def test_config_checks_catch_what_triton_would_refuse(text, message):
    from volo_export.errors import InputDataError
    from volo_export.serve.model_config import parse_model_config

    with pytest.raises(InputDataError, match=None) as caught:
        parse_model_config(text, "a/config.pbtxt")
    assert message in str(caught.value) and str(caught.value).startswith("a/config.pbtxt: ")
    assert "\n" not in str(caught.value)


def test_repository_checks_ensembles_against_the_models_they_call(tmp_path, tiny_onnx):
    from volo_export.errors import InputDataError
    from volo_export.serve.model_config import check_repository, read_model_config

    repo = tmp_path / "repo"
    assert invoke("triton-repo", tiny_onnx, "--out", repo, "--image-ensemble").exit_code == 0
    configs = {p.name: read_model_config(p / "config.pbtxt") for p in repo.iterdir()}
    check_repository(configs)
    configs["tiny_digits"].max_batch_size = 4
    with pytest.raises(InputDataError, match="max_batch_size 32 > 'tiny_digits'"):
        check_repository(configs)
    del configs["tiny_digits_preprocess"]
    with pytest.raises(InputDataError, match="calls 'tiny_digits_preprocess', which is not in the repository"):
        check_repository(configs)


def test_server_urls():
    from volo_export.errors import UsageError
    from volo_export.serve.client import ServerUrl

    assert ServerUrl.parse("http://127.0.0.1:9000") == ServerUrl("http", "127.0.0.1:9000")
    assert ServerUrl.parse("grpc://triton.local/") == ServerUrl("grpc", "triton.local:8001")
    for bad in ("127.0.0.1:8000", "https://x:1", "http://", "http://x:1/v2/models"):
        with pytest.raises(UsageError):
            ServerUrl.parse(bad)


def test_client_errors_are_one_line(tmp_path, tiny_onnx):
    from serving import free_ports

    from volo_export.preprocess import sample_photos

    photo = str(sample_photos()[0])
    (port,) = free_ports(1)
    cases = [
        (["predict", photo, "--url", f"http://127.0.0.1:{port}"], 1, f"Triton at http://127.0.0.1:{port}:"),
        (["predict", photo, "--url", f"grpc://127.0.0.1:{port}"], 1, f"Triton at grpc://127.0.0.1:{port}:"),
        (["predict", photo, "--url", "ftp://x"], 2, "give http://HOST:PORT"),
        (["predict", photo, "--url", f"http://127.0.0.1:{port}", "--model", tiny_onnx], 2, "exactly one of --model"),
        (["predict", photo], 2, "exactly one of --model"),
        (["loadtest", "--url", f"grpc://127.0.0.1:{port}", "--model", tiny_onnx, "--requests", "2"], 1,
         f"Triton at grpc://127.0.0.1:{port}:"),
        (["loadtest", "--url", f"grpc://127.0.0.1:{port}", "--model", tiny_onnx, "--concurrency", "0"], 2,
         "--concurrency takes integers >= 1"),
    ]
    for args, code, message in cases:
        result = invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in error_line(result), (args, result.output)


def test_serve_without_the_serve_extra_says_how(tiny_onnx):
    import importlib.util

    if importlib.util.find_spec("pytriton") is not None:
        pytest.skip("nvidia-pytriton is installed here")
    result = invoke("serve", tiny_onnx)
    assert result.exit_code == 1
    assert "pip install 'volo-export[serve]' into its own environment (it pins numpy<2)" in error_line(result)


def test_served_model_reads_the_metadata_back(tmp_path, tiny_onnx):
    from volo_export.serve.client import served_model
    from volo_export.serve.model_config import read_model_config

    repo = tmp_path / "repo"
    assert invoke("triton-repo", tiny_onnx, "--out", repo, "--max-batch", "4").exit_code == 0
    model = served_model(read_model_config(repo / "tiny_digits" / "config.pbtxt"))
    assert (model.name, model.input_name, model.input_type, model.input_dims) == \
        ("tiny_digits", "input", "FP32", (3, 64, 64))
    assert model.batch_range.hi == 4 and model.numpy_dtype == np.float32
