"""Use case `serve`: one artifact on a real Triton Inference Server on this machine.

The repository is the one `triton-repo` writes (same generator, same image ensemble and preprocessing
model), with the network model run by volo-export's own runner in Triton's Python backend
(`repository.network_config(local=True)`); the server is the wheel's `tritonserver` (`tritonserver`).
Everything it needs lives in a private work folder (`.serve.volo-export-PID-START.XXXX` in the temporary
folder) that is removed when it stops, or by the next `serve` after a SIGKILL; the artifact is only read,
so killing the server cannot damage it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from volo_export.io import make_staging, remove_stale_staging
from volo_export.progress import SILENT, Progress
from volo_export.serve.repository import (RepoSettings, model_name, read_artifact_spec, repository_models,
                                         write_models)
from volo_export.serve.tritonserver import (Endpoints, TritonProcess, check_ports, check_serving_python,
                                            find_triton)


@dataclass(frozen=True)
class ServeRequest:
    """What to serve and where. `repository.image_model` adds the NAME_image ensemble for encoded images."""

    artifact: Path
    endpoints: Endpoints = Endpoints()
    repository: RepoSettings = RepoSettings(image_model=True)
    ready_timeout_s: float = 300.0
    log_file: Path | None = None


@dataclass
class RunningServer:
    """A started, ready server: where it listens and what it serves."""

    process: TritonProcess
    endpoints: Endpoints
    models: list[dict]  # {"name", "role", "config"}: the ModelConfig of each model
    startup_s: float
    triton_version: str
    notes: list[str] = field(default_factory=list)

    @property
    def network(self) -> dict:
        return next(m for m in self.models if m["role"] == "network")

    @property
    def image_model(self) -> dict | None:
        return next((m for m in self.models if m["role"] == "ensemble"), None)

    def wait(self, stop: threading.Event, poll_s: float = 0.25) -> int | None:
        """Serve until `stop` is set (None) or the server exits by itself (its exit code)."""
        while not stop.wait(poll_s):
            if not self.process.running:
                return self.process.returncode
        return None


@contextlib.contextmanager
def start_server(request: ServeRequest, progress: Progress = SILENT) -> Iterator[RunningServer]:
    """Check everything, start the server and wait until every model is ready; on leaving the block (or on
    any error, Ctrl-C included) stop it, leaving no process, shared memory or temporary file behind."""
    install = find_triton()
    check_serving_python()
    spec = read_artifact_spec(request.artifact)
    settings = request.repository
    notes = []
    if settings.image_model and spec.batch.static:
        settings = replace(settings, image_model=False)
        notes.append(f"{spec.path.name} has a static batch of {spec.batch.lo}: no image model (it needs a dynamic batch)")
    models = repository_models(spec, settings, settings.name or model_name(spec.path), local=True)
    check_ports(request.endpoints)
    scratch = Path(tempfile.gettempdir())
    remove_stale_staging(scratch)  # the work folder of a serve that was SIGKILLed
    work = make_staging("serve", scratch)
    try:
        configs = write_models(models, work / "repository")
        progress.stage(f"starting Triton (nvidia-pytriton {install.version}) on {request.endpoints.host}")
        process = TritonProcess(work / "repository", request.endpoints, install, work, request.log_file)
        with process:
            startup = process.wait_ready([m.name for m in models], request.ready_timeout_s)
            served = [{"name": m.name, "role": m.role, "config": configs[m.name]} for m in models]
            yield RunningServer(process, request.endpoints, served, startup, _triton_version(process), notes)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _triton_version(process: TritonProcess) -> str:
    """The server's own version (KServe v2 server metadata), '' when it does not say."""
    import json
    import urllib.request

    url = f"http://{process.endpoints.reachable_host}:{process.endpoints.http}/v2"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(json.loads(response.read()).get("version", ""))
    except (OSError, ValueError):
        return ""
