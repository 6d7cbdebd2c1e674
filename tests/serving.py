"""Helpers for the tests that start a real Triton through `volo-export serve`.

The server needs a Python with `volo-export[serve]` (nvidia-pytriton pins numpy<2), while the suite runs on
numpy 2: `VOLO_EXPORT_SERVE_PYTHON` names that interpreter (README "Tests"; `.ci/run` builds it). Servers
start in their own session; `ServeProcess.kill_all` kills every process of that session and waits until
none is left, so no test leaves a process running, whatever happened in it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SERVE_PYTHON = "VOLO_EXPORT_SERVE_PYTHON"
# `volo-export` in the serving interpreter, with the program name the CLI's messages use.
MAIN = "import sys; sys.argv[0] = 'volo-export'; from volo_export.cli import main; main()"
READY = "Ctrl-C or SIGTERM stops it"  # the last line `serve` prints once everything is ready


def serve_python(module: bool = False) -> str:
    """The serving interpreter, or a skip (of the whole test module with `module`) that says how to get one."""
    python = os.environ.get(SERVE_PYTHON)
    if not python:
        pytest.skip(f"{SERVE_PYTHON} is not set: serve tests need a Python with volo-export[serve] installed "
                    "(its own venv, numpy<2; see README 'Tests')", allow_module_level=module)
    if not Path(python).is_file():
        pytest.fail(f"{SERVE_PYTHON}={python} is not a file")
    return python


def free_ports(n: int = 3) -> list[int]:
    """`n` distinct ports free on the loopback interface right now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid and "State:\tZ" not in (entry / "status").read_text():
                members.append(int(entry.name))
        except OSError:
            continue
    return members


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`volo-export ARGS` in the serving interpreter, to completion, in its own session."""
    proc = subprocess.Popen([serve_python(), "-c", MAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        ServeProcess.kill_session(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class ServeProcess:
    """`volo-export serve ARTIFACT --host 127.0.0.1` on free ports, in its own session; its stdout and
    stderr go to files (`out`, `err` hold their text after `wait_ready` and `stop`)."""

    def __init__(self, artifact: Path, *args: str, ports: list[int] | None = None, env: dict | None = None):
        self.http, self.grpc, self.metrics = ports or free_ports()
        self.args = ["serve", str(artifact), "--host", "127.0.0.1", "--port", str(self.http),
                     "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics), *args]
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.logs: Path | None = None
        self.out = self.err = ""

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc}"

    def start(self) -> "ServeProcess":
        python = serve_python()
        self.logs = Path(tempfile.mkdtemp(prefix="volo-export-serve-test-"))
        with open(self.logs / "out", "w") as out, open(self.logs / "err", "w") as err:
            self.proc = subprocess.Popen([python, "-c", MAIN, *self.args], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True, env=self.env)
        return self

    def read_output(self) -> None:
        self.out, self.err = ((self.logs / name).read_text(errors="replace") for name in ("out", "err"))

    def wait_ready(self, model: str, timeout: float = 120) -> float:
        """Seconds until `serve` says it is ready, serving `model`; it must stay alive until then."""
        t0 = time.monotonic()
        while True:
            self.read_output()
            if self.proc.poll() is not None:
                pytest.fail(f"serve exited with {self.proc.returncode}: {self.err[-2000:]}")
            if READY in self.out:
                assert f"model    {model}:" in self.out, self.out
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                pytest.fail(f"serve not ready after {timeout} s: {self.err[-2000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` to the serve process and wait for it; returns its exit code (output in out/err)."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout=timeout)
        self.read_output()
        return self.proc.returncode

    @staticmethod
    def kill_session(proc: subprocess.Popen, timeout: float = 20) -> list[int]:
        """SIGKILL every process of `proc`'s session until none is left; returns the ones that had to go."""
        killed = []
        deadline = time.monotonic() + timeout
        while True:
            members = session_members(proc.pid)
            if not members:
                break
            for pid in members:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            if proc.poll() is None:
                proc.wait(timeout=5)
            assert time.monotonic() < deadline, f"processes {members} of session {proc.pid} do not die"
            time.sleep(0.1)
        if proc.poll() is None:
            proc.wait()
        return killed

    def kill_all(self) -> list[int]:
        """Kill whatever is left of the session (and remove the output files); returns what had to be killed."""
        try:
            return self.kill_session(self.proc) if self.proc is not None else []
        finally:
            if self.logs is not None:
                shutil.rmtree(self.logs, ignore_errors=True)
