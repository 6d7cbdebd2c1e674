"""One inference API over this project's artifacts: `open_runner(path)(batch) -> logits`.

ONNX models run in ONNX Runtime with the best available provider
(TensorRT EP, CUDA EP, CPU EP, in that order of preference); `.engine` files
run in TensorRT after their sidecar was checked against this machine. The
artifact's own metadata (ONNX metadata_props, or the engine's sidecar) says
how to preprocess, so a file alone is enough to run it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, UsageError
from volo_export.export.metadata import ArtifactInfo, load_graph, read_info

_PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
DEFAULT_PREDICT_BATCH = 32


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime session settings. `threads` 0 lets ONNX Runtime use every core.
    `cache_dir`: where the TensorRT EP keeps engine and timing caches (default: user cache).

    `spinning` False stops idle intra-op threads from busy-waiting between runs (ONNX Runtime spins by
    default): a little latency for not stealing cores from other work, e.g. interleaved benchmarks.
    `profile_prefix` turns on ONNX Runtime's profiler (see `OnnxRuntimeRunner.end_profiling`);
    `optimized_model` saves the graph as ONNX Runtime optimized it (an ORT-only artifact).
    """

    providers: tuple[str, ...] | None = None
    threads: int = 0
    optimization: str = "all"
    cache_dir: Path | None = None
    spinning: bool = True
    profile_prefix: str | None = None
    optimized_model: Path | None = None


def default_cache_dir() -> Path:
    """~/.cache/volo-export/ort-tensorrt (XDG_CACHE_HOME respected)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "volo-export" / "ort-tensorrt"


def provider_options(providers: Sequence[str], profile=None, cache_dir: Path | None = None) -> list:
    """ONNX Runtime's `providers=` list with options. TensorRT EP: engine and timing caches on,
    FP16/INT8 off (precision is already in the graph: FP16 conversion or Q/DQ), and the
    optimization profile (a `volo_export.trt.config.Profile`) as min/opt/max shapes."""
    from volo_export.trt.config import DEFAULT_OPT_LEVEL

    out: list = []
    for name in providers:
        if name == "TensorrtExecutionProvider":
            cache = str(cache_dir or default_cache_dir())
            opts = {"trt_fp16_enable": False, "trt_int8_enable": False,
                    "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                    "trt_timing_cache_enable": True, "trt_timing_cache_path": cache,
                    "trt_builder_optimization_level": DEFAULT_OPT_LEVEL}
            if profile is not None and not profile.fixed:
                for key, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
                    opts[f"trt_profile_{key}_shapes"] = f"{profile.input}:{'x'.join(map(str, shape))}"
            out.append((name, opts))
        else:
            out.append(name)
    return out


def _default_profile(model: Path):
    """The TensorRT EP's profile for an ONNX file: default batches (1/8/32) at the metadata's image size."""
    from volo_export.trt.config import BuildSettings, compute_profile, input_spec

    return compute_profile(input_spec(load_graph(model)), read_info(model).preprocessing.size, BuildSettings())


def available_providers(requested: tuple[str, ...] | None = None) -> list[str]:
    import onnxruntime as ort

    have = ort.get_available_providers()
    wanted = requested or _PROVIDER_PREFERENCE
    chosen = [p for p in wanted if p in have]
    if not chosen:
        raise InputDataError(f"none of the providers {', '.join(wanted)} is available (have {', '.join(have)})")
    return chosen


class OnnxRuntimeRunner:
    """Runs an ONNX model: `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`."""

    def __init__(self, model: Path | bytes, settings: SessionSettings = SessionSettings()):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = settings.threads
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[settings.optimization]
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
        if settings.profile_prefix:
            opts.enable_profiling = True
            opts.profile_file_prefix = settings.profile_prefix
        if settings.optimized_model:
            opts.optimized_model_filepath = str(settings.optimized_model)
        source = str(model) if isinstance(model, Path) else model
        self.name = str(model) if isinstance(model, Path) else "<in-memory model>"
        providers = available_providers(settings.providers)
        profile = (_default_profile(model)
                   if "TensorrtExecutionProvider" in providers and isinstance(model, Path) else None)
        try:
            self.session = ort.InferenceSession(source, opts,
                                                providers=provider_options(providers, profile, settings.cache_dir))
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types, not importable portably
            raise InputDataError(f"ONNX Runtime cannot load {self.name}: {str(e).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.input_type = self.session.get_inputs()[0].type
        self.providers = self.session.get_providers()

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """Raw session run: named inputs -> the named outputs (all graph outputs when None), unconverted."""
        return self.session.run(outputs, feeds)

    @property
    def info(self) -> ArtifactInfo:
        """The artifact's volo_export metadata (raises InputDataError when it has none)."""
        return ArtifactInfo.from_props(self.session.get_modelmeta().custom_metadata_map, self.name)

    @property
    def batch_range(self) -> tuple[int, int | None]:
        """(smallest, largest) batch the graph takes: (n, n) for a static batch, (1, None) if dynamic."""
        n = self.session.get_inputs()[0].shape[0]
        return (n, n) if isinstance(n, int) else (1, None)

    def check_batch(self, n: int) -> None:
        lo, hi = self.batch_range
        if hi is not None and not lo <= n <= hi:
            raise UsageError(f"batch {n} does not fit {Path(self.name).name}: its batch is static ({lo}); "
                             f"use --batch-size {lo} or re-export with dynamic batch")

    def end_profiling(self) -> Path:
        """Stop ONNX Runtime's profiler (needs `profile_prefix`); returns its JSON trace file."""
        return Path(self.session.end_profiling())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self.input_type == "tensor(float16)" else np.float32
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=dtype)})[0]
        return out.astype(np.float32, copy=False)


