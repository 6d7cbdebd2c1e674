"""A running Triton server seen from a client: KServe v2 over HTTP (`http://HOST:PORT`) or gRPC
(`grpc://HOST:PORT`) through tritonclient.

A model written by volo-export carries its artifact's `volo_export.*` metadata as config `parameters`,
so a client learns the preprocessing, labels and class count from the server itself. `ServedRunner`
makes such a model a `Runner` (runtime.base): `predict --url` is local `predict` with another runner.
Every failure (unreachable server, refused request, malformed answer) is a one-line ServingError.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from volo_export.errors import RuntimeUnavailable, ServingError, UsageError, first_line
from volo_export.export.metadata import ArtifactInfo, MissingMetadata
from volo_export.runtime.base import BatchRange
from volo_export.serve.model_config import TRITON_EXTRA_HINT, model_config_pb2

PROTOCOLS = {"http": 8000, "grpc": 8001}  # scheme -> Triton's default port
TRITON_RUNTIME = "triton"  # Runner.runtime of a served model


@dataclass(frozen=True)
class ServerUrl:
    """`http://HOST[:PORT]` or `grpc://HOST[:PORT]` (default ports 8000 / 8001)."""

    protocol: str
    address: str  # HOST:PORT, as tritonclient takes it

    @classmethod
    def parse(cls, url: str) -> "ServerUrl":
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in PROTOCOLS:
            raise UsageError(f"--url {url!r}: give http://HOST:PORT (KServe v2 over HTTP) or grpc://HOST:PORT")
        host = rest.strip("/")
        if not host or "/" in host:
            raise UsageError(f"--url {url!r}: give only a host and port, e.g. {scheme}://127.0.0.1:{PROTOCOLS[scheme]}")
        from urllib.parse import urlsplit

        try:  # checked here: tritonclient's constructors fail half-built on a bad host or port (a traceback
            parts = urlsplit(f"{scheme}://{host}")  # from their __del__ after the error line)
            name, port = parts.hostname, parts.port
        except ValueError as e:
            raise UsageError(f"--url {url!r}: {first_line(e)}") from None
        if not name or port == 0 or parts.username is not None or parts.password is not None:
            raise UsageError(f"--url {url!r}: give only a host and port, e.g. {scheme}://127.0.0.1:{PROTOCOLS[scheme]}")
        name = f"[{name}]" if ":" in name else name
        return cls(scheme, f"{name}:{port or PROTOCOLS[scheme]}")

    def __str__(self) -> str:
        return f"{self.protocol}://{self.address}"


def client_module(protocol: str, aio: bool = False):
    """tritonclient.http / .grpc (or their asyncio variants), imported on first use."""
    import importlib

    try:
        return importlib.import_module(f"tritonclient.{protocol}" + (".aio" if aio else ""))
    except ImportError as e:
        raise RuntimeUnavailable(f"talking to Triton needs tritonclient ({e.name} is missing): {TRITON_EXTRA_HINT}") \
            from None


@dataclass(frozen=True)
class ServedModel:
    """A model on the server that volo-export wrote: its name, the artifact's metadata and its I/O."""

    name: str
    info: ArtifactInfo
    input_name: str
    input_type: str  # KServe v2 datatype, e.g. "FP32"
    input_dims: tuple[int, ...]  # per row when batching, else the whole tensor
    output_name: str
    max_batch_size: int

    @property
    def batch_range(self) -> BatchRange:
        if self.max_batch_size:
            return BatchRange(1, self.max_batch_size)
        return BatchRange(self.input_dims[0], self.input_dims[0])

    @property
    def numpy_dtype(self):
        from tritonclient.utils import triton_to_np_dtype

        return triton_to_np_dtype(self.input_type)


def served_model(config) -> ServedModel:
    """A ModelConfig message of a model written by volo-export -> ServedModel; other models are refused."""
    pb2 = model_config_pb2()
    props = {key: value.string_value for key, value in config.parameters.items()}
    try:
        info = ArtifactInfo.from_props(props, f"served model {config.name!r}")
    except MissingMetadata:
        raise ServingError(f"served model {config.name!r} carries no volo-export metadata: serve it with volo-export "
                           "serve, or write its repository with volo-export triton-repo") from None
    if len(config.input) != 1 or len(config.output) != 1:
        raise ServingError(f"served model {config.name!r} has {len(config.input)} inputs and {len(config.output)} "
                           "outputs; expected one image tensor and one logits output")
    image = config.input[0]
    return ServedModel(name=config.name, info=info, input_name=image.name,
                       input_type=pb2.DataType.Name(image.data_type).removeprefix("TYPE_"),
                       input_dims=tuple(int(d) for d in image.dims), output_name=config.output[0].name,
                       max_batch_size=config.max_batch_size)


