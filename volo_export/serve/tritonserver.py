"""The `tritonserver` binary that ships in the nvidia-pytriton wheel, run as a child process volo-export
controls (without importing pytriton, whose Python API is not used).

What it relies on (nvidia-pytriton 0.7.0 = Triton 2.51.0; the wheel has only the Python backend):

    <site>/pytriton/tritonserver/bin/tritonserver                     the server (Triton core: HTTP/gRPC KServe v2,
                                                                      dynamic batcher, metrics)
    <site>/pytriton/tritonserver/backends/python/                     the Python backend
    <site>/pytriton/tritonserver/python_backend_stubs/3.X/triton_python_backend_stub
    <site>/pytriton/tritonserver/caches/                              response caches
    <site>/nvidia_pytriton.libs/                                      the server's shared libraries

- libpython: the stub links `libpython3.X.so.1.0` dynamically and, left alone, may load the operating
  system's copy under another 3.X build (model load then fails with `'_thread.RLock' object has no
  attribute '_recursion_count'`): LD_LIBRARY_PATH starts with this interpreter's LIBDIR.
- The stub's embedded Python finds its environment through the `python3` first on PATH: this
  interpreter's bin/ goes first.
- numpy: the stub's pybind11 reads numpy 2 arrays wrongly (empty tensors, crashes on BYTES): the
  serving environment needs numpy < 2, which the wheel pins.
- The server runs in its own process group (in our session) and gets SIGTERM if we die
  (PR_SET_PDEATHSIG); stopping is SIGINT to the group, then SIGKILL, then waiting until no member is
  left. Its temporary files (TMPDIR) and shared-memory regions carry names we chose, and are removed.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from volo_export.errors import RuntimeUnavailable, ServingError, UsageError

PACKAGE = "pytriton"
SERVE_EXTRA_HINT = "pip install 'volo-export[serve]' into its own environment (it pins numpy<2)"
# The server logs these once it listens; a model-ready answer counts only after all three, so a readiness
# probe cannot be answered by another server that holds the port.
STARTED = {"http": "Started HTTPService at", "grpc": "Started GRPCInferenceService at",
           "metrics": "Started Metrics Service at"}
_ERROR_LINE = re.compile(r"^E\d{4} [\d:.]+\s+\d+ [^\]]*\] ?(.*)$")
# Error-level lines the server logs on every start on a machine without an NVIDIA GPU: not the reason anything failed.
_NO_GPU_NOISE = ("CudaDriverHelper has not been initialized", "Unable to allocate pinned system memory",
                 "Failed to initialize NVML", "DCGM unable to start", "CUDA driver version is insufficient")


@dataclass(frozen=True)
class TritonInstall:
    """Where the wheel's server, Python backend, stub and libraries are."""

    server: Path
    python_backend: Path
    stub: Path
    caches: Path
    libs: Path
    version: str


def find_triton() -> TritonInstall:
    """The tritonserver of the installed nvidia-pytriton wheel (found, not imported), or a one-line
    RuntimeUnavailable saying how to install it."""
    from volo_export.export.metadata import library_versions

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeUnavailable(f"volo-export serve runs the tritonserver of the nvidia-pytriton wheel, which is not "
                                 f"installed here: {SERVE_EXTRA_HINT}")
    package = Path(next(iter(spec.submodule_search_locations)))
    dist = package / "tritonserver"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    wheel = library_versions(("nvidia-pytriton",))["nvidia-pytriton"] or "unknown"
    install = TritonInstall(server=dist / "bin" / "tritonserver", python_backend=dist / "backends" / "python",
                            stub=dist / "python_backend_stubs" / python / "triton_python_backend_stub",
                            caches=dist / "caches", libs=package.parent / "nvidia_pytriton.libs", version=wheel)
    for path in (install.server, install.python_backend, install.stub, install.libs):
        if not path.exists():
            raise RuntimeUnavailable(f"the nvidia-pytriton install is incomplete or has no Python {python} "
                                     f"backend stub ({path} is missing): {SERVE_EXTRA_HINT}")
    return install


