"""`volo-export serve`: an artifact on a real Triton Inference Server here, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from volo_export.cli.console import note, result_line, user_errors, warning
from volo_export.cli.options import BatchingOptions, bundles
from volo_export.cli.progress import progress


@contextlib.contextmanager
def _signals(handler, *signums: int):
    """`signums` go to `handler` inside the block (set explicitly: a server started in the background of
    a script inherits an ignored SIGINT), and back to what they were after it."""
    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@bundles(batching=BatchingOptions)
def command(
    artifact: Annotated[Path, typer.Argument(help="An .onnx, or an .engine with its .engine.json sidecar.",
                                             show_default=False)],
    host: Annotated[str, typer.Option(help="Address to listen on for HTTP, gRPC and metrics (default this machine "
                                      "only; 0.0.0.0: every interface, unauthenticated, with a warning; see "
                                      "SECURITY.md).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (KServe v2 REST).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (KServe v2).")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port.")] = 8002,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for the models to load.")] = 300.0,
    triton_log: Annotated[Optional[Path], typer.Option(
        help="Keep Triton's own log in this file (default: a temporary file, removed when it stops).")] = None,
    batching: BatchingOptions = None,
) -> None:
    """Serve an artifact with NVIDIA Triton Inference Server (HTTP/gRPC, dynamic batching, metrics)."""
    with user_errors():
        from volo_export.errors import ServingError
        from volo_export.serve.server import ServeRequest, start_server
        from volo_export.serve.tritonserver import Endpoints

        from volo_export.io import distinct_outputs

        distinct_outputs({"ARTIFACT": artifact}, {"--triton-log": triton_log})
        request = ServeRequest(artifact=artifact, endpoints=Endpoints(host, port, grpc_port, metrics_port),
                               repository=batching.settings(image_model=True), ready_timeout_s=ready_timeout,
                               log_file=triton_log)
        stop = threading.Event()
        with contextlib.ExitStack() as serving:
            # While starting, Ctrl-C (KeyboardInterrupt) or SIGTERM (the CLI's Terminated) abandons the start
            # (exit 130 / 143); once serving, either stops the server cleanly (exit 0).
            with _signals(signal.default_int_handler, signal.SIGINT), progress() as shown:
                running = serving.enter_context(start_server(request, shown))
            with _signals(lambda signum, frame: stop.set(), signal.SIGINT, signal.SIGTERM):
                _show(running)
                code = running.wait(stop)
                error = running.process.first_error() if code is not None else ""  # before its log is removed
                if code is None:
                    result_line("stopping")
        if code is not None:
            raise ServingError(f"tritonserver exited by itself with code {code}" + (f": {error}" if error else ""))
        result_line("stopped")


def _show(running) -> None:
    """Where it listens and what it serves, once everything is ready."""
    network, image = running.network, running.image_model
    config = network["config"]
    tensor = config.input[0]
    batching = (f"dynamic batching (max queue delay {config.dynamic_batching.max_queue_delay_microseconds} us)"
                if config.HasField("dynamic_batching") else "no dynamic batching")
    result_line(f"Triton {running.triton_version} ready in {running.startup_s:.1f} s "
                f"(the tritonserver of the nvidia-pytriton wheel)")
    for what, url in running.endpoints.urls().items():
        result_line(f"  {what:<8} {url}")
    result_line(f"  model    {network['name']}: tensors {tensor.name} {list(tensor.dims)} -> logits, max batch "
                f"{config.max_batch_size}, {batching}, {config.instance_group[0].count} instance(s)")
    if image:
        result_line(f"  model    {image['name']}: encoded images (BYTES) -> logits, the artifact's preprocessing")
    for line in running.notes:
        note(line)
    if running.endpoints.exposed:
        from volo_export.serve.tritonserver import EXPOSED_WARNING

        warning(EXPOSED_WARNING.format(host=running.endpoints.host))
    result_line("Ctrl-C or SIGTERM stops it")