class TritonClient:
    """A synchronous client of one server (HTTP or gRPC, from the URL's scheme)."""

    def __init__(self, url: str | ServerUrl, timeout_s: float = 60.0):
        if not 0 < timeout_s <= 3600:
            raise UsageError(f"--timeout must be in (0, 3600] seconds, got {timeout_s:g}")
        self.url = url if isinstance(url, ServerUrl) else ServerUrl.parse(url)
        self.module = client_module(self.url.protocol)
        if self.url.protocol == "http":
            self._client = self._call("connecting", self.module.InferenceServerClient, self.url.address,
                                      connection_timeout=timeout_s, network_timeout=timeout_s)
            self._timeout: dict = {}
        else:
            self._client = self._call("connecting", self.module.InferenceServerClient, self.url.address)
            self._timeout = {"client_timeout": timeout_s}

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # tritonclient raises its own, gevent, socket and grpc errors: all one line here
            raise ServingError(f"Triton at {self.url}: {what} failed: {first_line(e)}") from None

    def server_version(self) -> str:
        meta = self._call("reading server metadata", self._client.get_server_metadata, **self._timeout)
        return str(meta["version"] if isinstance(meta, dict) else meta.version)

    def ready_models(self) -> list[str]:
        index = self._call("listing models", self._client.get_model_repository_index, **self._timeout)
        entries = index if isinstance(index, list) else [{"name": m.name, "state": m.state} for m in index.models]
        return sorted(e["name"] for e in entries if e.get("state") == "READY")

    def model_config(self, name: str):
        """The model's configuration as Triton's ModelConfig message (either protocol)."""
        from google.protobuf import json_format

        answer = self._call(f"reading the configuration of model {name!r}", self._client.get_model_config, name,
                            **self._timeout)
        if isinstance(answer, dict):  # HTTP: the config as JSON
            try:
                return json_format.ParseDict(answer, model_config_pb2().ModelConfig(), ignore_unknown_fields=True)
            except json_format.ParseError as e:
                raise ServingError(f"Triton at {self.url}: model {name!r} has an unreadable configuration: "
                                   f"{first_line(e)}") from None
        return answer.config

    def served_model(self, name: str | None = None) -> ServedModel:
        """The named model, or the one image-tensor model with volo-export metadata the server has ready."""
        if name is not None:
            return served_model(self.model_config(name))
        found = []
        for candidate in self.ready_models():
            config = self.model_config(candidate)
            if "volo_export.model" in config.parameters and config.input and config.input[0].data_type != \
                    model_config_pb2().TYPE_STRING:
                found.append(candidate)
        if len(found) != 1:
            what = f"{len(found)} models from volo-export ({', '.join(found)})" if found else "no model from volo-export"
            raise ServingError(f"Triton at {self.url} has {what} ready; name one with --model-name")
        return served_model(self.model_config(found[0]))

    def infer(self, model: ServedModel, x: np.ndarray, request_id: str = "") -> np.ndarray:
        """Logits (N, classes) float32 for a batch `x` (N, 3, S, S) from the served `model`."""
        tensor = self.module.InferInput(model.input_name, list(x.shape), model.input_type)
        tensor.set_data_from_numpy(np.ascontiguousarray(x, dtype=model.numpy_dtype))
        output = self.module.InferRequestedOutput(model.output_name)
        result = self._call(f"inference on model {model.name!r}", self._client.infer, model.name, [tensor],
                            outputs=[output], request_id=request_id, **self._timeout)
        logits = result.as_numpy(model.output_name)
        expected = (len(x), model.info.num_classes)
        if logits is None or logits.shape != expected:
            raise ServingError(f"Triton at {self.url}: model {model.name!r} answered "
                               f"{'nothing' if logits is None else 'shape ' + str(logits.shape)}, expected {expected}")
        return logits.astype(np.float32, copy=False)

    def close(self) -> None:
        self._client.close()


class ServedRunner:
    """A served model as a Runner: `runner(x (N, 3, S, S)) -> logits (N, classes)` over the network."""

    runtime = TRITON_RUNTIME

    def __init__(self, client: TritonClient, model: ServedModel, server_version: str = ""):
        self.client, self.model = client, model
        self.name = f"{client.url} model {model.name}"
        self.notices: list[str] = []
        self.server_version = server_version

    @property
    def info(self) -> ArtifactInfo:
        return self.model.info

    @property
    def batch_range(self) -> BatchRange:
        return self.model.batch_range

    def describe(self) -> str:
        version = f" {self.server_version}" if self.server_version else ""
        return f"Triton{version} at {self.client.url}"

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.client.infer(self.model, x)


def open_served_runner(url: str, model_name: str | None = None, timeout_s: float = 60.0) -> ServedRunner:
    """A Runner for a model on a running Triton (`model_name` None: the one volo-export model there)."""
    client = TritonClient(url, timeout_s)
    model = client.served_model(model_name)
    return ServedRunner(client, model, client.server_version())


def artifact_matches(local: ArtifactInfo, served: ArtifactInfo) -> list[str]:
    """Where a local artifact's metadata differs from a served model's (empty: the same model)."""
    fields = ("model", "preprocessing", "num_classes", "labels", "precision", "checkpoint_sha256")
    return [f for f in fields if getattr(local, f) != getattr(served, f)]
