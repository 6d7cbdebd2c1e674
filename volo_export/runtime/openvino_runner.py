"""ONNX files in OpenVINO on the CPU (`pip install volo-export[openvino]`): settings, refusals, the runner.

OpenVINO reads our ONNX artifacts directly (FP32, FP16, INT8 Q/DQ of the tensorrt and openvino
targets) and compiles them for this CPU (the measurements behind each choice: docs/CPU.md,
"OpenVINO runner: why it is set up this way"):

- The precision hint is always explicit (OpenVINO's own default on CPUs that report native bf16
  is bf16): FP32/FP16/INT8 artifacts compile with `f32` (an FP16 graph's weights are widened at
  compile time), a `precision: bf16` artifact with `bf16`.
- `--target cpu` INT8 artifacts are refused: OpenVINO miscomputes uint8 Q/DQ with zero point 0
  in front of a convolution (the folded ReLU of the stem). The tensorrt and openvino targets are
  symmetric int8 before every convolution and are computed right.
- Compiled for a static batch: a dynamic-batch artifact is compiled for `OpenVinoSettings.batch` when
  the runner opens, and once more for every other batch size on its first call (each compiled model
  holds its own weights); faster than the dynamic-batch compile.
- The compiled models are cached (OpenVINO's model cache, `~/.cache/volo-export/openvino/<content
  hash>/`, one blob per batch size and hint). OpenVINO keys a model compiled from a *path* on the
  file's path, size and modification time only (a file rewritten in place with the same size and
  time gets the old blob); a reshaped model is keyed by its content, and the folder is named after
  the sha256 of the file's content either way.
- One synchronous request, one stream with every thread (`PERFORMANCE_HINT` LATENCY); CPU pinning
  off (pinned workers lose on a machine shared with other processes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, RuntimeUnavailable, UsageError, first_line
from volo_export.export.metadata import ArtifactInfo, MissingMetadata, check_onnx_file, read_info
from volo_export.names import Executor, Precision, Target
from volo_export.runtime.base import BatchRange

INSTALL_HINT = "pip install 'volo-export[openvino]'"
# OpenVINO's INFERENCE_PRECISION_HINT for an artifact's `precision` metadata.
OV_F32, OV_BF16 = "f32", "bf16"  # OpenVINO's own names
HINTS = {Precision.FP32: OV_F32, Precision.FP16: OV_F32, Precision.INT8: OV_F32, Precision.BF16: OV_BF16}
REFUSED_CPU_INT8 = ("OpenVINO computes --target cpu INT8 graphs wrong (uint8 zero-point-0 Q/DQ before a "
                    "convolution; measured cosine 0.31 vs eager on VOLO-D1): run {name} with --runtime "
                    "onnxruntime, or quantize with --target openvino (or tensorrt) for OpenVINO")


@dataclass(frozen=True)
class OpenVinoSettings:
    """How OpenVINO compiles an artifact. `threads` 0: every core. `inference_precision` None: from the
    artifact's metadata (`HINTS`). `cache_dir` None: the user cache; `cache` False: no model cache.
    `perf_count` turns on OpenVINO's per-node profiling (`OpenVinoRunner.profile`). `batch`: the batch size a
    dynamic-batch artifact is compiled for when the runner opens (other sizes compile on their first call)."""

    threads: int = 0
    inference_precision: str | None = None
    cache: bool = True
    cache_dir: Path | None = None
    pinning: bool = False
    perf_count: bool = False
    batch: int = 1


def default_cache_dir() -> Path | None:
    """~/.cache/volo-export/openvino (XDG_CACHE_HOME respected; None: no home, no cache)."""
    from volo_export.io import user_cache_dir

    return user_cache_dir("openvino")


def import_openvino():
    """The openvino module, or a one-line RuntimeUnavailable saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise RuntimeUnavailable(f"OpenVINO is not installed ({INSTALL_HINT})") from None
    return openvino


