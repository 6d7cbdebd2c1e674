"""The file, network and signal boundaries of SECURITY.md (issue 18), each row with the real fault: external
data that leaves the model's folder (`..`, an absolute path, a symlink out, a named pipe) for every reader
(ours, ONNX Runtime, OpenVINO, TensorRT-RTX's parser, the Triton repository copy); model names; outputs that
would replace inputs; `triton-repo --force` and external-data layout; signals during a real TensorRT-RTX
build; `serve`'s listening sockets read from /proc/net/tcp*; smaller ones (named pipes as inputs, a closed
stdout, caches, `--compute-capability ''`). Runs that could hang on a named pipe run in a child with a
timeout, so a hang fails instead of blocking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import assert_one_line_error, files_in
from volo_export.cli import app

CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'volo-export'; from volo_export.cli import main; main()"]
HANG_S = 120  # a command that meets a named pipe answers in seconds; one that opens it waits forever


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


class Child:
    """A finished `volo-export` child process, shaped like a CliRunner result for assert_one_line_error."""

    def __init__(self, args, timeout: float = HANG_S, env: dict | None = None):
        proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              env={**(os.environ if env is None else env), "PYTHONPATH": os.pathsep.join(sys.path)})
        self.exit_code, self.stdout, self.output = proc.returncode, proc.stdout, proc.stderr + proc.stdout


def split_weights(tiny_onnx: Path, model: Path, location: str, data_file: Path | None = None) -> Path:
    """A copy of the tiny export at `model` whose largest initializer is external data at `location` (as
    the graph spells it); its bytes go to `data_file` (so a reader that follows the location gets a model
    that works)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    proto = onnx.load(str(tiny_onnx))
    tensor = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    data = tensor.raw_data
    set_external_data(tensor, location=location, offset=0, length=len(data))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    model.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(model))
    if data_file is not None:
        data_file.parent.mkdir(parents=True, exist_ok=True)
        data_file.write_bytes(data)
    return model


def hostile_model(tiny_onnx: Path, root: Path, layout: str) -> Path:
    """root/model/m.onnx whose external data is, by `layout`: `..` to root/outside/w.bin, the absolute path
    of that file, a symlink in the model's folder to it, or a named pipe in the model's folder."""
    outside, folder = root / "outside" / "w.bin", root / "model"
    if layout == "dotdot":
        return split_weights(tiny_onnx, folder / "m.onnx", "../outside/w.bin", outside)
    if layout == "absolute":
        return split_weights(tiny_onnx, folder / "m.onnx", str(outside), outside)
    model = split_weights(tiny_onnx, folder / "m.onnx", "w.bin", outside)
    if layout == "symlink":
        (folder / "w.bin").symlink_to(outside)
    else:
        os.mkfifo(folder / "w.bin")
    return model


LAYOUTS = {"dotdot": "is a '..' component", "absolute": "is an absolute path",
           "symlink": "leads outside the model's folder", "fifo": "is a named pipe, not a regular file"}


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------ external data: one policy, every reader


