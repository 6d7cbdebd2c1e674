"""`volo-export serve` on a real Triton (loopback), driven by tritonclient and by volo-export's own client
commands: every answer against local inference, the faults of issue 11, no process left behind.

Needs VOLO_EXPORT_SERVE_PYTHON (tests/serving.py); the client side needs tritonclient (extra `triton`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from serving import ServeProcess, free_ports, run_cli, serve_python, session_members
from volo_export.cli import app

pytestmark = pytest.mark.serve
serve_python(module=True)
grpcclient = pytest.importorskip("tritonclient.grpc", reason="the serve tests' client needs tritonclient (extra triton)")
httpclient = pytest.importorskip("tritonclient.http", reason="the serve tests' client needs tritonclient (extra triton)")
from tritonclient.utils import InferenceServerException  # noqa: E402

MAX_BATCH = 8


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) >= 1 and lines[-1].startswith("error: "), stderr
    assert "Traceback" not in stderr, stderr
    return lines[-1]


@pytest.fixture(scope="module")
def server(tiny_onnx):
    """One server for the module: the tiny ONNX, max batch 8, dynamic batching."""
    serve_python()
    served = ServeProcess(tiny_onnx, "--max-batch", str(MAX_BATCH)).start()
    try:
        served.wait_ready("tiny_digits_image")
        yield served
        assert served.stop(signal.SIGTERM) == 0, served.err
        assert "stopped" in served.out and served.http_url in served.out and served.grpc_url in served.out, served.out
    finally:
        assert served.kill_all() == [], "serve left processes running after SIGTERM"


@pytest.fixture(scope="module")
def local(tiny_onnx):
    from volo_export.runtime import open_runner

    return open_runner(tiny_onnx)


@pytest.fixture(scope="module")
def photos():
    from volo_export.preprocess import sample_photos

    return sample_photos()[:5]


def with_metadata(source: Path, target: Path, **changes) -> None:
    """A copy of the ONNX `source` whose volo-export metadata has `changes` (none: no metadata at all)."""
    import dataclasses

    import onnx

    from volo_export.export.metadata import read_info, write_info

    model = onnx.load(str(source))
    if not changes:
        del model.metadata_props[:]
    else:
        write_info(model, dataclasses.replace(read_info(model), **changes))
    onnx.save(model, str(target))


def tensor_input(module, x: np.ndarray, name: str = "input", dtype: str = "FP32"):
    tensor = module.InferInput(name, list(x.shape), dtype)
    tensor.set_data_from_numpy(x)
    return tensor


def test_concurrent_requests_each_get_their_own_answer(server, local):
    x = np.random.default_rng(7).standard_normal((48, 3, 64, 64), dtype=np.float32)
    expected = local(x)

    def one(i):
        module, url = (grpcclient, f"127.0.0.1:{server.grpc}") if i % 2 else (httpclient, f"127.0.0.1:{server.http}")
        client = module.InferenceServerClient(url)
        try:
            result = client.infer("tiny_digits", [tensor_input(module, x[i:i + 1])], request_id=str(i))
        finally:
            client.close()
        response = result.get_response()
        return (response["id"] if isinstance(response, dict) else response.id), result.as_numpy("logits")[0]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(len(x))))
    for i, (answer_id, logits) in enumerate(answers):
        assert answer_id == str(i)
        np.testing.assert_allclose(logits, expected[i], rtol=1e-5, atol=1e-5)


def test_encoded_images_go_through_the_artifacts_preprocessing(server, local, photos):
    from volo_export.preprocess import preprocess_paths

    blobs = np.array([[p.read_bytes()] for p in photos], dtype=np.object_)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    try:
        images = tensor_input(grpcclient, blobs, "image", "BYTES")
        logits = client.infer("tiny_digits_image", [images]).as_numpy("logits")
        top = client.infer("tiny_digits_image", [images],
                           outputs=[grpcclient.InferRequestedOutput("logits", class_count=2)]).as_numpy("logits")
    finally:
        client.close()
    expected = local(preprocess_paths(photos, local.info.preprocessing))
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    for row, want in zip(top, np.argsort(-expected, axis=1)[:, :2], strict=True):  # "score:index:label", labels '0'..'9'
        assert [entry.decode().split(":")[1:] for entry in row] == [[str(c), str(c)] for c in want]


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_predict_url_prints_what_local_predict_prints(server, tiny_onnx, photos, scheme):
    url = server.http_url if scheme == "http" else server.grpc_url
    args = ["predict", *map(str, photos), "--top-k", "3", "--json"]
    served = CliRunner().invoke(app, [*args, "--url", url])
    here = CliRunner().invoke(app, [*args, "--model", str(tiny_onnx)])
    assert served.exit_code == 0 and here.exit_code == 0, served.output + here.output
    served_json, local_json = json.loads(served.stdout), json.loads(here.stdout)
    assert served_json["runtime"].startswith("Triton 2.") and url in served_json["runtime"]
    for a, b in zip(served_json["predictions"], local_json["predictions"], strict=True):
        assert a["file"] == b["file"]
        assert [c["index"] for c in a["top"]] == [c["index"] for c in b["top"]]
        assert [c["label"] for c in a["top"]] == [c["label"] for c in b["top"]]
        np.testing.assert_allclose([c["probability"] for c in a["top"]], [c["probability"] for c in b["top"]],
                                   atol=1e-6)


def test_loadtest_checks_every_answer_against_local_inference(server, tiny_onnx, tmp_path):
    report = tmp_path / "load.json"
    result = CliRunner().invoke(app, ["loadtest", "--url", server.grpc_url, "--model", str(tiny_onnx),
                                      "--concurrency", "1,8", "--requests", "40", "--rounds", "2", "--json",
                                      "--report", str(report)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert [r["concurrency"] for r in rows] == [1, 8]
    for r in rows:
        assert r["requests"] == r["ok"] == 40 and r["wrong"] == r["errors"] == 0
        assert r["served"]["p50_ms"] <= r["served"]["p99_ms"] and r["in_process"]["batch_size"] == r["concurrency"]
        assert r["max_rel_error"] <= 1e-5
    saved = json.loads(report.read_text())
    assert saved["passed"] and len(saved["results"][0]["served"]["latencies_ms"]) == 40


def test_loadtest_reports_a_failed_in_process_baseline_and_goes_on(server, tiny_onnx, monkeypatch):
    from volo_export.serve import loadtest
    from volo_export.timing import measure

    def out_of_memory(x):
        raise MemoryError(f"cannot allocate batch {len(x)}")

    monkeypatch.setattr(loadtest, "measure", lambda runners, *args, **kw: measure(
        {name: out_of_memory for name in runners}, *args, **kw))
    result = CliRunner().invoke(app, ["loadtest", "--url", server.grpc_url, "--model", str(tiny_onnx),
                                      "--concurrency", "2", "--requests", "8", "--rounds", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    row = json.loads(result.stdout)["results"][0]
    assert row["ok"] == 8 and row["in_process"] is None and row["ratio"] is None
    assert any("in-process baseline at batch 2 failed" in p and "cannot allocate batch 2" in p
               for p in row["problems"]), row["problems"]


def test_loadtest_refuses_an_artifact_that_is_not_the_served_one(server, tiny_onnx, tmp_path):
    other = tmp_path / "other.onnx"  # the same graph, said to come from another checkpoint
    with_metadata(tiny_onnx, other, checkpoint_sha256="0" * 64)
    result = CliRunner().invoke(app, ["loadtest", "--url", server.http_url, "--model", str(other), "--requests", "4"])
    assert result.exit_code == 2, result.output
    assert "is not the artifact served as 'tiny_digits' (different checkpoint_sha256)" in one_error_line(result.stderr)


def test_bad_requests_get_errors_and_the_server_keeps_serving(server, local):
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64), dtype=np.float32)
    try:
        for bad, dtype, why in ((np.zeros((1, 3, 65, 64), np.float32), "FP32", "unexpected shape"),
                                (np.zeros((1, 3, 64, 64), np.float64), "FP64", "data-type is 'FP64'"),
                                (np.zeros((MAX_BATCH + 1, 3, 64, 64), np.float32), "FP32", "batch-size must be <=")):
            with pytest.raises(InferenceServerException, match=why):
                client.infer("tiny_digits", [tensor_input(grpcclient, bad, dtype=dtype)])
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.infer("no_such_model", [tensor_input(grpcclient, x)])

        def image(blob):  # a bad and a good image in flight together: only the bad one fails
            c = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
            try:
                return c.infer("tiny_digits_image", [tensor_input(grpcclient, np.array([[blob]], np.object_), "image",
                                                                  "BYTES")]).as_numpy("logits")
            except InferenceServerException as e:
                return str(e)
            finally:
                c.close()

        from volo_export.preprocess import sample_photos

        good = sample_photos()[0].read_bytes()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(image, [b"not an image", good, b"\x89PNG broken", good]))
        assert "cannot read image" in answers[0] and "cannot read image" in answers[2], answers
        assert isinstance(answers[1], np.ndarray) and isinstance(answers[3], np.ndarray), answers
        np.testing.assert_allclose(client.infer("tiny_digits", [tensor_input(grpcclient, x)]).as_numpy("logits"),
                                   local(x), rtol=1e-5, atol=1e-5)
    finally:
        client.close()


def test_clients_that_disconnect_mid_request_do_not_wedge_the_server(server, local):
    body = json.dumps({"inputs": [{"name": "input", "shape": [MAX_BATCH, 3, 64, 64], "datatype": "FP32",
                                   "data": [0.5] * (MAX_BATCH * 3 * 64 * 64)}]}).encode()
    head = (f"POST /v2/models/tiny_digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    for cut in (len(body) // 2, len(body)):  # hang up half-way through the upload, or before the answer
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.http)) as s:
                s.sendall(head + body[:cut])
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
    x = np.random.default_rng(5).standard_normal((MAX_BATCH, 3, 64, 64), dtype=np.float32)
    try:
        gave_up = 0
        for _ in range(5):  # gRPC clients that give up before the answer (100 us; one may still be answered)
            try:
                client.infer("tiny_digits", [tensor_input(grpcclient, x)], client_timeout=0.0001)
            except InferenceServerException as e:
                assert "Deadline" in str(e), e
                gave_up += 1
        assert gave_up >= 3
        t0 = time.monotonic()
        answer = client.infer("tiny_digits", [tensor_input(grpcclient, x)], client_timeout=30).as_numpy("logits")
    finally:
        client.close()
    assert time.monotonic() - t0 < 5  # a batch-8 tiny inference takes milliseconds; 30 s is the client's deadline
    np.testing.assert_allclose(answer, local(x), rtol=1e-5, atol=1e-5)


def test_a_second_serve_on_a_busy_port_fails_with_one_line(server, tiny_onnx):
    grpc_port, metrics_port = free_ports(2)
    t0 = time.monotonic()
    result = run_cli("serve", str(tiny_onnx), "--host", "127.0.0.1", "--port", str(server.http),
                     "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port), timeout=60)
    assert result.returncode == 2, result.stderr
    assert one_error_line(result.stderr) == (f"error: port {server.http} (http) on 127.0.0.1 is already in use; "
                                             "choose another --port")
    assert time.monotonic() - t0 < 5  # a batch-8 tiny inference takes milliseconds; 30 s is the client's deadline
    with socket.create_connection(("127.0.0.1", server.http)):  # the first server still listens
        pass


def test_serve_refuses_bad_input_before_starting(tmp_path, tiny_onnx):
    from helpers import write_fake_engine

    engine = tmp_path / "tiny.engine"
    write_fake_engine(tiny_onnx, engine)  # profile 1..8
    foreign = tmp_path / "foreign.onnx"
    with_metadata(tiny_onnx, foreign)
    ports = [str(p) for p in free_ports()]
    cases = [
        (["serve", str(foreign)], 1, "carries no volo-export metadata"),
        (["serve", str(engine), "--max-batch", "16"], 2,
         "--max-batch 16 is above the engine profile of tiny.engine, which takes at most batch 8"),
        (["serve", str(tiny_onnx), "--port", ports[0], "--grpc-port", ports[0]], 2, "must differ"),
        (["serve", str(tmp_path / "missing.onnx")], 1, "model not found"),
    ]
    for args, code, message in cases:
        result = run_cli(*args, timeout=60)
        assert result.returncode == code, (args, result.stderr)
        assert message in one_error_line(result.stderr), (args, result.stderr)


def test_a_model_that_fails_to_load_is_one_line_and_leaves_nothing(tmp_path, tiny_onnx):
    import onnx

    broken = tmp_path / "broken.onnx"  # volo-export metadata and I/O, but a node ONNX Runtime does not know
    model = onnx.load(str(tiny_onnx))
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save(model, str(broken))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    http, grpc, metrics = (str(p) for p in free_ports())
    result = run_cli("serve", str(broken), "--host", "127.0.0.1", "--port", http, "--grpc-port", grpc,
                     "--metrics-port", metrics, env={**os.environ, "TMPDIR": str(scratch)})
    assert result.returncode == 1, result.stderr
    line = one_error_line(result.stderr)
    assert line.startswith("error: tritonserver exited with code 1 while starting: "), line
    assert "ONNX Runtime cannot load" in line and "No Op registered for NoSuchOp" in line and '\\"' not in line
    assert list(scratch.iterdir()) == []


@pytest.mark.slow  # a real server started and signalled (13 s)
def test_sigint_stops_cleanly_and_sigkill_loses_no_artifact(tmp_path, tiny_onnx):
    artifact = tmp_path / "tiny.onnx"
    shutil.copyfile(tiny_onnx, artifact)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}  # the server's work folder lands here
    served = ServeProcess(artifact, env=env).start()
    try:
        served.wait_ready("tiny_image")
        assert served.stop(signal.SIGINT) == 0, served.err
        assert session_members(served.proc.pid) == [], "SIGINT left processes behind"
        assert list(scratch.iterdir()) == [] and not list(Path("/dev/shm").glob(f"volo-export-{served.proc.pid}-*"))
    finally:
        served.kill_all()
    killed = ServeProcess(artifact, env=env).start()
    try:
        killed.wait_ready("tiny_image")
        killed.proc.kill()  # SIGKILL: no handler runs; tritonserver gets SIGTERM from the kernel (PDEATHSIG)
        killed.proc.wait()
        deadline = time.monotonic() + 30
        while session_members(killed.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_members(killed.proc.pid) == [], "tritonserver outlived a SIGKILLed serve"
    finally:
        killed.kill_all()
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == digest
    restarted = ServeProcess(artifact, env=env).start()  # starts fine, and removes the dead one's work folder
    try:
        restarted.wait_ready("tiny_image")
        assert len(list(scratch.iterdir())) == 1
        server = next(pid for pid in session_members(restarted.proc.pid)
                      if Path(f"/proc/{pid}/exe").resolve().name == "tritonserver")
        os.kill(server, signal.SIGKILL)  # the server dies under serve: serve says so and cleans up
        assert restarted.proc.wait(timeout=60) == 1
        restarted.read_output()
        assert one_error_line(restarted.err) == "error: tritonserver exited by itself with code -9"
        assert session_members(restarted.proc.pid) == []
    finally:
        restarted.kill_all()
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_d1_served_answers_equal_local_inference(d1_onnx_with_checkpoint):
    d1, _ = d1_onnx_with_checkpoint
    served = ServeProcess(d1, "--max-batch", "4").start()
    try:
        served.wait_ready("volo_d1_224_image", timeout=300)
        result = CliRunner().invoke(app, ["loadtest", "--url", served.grpc_url, "--model", str(d1), "--concurrency",
                                          "4", "--requests", "8", "--rounds", "1", "--no-in-process", "--json"])
        assert result.exit_code == 0, result.output
        row = json.loads(result.stdout)["results"][0]
        assert row["ok"] == 8 and row["max_rel_error"] <= 1e-5
        assert served.stop() == 0
    finally:
        served.kill_all()