def check_bf16_cpu(isa=None) -> None:
    """A one-line RuntimeUnavailable where this CPU has no native bfloat16 arithmetic."""
    from volo_export.hardware import cpu_isa, cpu_model

    isa = isa or cpu_isa()
    if not isa.bf16:
        raise RuntimeUnavailable(f"bf16 needs a CPU with AVX512_BF16 or AMX-BF16; this one ({cpu_model()}, "
                                 f"{isa.tier}) has neither: use fp32 or int8")


def refusal(info: ArtifactInfo | None, name: str) -> str | None:
    """Why OpenVINO must not run an artifact with this metadata (None: it may)."""
    if info is not None and info.precision == Precision.INT8 and info.target == Target.CPU:
        return REFUSED_CPU_INT8.format(name=name)
    return None


@lru_cache(maxsize=1)
def process_core():
    """The one OpenVINO Core of this process, never released. OpenVINO's CPU plugin installs an alternate
    signal stack when it loads and frees it when the last Core unloads the plugin; after that every signal
    Python handles (Ctrl-C, SIGTERM) is delivered on freed memory and the process dies of SIGSEGV instead of
    stopping cleanly (OpenVINO 2026.4, tests/test_openvino.py). Compile settings go with each compile."""
    import openvino as ov

    return ov.Core()


def cache_dir_for(path: Path, settings: OpenVinoSettings) -> Path | None:
    """The model-cache folder of one artifact: named after its content (see the module docstring); None
    without a cache home."""
    from volo_export.io import sha256_file

    root = settings.cache_dir or default_cache_dir()
    return None if root is None else root / sha256_file(path)[:32]


def compile_config(hint: str, settings: OpenVinoSettings, cache_dir: Path | None = None) -> dict:
    """compile_model's config: explicit precision hint, latency mode, one stream, threads, cache."""
    config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
              "INFERENCE_NUM_THREADS": settings.threads, "ENABLE_CPU_PINNING": settings.pinning}
    if cache_dir is not None:
        config["CACHE_DIR"] = str(cache_dir)
    if settings.perf_count:
        config["PERF_COUNT"] = True
    return config