READERS = {
    "triton-repo": lambda m, out, photo: ["triton-repo", m, "--out", out / "repo"],
    "check": lambda m, out, photo: ["check", m, "--real"],  # TensorRT-RTX's parser
    "engine": lambda m, out, photo: ["engine", m, "-o", out / "m.engine", "--runtime", "rtx", "--no-check"],
    "onnxruntime": lambda m, out, photo: ["predict", photo, "--model", m],
    "openvino": lambda m, out, photo: ["predict", photo, "--model", m, "--runtime", "openvino"],
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_external_data_outside_the_models_folder_is_refused_by_every_reader(reader, layout, tmp_path, tiny_onnx,
                                                                            photo):
    """Before: triton-repo copied the outside file into the repository, TensorRT-RTX's parser built its
    bytes into the engine, and a named pipe made `check` and `engine` hang."""
    pytest.importorskip("tensorrt_rtx") if reader in ("check", "engine") else None
    pytest.importorskip("openvino") if reader == "openvino" else None
    model = hostile_model(tiny_onnx, tmp_path / "in", layout)
    out = tmp_path / "out"
    out.mkdir()
    result = Child(READERS[reader](model, out, photo))
    assert_one_line_error(result, 1, "external data", LAYOUTS[layout], folder=out)


def test_a_symlink_that_stays_inside_the_folder_is_fine(tmp_path, tiny_onnx):
    model = split_weights(tiny_onnx, tmp_path / "model" / "m.onnx", "w.bin", tmp_path / "model" / "data" / "w.bin")
    (tmp_path / "model" / "w.bin").symlink_to("data/w.bin")
    assert invoke("triton-repo", model, "--out", tmp_path / "repo").exit_code == 0
    assert (tmp_path / "repo" / "m" / "1" / "w.bin").read_bytes() == (tmp_path / "model/data/w.bin").read_bytes()
    assert not (tmp_path / "repo" / "m" / "1" / "w.bin").is_symlink()


# ------------------------------------------------------------------ triton-repo: names, layout, --force


@pytest.mark.parametrize("name", ["..", ".", ".hidden"])
def test_model_names_are_identifiers(name, tmp_path, tiny_onnx):
    """Before: `--name ..` wrote config.pbtxt, labels.txt and 1/model.onnx into the repository's parent."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "config.pbtxt").write_text("the user's own")
    result = invoke("triton-repo", tiny_onnx, "--out", project / "repo", "--name", name)
    assert_one_line_error(result, 2, f"--name {name!r}: use letters, digits", folder=project,
                          before={"config.pbtxt"})


def test_external_data_keeps_its_layout_and_cannot_replace_the_model(tmp_path, tiny_onnx):
    """Before: weights/w.bin was flattened to 1/w.bin (Triton could not load the model) and a weights file
    named model.onnx replaced the graph."""
    model = split_weights(tiny_onnx, tmp_path / "m" / "m.onnx", "weights/w.bin", tmp_path / "m" / "weights" / "w.bin")
    repo = tmp_path / "repo"
    assert invoke("triton-repo", model, "--out", repo).exit_code == 0
    assert (repo / "m" / "1" / "weights" / "w.bin").read_bytes() == (tmp_path / "m/weights/w.bin").read_bytes()
    assert (repo / "m" / "1" / "model.onnx").read_bytes() == model.read_bytes()
    clash = split_weights(tiny_onnx, tmp_path / "c" / "c.onnx", "model.onnx", tmp_path / "c" / "model.onnx")
    result = invoke("triton-repo", clash, "--out", tmp_path / "repo2")
    assert_one_line_error(result, 1, "'model.onnx' would take the place of the model file")
    assert not (tmp_path / "repo2").exists()


def test_force_replaces_only_the_models_it_writes_and_never_a_source(tmp_path, tiny_onnx):
    """Before: `triton-repo models/tiny.onnx --out models --force` deleted models/other_model/ and the source."""
    models = tmp_path / "models"
    (models / "other_model" / "1").mkdir(parents=True)
    (models / "other_model" / "config.pbtxt").write_text('name: "other_model"')
    source = models / "tiny.onnx"
    source.write_bytes(tiny_onnx.read_bytes())
    (models / "tiny" / "1").mkdir(parents=True)
    (models / "tiny" / "stale.txt").write_text("from the previous version of this model")
    result = invoke("triton-repo", source, "--out", models, "--force", "--image-ensemble")
    assert result.exit_code == 0, result.output
    assert (models / "other_model" / "config.pbtxt").read_text() == 'name: "other_model"'
    assert source.read_bytes() == tiny_onnx.read_bytes()
    assert sorted(p.name for p in (models / "tiny").iterdir()) == ["1", "config.pbtxt", "labels.txt"]
    assert sorted(p.name for p in models.iterdir()) == ["other_model", "tiny", "tiny.onnx", "tiny_image",
                                                        "tiny_preprocess"]
    assert not [p for p in tmp_path.iterdir() if ".volo-export-" in p.name]
    inside = models / "tiny" / "1" / "model.onnx"  # the repository's own copy as the source of --force
    result = invoke("triton-repo", inside, "--out", models, "--force", "--name", "tiny")
    assert_one_line_error(result, 2, "which holds the source")
    assert inside.read_bytes() == tiny_onnx.read_bytes()


def test_a_config_error_names_the_model_not_a_vanished_staging_folder(tmp_path, tiny_onnx, monkeypatch):
    import volo_export.serve.repository as repository

    monkeypatch.setattr(repository, "preferred_batches", lambda spec, settings, max_batch: (max_batch + 1,))
    result = invoke("triton-repo", tiny_onnx, "--out", tmp_path / "repo")
    line = assert_one_line_error(result, 1, "tiny_digits/config.pbtxt: preferred_batch_size [33]")
    assert ".volo-export-" not in line


def test_an_engine_whose_sidecar_disagrees_with_its_profile_is_refused(tmp_path, tiny_onnx):
    from helpers import write_fake_engine

    engine = write_fake_engine(tiny_onnx, tmp_path / "tiny.engine")
    sidecar = tmp_path / "tiny.engine.json"
    data = json.loads(sidecar.read_text())
    data["metadata"]["volo_export.image_size"] = "32"
    sidecar.write_text(json.dumps(data))
    result = invoke("triton-repo", engine, "--out", tmp_path / "repo")
    assert_one_line_error(result, 1, "sidecar of tiny.engine: its input has shape (1, 3, 64, 64)", "(image_size 32)")
    assert not (tmp_path / "repo").exists()


def test_the_tensorrt_ep_cache_is_in_the_user_cache_not_a_shared_tmp(tmp_path, tiny_onnx, user_cache):
    from google.protobuf import text_format
    pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")

    assert invoke("triton-repo", tiny_onnx, "--out", tmp_path / "repo", "--device", "gpu", "--tensorrt-ep",
                  "--name", "m").exit_code == 0
    config = text_format.Parse((tmp_path / "repo" / "m" / "config.pbtxt").read_text(), pb2.ModelConfig())
    parameters = config.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters
    assert parameters["trt_engine_cache_path"] == str(user_cache / "volo-export" / "tensorrt-ep")


# ------------------------------------------------------------------ outputs never replace inputs


def test_outputs_never_replace_inputs_or_each_other(tmp_path, tiny_onnx, photo):
    """Before: --calib-cache X.onnx replaced the input model with calibration JSON, --report equal to the
    output lost one of them, and preprocess --out IMAGE overwrote the image."""
    source = tmp_path / "tiny.onnx"
    source.write_bytes(tiny_onnx.read_bytes())
    image = tmp_path / "photo.png"
    image.write_bytes(photo.read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    rows = [
        (["quantize", source, "-o", tmp_path / "q.onnx", "--calib-data", "random", "--calib-cache", source],
         "--calib-cache", "must differ from input MODEL"),
        (["onnx", "--model", "volo_tiny_digits", "-o", tmp_path / "m.onnx", "--report", tmp_path / "m.onnx"],
         "--report", "must differ from output --output"),
        (["preprocess", image, "--out", image, "--model-name", "volo_tiny_digits"], "--out",
         "must differ from input IMAGES"),
        (["engine", source, "-o", tmp_path / "e.engine", "--timing-cache", tmp_path / "e.engine.json",
          "--runtime", "rtx"], "--timing-cache", "must differ from output sidecar"),
        (["validate", "--model", source, "--report", source], "--report", "must differ from input --model"),
        (["loadtest", "--url", "http://127.0.0.1:9", "--model", source, "--report", source], "--report",
         "must differ from input --model"),
    ]
    for args, option, message in rows:
        result = invoke(*args)
        assert_one_line_error(result, 2, option, message)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ------------------------------------------------------------------ signals during a real TensorRT-RTX build


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_real_engine_build_stops_it_and_writes_nothing(sig, code, tmp_path, tiny_onnx):
    """Before: TensorRT-RTX's logger callback swallowed the exception the signal raised, and the build went on
    to write engine + sidecar with exit 0."""
    pytest.importorskip("tensorrt_rtx")
    out = tmp_path / "out"
    out.mkdir()
    child = subprocess.Popen([*CLI, "engine", str(tiny_onnx), "-o", str(out / "t.engine"), "--runtime", "rtx"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in child.stdout:
        seen.append(line)
        if "building the engine" in line:
            break
    child.send_signal(sig)
    output = "".join(seen) + child.communicate(timeout=300)[0]
    assert child.returncode == code, output
    assert "Traceback" not in output and "Exception caught" not in output, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("error:") and "no output was written" in last, output
    assert files_in(out) == set()


def test_signals_are_delivered_after_the_deferred_block():
    from volo_export.interrupt import deferred_signals

    with pytest.raises(KeyboardInterrupt):
        with deferred_signals() as pending:
            signal.raise_signal(signal.SIGINT)
            assert pending.pending  # recorded, not raised, inside the block
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_signals() as pending:  # an ignored signal stays ignored
            signal.raise_signal(signal.SIGINT)
        assert not pending.pending
    finally:
        signal.signal(signal.SIGINT, previous)


# ------------------------------------------------------------------ smaller ones


@pytest.mark.parametrize("what", ["image", "checkpoint", "model"])
def test_a_named_pipe_as_input_is_named_so_and_never_opened(what, tmp_path, tiny_onnx, photo):
    fifo = tmp_path / ("in.png" if what == "image" else "in.pth" if what == "checkpoint" else "in.onnx")
    os.mkfifo(fifo)
    args = {"image": ["predict", fifo, "--model", tiny_onnx],
            "checkpoint": ["onnx", "--model", "volo_tiny_digits", "--checkpoint", fifo, "-o", tmp_path / "m.onnx"],
            "model": ["predict", photo, "--model", fifo]}[what]
    result = Child(args)
    assert_one_line_error(result, 1, f"{what} {fifo} is a named pipe, not a file")


def test_a_reader_that_leaves_early_is_no_failure(tmp_path):
    """Before: `volo-export models | true` exited 1 without a word."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        proc = subprocess.run([*CLI, "models"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=HANG_S,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    finally:
        os.close(write)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_an_empty_compute_capability_is_an_error_not_the_default(tmp_path, tiny_onnx):
    result = invoke("engine", tiny_onnx, "-o", tmp_path / "t.engine", "--runtime", "rtx", "--compute-capability", "")
    assert_one_line_error(result, 2, "--compute-capability '' names no GPU")
    assert files_in(tmp_path) == set()


def test_a_missing_home_is_not_created(tmp_path, tiny_onnx, photo):
    home = tmp_path / "no-such-home"
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    for runtime in ("auto", "openvino"):
        result = Child(["predict", photo, "--model", tiny_onnx, "--runtime", runtime], env={**env, "HOME": str(home)})
        assert result.exit_code == 0, result.output
    assert not home.exists()


# ------------------------------------------------------------------ serve: this machine only, unless asked


def listening(ports: set[int]) -> dict[int, set[str]]:
    """{port: local addresses} of the LISTEN sockets on `ports`, from /proc/net/tcp and tcp6."""
    found: dict[int, set[str]] = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) in ports:
                found.setdefault(int(port, 16), set()).add(_address(address, width))
    return found


