"""ONNX files in ONNX Runtime: session settings, execution providers and their options, the runner.

Provider policy, explicit: `SessionSettings.providers` None ("auto") prefers TensorRT EP >
CUDA EP > CPU EP, for predict and validate, where speed matters and the tolerance follows the
provider that really runs (`OnnxRuntimeRunner.runtime`). The export gate always runs on the CPU
EP (`CPU`): exact FP32 arithmetic, the reference runtime for every ONNX artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from volo_export.errors import InputDataError, RuntimeUnavailable, first_line
from volo_export.export.metadata import (ArtifactInfo, MissingMetadata, check_input_shape, check_onnx_file, load_graph,
                                         read_info)
from volo_export.io import user_cache_dir
from volo_export.names import Executor
from volo_export.runtime.base import BatchRange

PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_RUNTIME_OF_PROVIDER = {"TensorrtExecutionProvider": Executor.ONNXRUNTIME_TENSORRT,
                        "CUDAExecutionProvider": Executor.ONNXRUNTIME_CUDA,
                        "CPUExecutionProvider": Executor.ONNXRUNTIME_CPU}


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime session settings. `providers` None: the preference above, as available.
    `threads` 0 lets ONNX Runtime use every core. `cache_dir`: where the TensorRT EP keeps engine and
    timing caches (default: user cache).

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


CPU_ONLY = ("CPUExecutionProvider",)  # the gate's provider: exact FP32 arithmetic


def default_cache_dir() -> Path | None:
    """~/.cache/volo-export/ort-tensorrt (XDG_CACHE_HOME respected; None: no home, no cache)."""
    return user_cache_dir("ort-tensorrt")


def provider_options(providers: Sequence[str], profile=None, cache_dir: Path | None = None) -> list:
    """ONNX Runtime's `providers=` list with options. TensorRT EP: engine and timing caches on,
    FP16/INT8 off (precision is already in the graph: FP16 conversion or Q/DQ), and the
    optimization profile (a `volo_export.trt.config.Profile`) as min/opt/max shapes."""
    from volo_export.trt.config import DEFAULT_OPT_LEVEL

    out: list = []
    for name in providers:
        if name == "TensorrtExecutionProvider":
            cache = cache_dir or default_cache_dir()
            opts = {"trt_fp16_enable": False, "trt_int8_enable": False,
                    "trt_engine_cache_enable": cache is not None, "trt_timing_cache_enable": cache is not None,
                    "trt_builder_optimization_level": DEFAULT_OPT_LEVEL}
            if cache is not None:
                opts.update(trt_engine_cache_path=str(cache), trt_timing_cache_path=str(cache))
            if profile is not None and not profile.fixed:
                for key, shape in (("min", profile.min), ("opt", profile.opt), ("max", profile.max)):
                    opts[f"trt_profile_{key}_shapes"] = f"{profile.input}:{'x'.join(map(str, shape))}"
            out.append((name, opts))
        else:
            out.append(name)
    return out


def _default_profile(model: Path):
    """The TensorRT EP's profile for an ONNX file: default batches (1/8/32) at its image size (from the
    input's shape, else the metadata); None for an ONNX that says neither (the EP then builds for the
    shapes it meets, e.g. `predict --model-name` on a foreign export)."""
    from volo_export.trt.config import BuildSettings, compute_profile, input_spec

    graph = load_graph(model)  # once: the spec and the metadata both come from it
    spec = input_spec(graph)
    size = spec.dims[-1] if isinstance(spec.dims[-1], int) and spec.dims[-1] > 0 else None
    if size is None:
        try:
            size = read_info(graph).preprocessing.size
        except MissingMetadata:
            return None
    return compute_profile(spec, size, BuildSettings())


def available_providers(requested: tuple[str, ...] | None = None) -> list[str]:
    """The requested providers (default: the preference order) that this ONNX Runtime build has."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    wanted = requested or PROVIDER_PREFERENCE
    chosen = [p for p in wanted if p in have]
    if not chosen:
        raise RuntimeUnavailable(f"none of the execution providers {', '.join(wanted)} is available in this "
                                 f"ONNX Runtime (it has {', '.join(have)})")
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
        if isinstance(model, Path):
            check_onnx_file(model)  # the external-data policy, before ONNX Runtime opens anything
        source = str(model) if isinstance(model, Path) else model
        self.name = str(model) if isinstance(model, Path) else "<in-memory model>"
        providers = available_providers(settings.providers)
        profile = (_default_profile(model)
                   if "TensorrtExecutionProvider" in providers and isinstance(model, Path) else None)
        try:
            self.session = ort.InferenceSession(source, opts,
                                                providers=provider_options(providers, profile, settings.cache_dir))
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types, not importable portably
            raise InputDataError(f"ONNX Runtime cannot load {self.name}: {first_line(e)}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.input_type = self.session.get_inputs()[0].type
        self.providers = self.session.get_providers()
        self.runtime = _RUNTIME_OF_PROVIDER.get(self.providers[0], Executor.ONNXRUNTIME_CPU)
        self.notices: list[str] = []

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> list[np.ndarray]:
        """Raw session run: named inputs -> the named outputs (all graph outputs when None), unconverted."""
        return self.session.run(outputs, feeds)

    @property
    def info(self) -> ArtifactInfo:
        """The artifact's volo_export metadata (raises InputDataError when it has none)."""
        info = ArtifactInfo.from_props(self.session.get_modelmeta().custom_metadata_map, self.name)
        check_input_shape(self.session.get_inputs()[0].shape, info, self.name)
        return info

    @property
    def input_shape(self) -> tuple:
        """The graph input's shape: ints for static dimensions, names for dynamic ones."""
        return tuple(self.session.get_inputs()[0].shape)

    @property
    def batch_range(self) -> BatchRange:
        """(n, n) for a static batch, (1, unbounded) for a dynamic one."""
        n = self.session.get_inputs()[0].shape[0]
        return BatchRange(n, n) if isinstance(n, int) else BatchRange()

    def describe(self) -> str:
        import onnxruntime as ort

        return f"ONNX Runtime {ort.__version__} {self.providers[0]}"

    def end_profiling(self) -> Path:
        """Stop ONNX Runtime's profiler (needs `profile_prefix`); returns its JSON trace file."""
        return Path(self.session.end_profiling())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self.input_type == "tensor(float16)" else np.float32
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=dtype)})[0]
        return out.astype(np.float32, copy=False)