class OpenVinoRunner:
    """Runs an ONNX artifact in OpenVINO on the CPU: `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`."""

    runtime = Executor.OPENVINO_CPU

    def __init__(self, model: Path | bytes, settings: OpenVinoSettings = OpenVinoSettings(),
                 info: ArtifactInfo | None = None):
        """`model`: an ONNX file (compiled through the model cache), or serialized ONNX bytes with their
        metadata as `info` (the gate of a graph not written yet; no cache)."""
        ov = import_openvino()
        in_memory = isinstance(model, bytes)
        self.name = "<in-memory model>" if in_memory else str(model)
        if settings.threads < 0:
            raise UsageError(f"threads must be >= 0 (0 = every core), got {settings.threads}")
        if not in_memory:
            check_onnx_file(Path(model))  # the external-data policy, before OpenVINO opens anything
        self._info = info if in_memory else _info_or_none(Path(model))
        label = Path(self.name).name
        why_not = refusal(self._info, label)
        if why_not:
            raise RuntimeUnavailable(why_not)
        precision = self._info.precision if self._info else Precision.FP32
        hint = settings.inference_precision or HINTS.get(precision, OV_F32)
        if hint == OV_BF16:
            check_bf16_cpu()
        self.notices: list[str] = []
        cache = cache_dir_for(Path(model), settings) if settings.cache and not in_memory else None
        if cache is not None:
            why = _unusable_folder(cache)
            if why:  # the model cache only saves time: without it OpenVINO compiles every start
                self.notices.append(f"OpenVINO model cache {cache} is not usable ({why}); compiling without it")
                cache = None
        self._core, self._config, self._label = process_core(), compile_config(hint, settings, cache), label
        try:
            self._model = self._core.read_model(model=model, weights=ov.Tensor(np.zeros(0, np.uint8))) \
                if in_memory else self._core.read_model(str(model))
        except RuntimeError as e:  # OpenVINO's conversion/compile errors are RuntimeError subclasses
            raise InputDataError(f"OpenVINO cannot read {label}: {openvino_reason(e)}") from None
        dim = self._model.inputs[0].get_partial_shape()[0]
        self.batch_range = BatchRange() if dim.is_dynamic else BatchRange(dim.get_length(), dim.get_length())
        self._compiled: dict[int, tuple] = {}  # batch size -> (compiled model, its infer request)
        self._use(settings.batch if dim.is_dynamic else dim.get_length())
        hint_type = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.inference_precision = hint_type.to_string() if hasattr(hint_type, "to_string") else str(hint_type)
        self.loaded_from_cache = bool(cache and self.compiled.get_property("LOADED_FROM_CACHE"))
        self.version = ov.__version__.split("-")[0]

    def _use(self, batch: int) -> None:
        """Make `compiled` and `request` the model compiled for `batch` (compiled on its first use)."""
        if batch not in self._compiled:
            shape = self._model.inputs[0].get_partial_shape()
            shape[0] = batch
            try:
                self._model.reshape({self._model.inputs[0]: shape})
                compiled = self._core.compile_model(self._model, "CPU", self._config)
            except RuntimeError as e:
                raise InputDataError(f"OpenVINO cannot compile {self._label}: {openvino_reason(e)}") from None
            self._compiled[batch] = (compiled, compiled.create_infer_request())
        self.compiled, self.request = self._compiled[batch]

    @property
    def info(self) -> ArtifactInfo:
        """The artifact's volo_export metadata (raises InputDataError when it has none)."""
        if self._info is None:
            raise MissingMetadata(f"{self.name} carries no volo-export metadata (was it exported by volo-export?)")
        return self._info

    @property
    def input_shape(self) -> tuple:
        """The model input's shape: ints for static dimensions, "?" for dynamic ones."""
        return tuple("?" if d.is_dynamic else d.get_length() for d in self._model.inputs[0].get_partial_shape())

    def describe(self) -> str:
        return f"OpenVINO {self.version} CPU ({self.inference_precision})"

    def runtime_ops(self) -> list[tuple[str, str, str]]:
        """(layer type, kernel, runtime precision) of every node of the graph compiled for the last call's batch
        (at first: `settings.batch`), in execution order:
        what OpenVINO really runs (e.g. FullyConnected / brgemm_avx512_i8 / u8)."""
        out = []
        for op in self.compiled.get_runtime_model().get_ordered_ops():
            rt = op.get_rt_info()
            out.append(tuple(str(rt[key].astype(str)) if key in rt else ""
                             for key in ("layerType", "primitiveType", "runtimePrecision")))
        return out

    def profile(self) -> list[tuple[str, str, float]]:
        """(layer type, kernel, ms) of every executed node in the last call (needs `perf_count`)."""
        return [(p.node_type, p.exec_type, p.real_time.total_seconds() * 1e3)
                for p in self.request.get_profiling_info() if p.status.name == "EXECUTED"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batch_range.check(len(x), self._label)
        self._use(len(x))
        out = self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)}, share_inputs=True)
        return np.array(out[0], dtype=np.float32)


def openvino_reason(error: BaseException) -> str:
    """An OpenVINO exception as one line that keeps its reason: OpenVINO stacks "Exception from
    src/...cpp:117:" location lines above the message, and the first line alone says nothing."""
    lines = [s.strip() for s in str(error).splitlines() if s.strip()]
    reasons = [s for s in lines if not s.startswith("Exception from ")]
    return " ".join(reasons[:2]) if reasons else first_line(error)


def _unusable_folder(folder: Path) -> str | None:
    """Why `folder` cannot hold a cache (None: it can); creates it when missing."""
    import os

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return e.strerror or type(e).__name__
    if not os.access(folder, os.W_OK | os.X_OK):
        return "not writable"
    return None


def _info_or_none(path: Path) -> ArtifactInfo | None:
    """The file's volo-export metadata; None for an ONNX without it (it still runs: predict --model-name)."""
    try:
        return read_info(path)
    except MissingMetadata:
        return None