def _address(hex_address: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc prints each 32-bit word in host (little-endian) order
    address = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
    return str(getattr(address, "ipv4_mapped", None) or address)  # gRPC listens on ::ffff:127.0.0.1


def test_serve_listens_on_this_machine_only_by_default(tiny_onnx):
    """Before: HTTP and metrics on 0.0.0.0 and gRPC on every interface, unauthenticated, by default."""
    from serving import ServeProcess

    server = ServeProcess(tiny_onnx)
    server.args[server.args.index("--host"):server.args.index("--host") + 2] = []  # the default host
    server.start()
    try:
        server.wait_ready("tiny_digits")
        sockets = listening({server.http, server.grpc, server.metrics})
    finally:
        code = server.stop()
        server.kill_all()  # and its output files
    assert sockets == {port: {"127.0.0.1"} for port in (server.http, server.grpc, server.metrics)}, sockets
    assert code == 0 and "warning:" not in server.err


def test_exposing_the_server_is_asked_for_and_warned_about():
    from volo_export.serve.tritonserver import EXPOSED_WARNING, Endpoints

    assert Endpoints().host == "127.0.0.1" and not Endpoints().exposed and not Endpoints("::1").exposed
    assert Endpoints("0.0.0.0").exposed and Endpoints("192.168.1.5").exposed
    assert "no authentication" in EXPOSED_WARNING