class TensorRTRunner:
    """Runs a volo-export TensorRT engine: `runner(x: float32 (N, 3, S, S)) -> logits (N, classes)`.

    Before TensorRT sees the plan: the sidecar must exist, the plan must match it
    (size, sha256), and the sidecar's TensorRT/GPU must suit this machine; each
    failure is a one-line error. Batches outside the profile are refused likewise.
    """

    def __init__(self, path: Path, plugins: Sequence[Path] = ()):
        from volo_export.trt import environment, infer
        from volo_export.trt.provenance import ensure_compatible, read_sidecar, verify_plan_file

        path = Path(path)
        self.name = str(path)
        self.provenance = read_sidecar(path)
        verify_plan_file(path, self.provenance)
        self.info: ArtifactInfo = self.provenance.info
        self.profile = self.provenance.profile
        running = environment.running_environment()
        self.notices = ensure_compatible(self.provenance, running)
        libs = [Path(p) for p in plugins] or [Path(p) for p in self.provenance.plugins]
        self.session = infer.EngineSession(path.read_bytes(), path.name, libs)
        self.providers = [f"TensorRT {running.tensorrt} on {running.gpu_name or 'GPU'}"]

    @property
    def batch_range(self) -> tuple[int, int]:
        lo, _, hi = self.profile.batches
        return lo, hi

    def check_batch(self, n: int) -> None:
        self.profile.check_batch(n, what=f"engine {Path(self.name).name}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.check_batch(len(x))
        return self.session(x)


def read_artifact_info(path: Path) -> ArtifactInfo:
    """ArtifactInfo of any artifact without opening a session: an ONNX file (its metadata_props),
    a TensorRT plan `X.engine` or its sidecar `X.engine.json` (the sidecar's `metadata`)."""
    from volo_export.trt.provenance import SIDECAR_SUFFIX, read_sidecar

    path = Path(path)
    if path.name.endswith(SIDECAR_SUFFIX):
        return read_sidecar(path.with_name(path.name[:-len(SIDECAR_SUFFIX)])).info
    if path.suffix in ENGINE_SUFFIXES:
        return read_sidecar(path).info
    return read_info(path)


def open_runner(path: Path, settings: SessionSettings = SessionSettings(), plugins: Sequence[Path] = ()):
    """A runner for an artifact file: .onnx -> ONNX Runtime, .engine/.plan/.trt -> TensorRT."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"model not found: {path}")
    if path.suffix == ".onnx":
        return OnnxRuntimeRunner(path, settings)
    if path.suffix in ENGINE_SUFFIXES:
        return TensorRTRunner(path, plugins)
    raise InputDataError(f"{path}: unsupported artifact type {path.suffix!r} "
                         f"(expected .onnx or {'/'.join(ENGINE_SUFFIXES)})")


def run_in_batches(runner, array: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """Run `array` (N, 3, S, S) through `runner` in chunks the artifact accepts; returns (N, classes).

    Chunks are `batch_size` rows (default: 32, or the artifact's largest batch); a short last
    chunk is zero-padded up to the artifact's smallest batch and the padding rows dropped.
    """
    lo, hi = runner.batch_range
    size = batch_size or min(DEFAULT_PREDICT_BATCH, hi or DEFAULT_PREDICT_BATCH)
    runner.check_batch(size)
    outs = []
    for start in range(0, len(array), size):
        chunk = array[start:start + size]
        n = len(chunk)
        if n < lo:
            chunk = np.concatenate([chunk, np.zeros((lo - n, *chunk.shape[1:]), chunk.dtype)])
        outs.append(runner(chunk)[:n])
    return np.concatenate(outs)