def check_serving_python() -> None:
    """This interpreter must be able to host the Python backend: a shared libpython, numpy < 2."""
    import numpy as np

    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise RuntimeUnavailable(f"{sys.executable} has no shared libpython, which Triton's Python backend "
                                 "needs; use a Python built with --enable-shared (e.g. python.org, pyenv with "
                                 "PYTHON_CONFIGURE_OPTS=--enable-shared, most distribution Pythons)")
    if int(np.__version__.split(".")[0]) >= 2:
        raise RuntimeUnavailable(f"numpy {np.__version__} here, but Triton's Python backend (nvidia-pytriton "
                                 f"0.7.0) reads numpy 2 arrays wrongly: {SERVE_EXTRA_HINT}")


def server_environment(install: TritonInstall, tmpdir: Path) -> dict[str, str]:
    """The server's environment: this interpreter's libpython and bin/ first, our own TMPDIR."""
    env = dict(os.environ)
    libs = [sysconfig.get_config_var("LIBDIR"), str(install.libs), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = ":".join(p for p in libs if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["TMPDIR"] = str(tmpdir)
    return env


# --------------------------------------------------------------------------- endpoints and ports


LOCAL_HOST = "127.0.0.1"
EXPOSED_WARNING = ("listening on {host}: other machines can reach the server, and Triton's endpoints have no "
                   "authentication (anyone who reaches them can run and load-test the model); serve on 127.0.0.1 "
                   "(the default) unless that is intended, behind a firewall or a proxy that authenticates")


@dataclass(frozen=True)
class Endpoints:
    """Where the server listens: `host` for all three services (HTTP, gRPC, metrics). The default is this
    machine only: the endpoints are unauthenticated (Triton's secure deployment considerations), so
    listening on every interface (0.0.0.0) is something the user asks for (`exposed`)."""

    host: str = LOCAL_HOST
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.http, "grpc": self.grpc, "metrics": self.metrics}

    @property
    def exposed(self) -> bool:
        """True when other machines can reach it (any address but a loopback one)."""
        import ipaddress

        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host != "localhost"

    @property
    def reachable_host(self) -> str:
        """The host a client on this machine uses."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def urls(self) -> dict[str, str]:
        h = self.reachable_host
        return {"HTTP": f"http://{h}:{self.http}", "gRPC": f"grpc://{h}:{self.grpc}",
                "metrics": f"http://{h}:{self.metrics}/metrics"}


_OPTION = {"http": "--port", "grpc": "--grpc-port", "metrics": "--metrics-port"}


def check_ports(endpoints: Endpoints) -> None:
    """All three ports valid, distinct and free on `host`, before anything starts; else one line."""
    ports = endpoints.ports
    for what, port in ports.items():
        if not 0 < port < 65536:
            raise UsageError(f"{_OPTION[what]} {port} is not a port number (1..65535)")
    if len(set(ports.values())) < len(ports):
        raise UsageError(f"--port, --grpc-port and --metrics-port must differ, got {', '.join(map(str, ports.values()))}")
    for what, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in endpoints.host else socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((endpoints.host, port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise UsageError(f"port {port} ({what}) on {endpoints.host} is already in use; choose another "
                                     f"{_OPTION[what]}") from None
                raise UsageError(f"cannot listen on {endpoints.host}:{port}: {e.strerror}") from None


# --------------------------------------------------------------------------- the process


def _die_with_parent():
    """Child side of Popen, before exec: own process group, SIGTERM when the parent dies (Linux)."""
    os.setpgid(0, 0)
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # looked up once in the parent: the child only calls it


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":  # fields[0]: state, fields[2]: pgrp
                members.append(int(entry.name))
    return members


class TritonProcess:
    """tritonserver serving `repository`; `start`, `wait_ready`, `stop` (also on leaving a `with`)."""

    def __init__(self, repository: Path, endpoints: Endpoints, install: TritonInstall, work: Path,
                 log_file: Path | None = None, exit_timeout_s: int = 5):
        self.repository, self.endpoints, self.install = Path(repository), endpoints, install
        self.work = Path(work)
        self.log_file = Path(log_file) if log_file else self.work / "tritonserver.log"
        self.exit_timeout_s = exit_timeout_s
        self.shm_prefix = f"volo-export-{os.getpid()}-{time.monotonic_ns() % 10**6}-"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.started = 0.0

    def command(self, backends: Path) -> list[str]:
        e = self.endpoints
        return [str(self.install.server), f"--model-repository={self.repository}", f"--backend-directory={backends}",
                f"--cache-directory={self.install.caches}",
                f"--http-address={e.host}", f"--grpc-address={e.host}", f"--metrics-address={e.host}",
                f"--http-port={e.http}", f"--grpc-port={e.grpc}", f"--metrics-port={e.metrics}",
                "--allow-gpu-metrics=false", "--exit-on-error=true", "--strict-readiness=true",
                f"--exit-timeout-secs={self.exit_timeout_s}",
                f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                "--backend-config=python,shm-default-byte-size=4194304",
                "--backend-config=python,shm-growth-byte-size=1048576"]

    def start(self) -> "TritonProcess":
        backends = self.work / "backends" / "python"
        backends.mkdir(parents=True)
        for item in self.install.python_backend.iterdir():
            (backends / item.name).symlink_to(item)
        (backends / "triton_python_backend_stub").symlink_to(self.install.stub)
        tmp = self.work / "tmp"
        tmp.mkdir()
        self._log = open(self.log_file, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.command(backends.parent), env=server_environment(self.install, tmp),
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def first_error(self) -> str:
        """The first error line of the server's log, without its prefix ('' when none)."""
        for line in self.log_text().splitlines():
            match = _ERROR_LINE.match(line)
            if match and not any(noise in line for noise in _NO_GPU_NOISE):
                # Messages come JSON-escaped, Python tracebacks included: line 1, quotes as written.
                return match[1].strip().strip('"').split("\\n")[0].replace('\\"', '"')
        return ""

    def _listening(self) -> bool:
        text = self.log_text()
        return all(f"{started} {self.endpoints.host}:{self.endpoints.ports[what]}" in text
                   for what, started in STARTED.items())

    def _model_ready(self, name: str) -> bool:
        url = f"http://{self.endpoints.reachable_host}:{self.endpoints.http}/v2/models/{name}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_ready(self, models: Sequence[str], timeout_s: float) -> float:
        """Block until the server listens on all three ports and every model in `models` is ready; returns
        the seconds since start. The server exiting or the timeout is a one-line ServingError."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.running:
                raise ServingError(f"tritonserver exited with code {self.returncode} while starting: "
                                   f"{self.first_error() or 'see its log ' + str(self.log_file)}")
            if self._listening() and all(self._model_ready(m) for m in models):
                return time.monotonic() - self.started
            if time.monotonic() > deadline:
                raise ServingError(f"tritonserver was not ready after {timeout_s:.0f} s"
                                   + (f": {self.first_error()}" if self.first_error() else ""))
            time.sleep(0.1)

    def stop(self, grace_s: float | None = None) -> int | None:
        """SIGINT to the server's group, SIGKILL after `grace_s` (default: its exit timeout + 10 s), then wait
        until no process of the group is left; remove its shared memory. Returns its exit code."""
        if self.proc is None:
            return None
        grace = self.exit_timeout_s + 10 if grace_s is None else grace_s
        pgid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.killpg(pgid, signal.SIGINT)
                self.proc.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        deadline = time.monotonic() + 10
        while True:  # the backend stubs share the group; whatever is left goes now
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc.poll() is None:
                self.proc.wait()
            if not group_members(pgid) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            region.unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __enter__(self) -> "TritonProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
