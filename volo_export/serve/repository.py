"""Artifacts -> a Triton model repository.

For each artifact (one model directory each, named after the file unless `--name` says otherwise):

    NAME/config.pbtxt        ONNX: platform "onnxruntime_onnx" (CPU or GPU instances, optional TensorRT EP);
                             engine: platform "tensorrt_plan"; dims and max_batch_size from the artifact
                             (ONNX batch axis / engine profile), dynamic batching, version policy,
                             warm-up, and the artifact's volo_export.* metadata as `parameters`
    NAME/labels.txt          class names in index order: `label_filename`, so Triton's classification
                             extension (`class_count`) answers with names
    NAME/<version>/model.onnx | model.plan     the artifact, copied
  and with an image model (`image_model`):
    NAME_preprocess/         Python backend: encoded image bytes -> the artifact's own preprocessing (the one
                             implementation, `volo_export/preprocess.py`, vendored beside its model.py)
    NAME_image/              ensemble: image bytes -> NAME_preprocess -> NAME -> logits (with labels)

`serve` writes the same repository with one change (`local=True`): the network model runs in Triton's
Python backend through volo-export's own runner (`triton_models/network_model.py`, reading the artifact
in place), because the server binary of the nvidia-pytriton wheel has no ONNX Runtime or TensorRT backend.
Every config is a ModelConfig message (Triton's protobuf, from tritonclient) written in protobuf's text format,
and checked (`model_config.config_problems`, `check_repository`) before the repository is moved into place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path, PurePosixPath

from volo_export.artifact import ENGINE, ENGINE_SUFFIXES, artifact_kind
from volo_export.errors import InputDataError, UsageError
from volo_export.export.metadata import ArtifactInfo, load_graph, read_info
from volo_export.external_data import ExternalFile, external_files
from volo_export.labels import class_names
from volo_export.progress import SILENT, Progress
from volo_export.runtime.base import DEFAULT_BATCH, BatchRange
from volo_export.serve.model_config import check_repository, config_problems, model_config_pb2
from volo_export.trt.config import Profile, input_spec

# ONNX TensorProto element types -> Triton data types (the ones a VOLO artifact's image input and logits use).
ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16"}
# Triton's dynamic batcher waits this long for more requests before running a smaller batch; a lone request
# pays it. Chosen by measurement (docs/SERVING.md, "Why the served model is set up this way").
DEFAULT_QUEUE_DELAY_US = 100
DEVICES = ("cpu", "gpu")
IMAGE_INPUT = "image"  # the image model's input: one encoded image (BYTES) per batch row
LABELS_FILE = "labels.txt"
# The files of a version folder that an external-data file must not replace.
RESERVED_FILES = ("model.onnx", "model.plan", "model.py")
# The modules the preprocessing model needs: volo_export.preprocess and what it imports (numpy and Pillow
# aside). tests/test_triton_repo.py imports this copy alone (`python -I`), so a new import breaks a test.
VENDORED_MODULES = ("__init__.py", "errors.py", "io.py", "preprocess.py", "models/__init__.py", "models/variants.py")


@dataclass(frozen=True)
class Tensor:
    """One model input or output as Triton sees it: dims per batch row (all dims without batching)."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ArtifactSpec:
    """What a repository needs to know about one artifact, read without a runtime."""

    path: Path
    kind: str  # artifact.ONNX or artifact.ENGINE
    info: ArtifactInfo
    input: Tensor  # (3, S, S)
    output: Tensor  # (classes,)
    batch: BatchRange  # the batch sizes the artifact takes
    profile: Profile | None = None  # engines: the optimization profile
    side_files: tuple[ExternalFile, ...] = ()  # an ONNX's external weight files, copied where it names them


@dataclass(frozen=True)
class RepoSettings:
    """How to serve each artifact. `max_batch` None: the artifact's own limit (engine profile max), at most
    32. `preferred_batch` empty: engines prefer their profile's opt and max batch, ONNX models the largest
    batch the queue holds. `threads`: ONNX Runtime intra-op threads per instance (None: the backend's
    default). `image_model`: also the NAME_preprocess + NAME_image ensemble for encoded images."""

    name: str | None = None
    device: str | None = None  # None: ONNX on CPU, engines on GPU
    gpus: tuple[int, ...] = ()
    instances: int = 1
    max_batch: int | None = None
    preferred_batch: tuple[int, ...] = ()
    dynamic_batching: bool = True
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    tensorrt_ep: bool = False
    trt_cache_dir: str | None = None  # None: `default_trt_cache_dir()`
    version: int = 1
    warmup_batch: int = 1
    threads: int | None = None
    image_model: bool = False

    def __post_init__(self):
        if self.device not in (None, *DEVICES):
            raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for option, value, low in (("--instances", self.instances, 1), ("--version", self.version, 1),
                                   ("--max-queue-delay-us", self.max_queue_delay_us, 0),
                                   ("--warmup-batch", self.warmup_batch, 0)):
            if value < low:
                raise UsageError(f"{option} must be >= {low}, got {value}")
        if self.max_batch is not None and self.max_batch < 1:
            raise UsageError(f"--max-batch must be >= 1, got {self.max_batch}")
        if self.threads is not None and self.threads < 0:
            raise UsageError(f"--threads must be >= 0, got {self.threads}")
        if any(b < 1 for b in self.preferred_batch) or any(g < 0 for g in self.gpus):
            raise UsageError("--preferred-batch sizes must be >= 1 and --gpus indices >= 0")
        if self.tensorrt_ep and self.device != "gpu":
            raise UsageError("--tensorrt-ep is ONNX Runtime's TensorRT execution provider: it needs --device gpu")
        if self.gpus and self.device == "cpu":
            raise UsageError("--gpus needs --device gpu")
        if self.name is not None:
            check_model_name(self.name, "--name ")


@dataclass(frozen=True)
class ModelFiles:
    """One model directory: its ModelConfig and files (relative path -> bytes, or a file to copy)."""

    name: str
    role: str  # "network", "preprocess" or "ensemble"
    config: object  # inference.ModelConfig (tritonclient's model_config_pb2)
    files: Mapping[str, bytes | Path] = field(default_factory=dict)
    version: int = 1


@dataclass
class RepositoryResult:
    """A repository written by `write_repository`: its folder and its models (name, role, file)."""

    root: Path
    models: list[dict]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"repository": str(self.root), "models": self.models, "notes": self.notes}


# A model name is a folder of the repository: an identifier that starts with a letter, digit or '_' (so never
# '.', '..' or a hidden folder) and holds no path separator.
_VALID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_model_name(name: str, what: str = "") -> str:
    """`name` if it is a valid model name (see `_VALID_NAME`), else a one-line UsageError."""
    if not _VALID_NAME.fullmatch(name):
        raise UsageError(f"{what}{name!r}: use letters, digits, '_', '-' and '.', starting with a letter, digit "
                         "or '_' (a model name is a folder of the repository; at most 128 characters)")
    return name


# --------------------------------------------------------------------------- reading artifacts


def read_artifact_spec(path: Path) -> ArtifactSpec:
    """The I/O, batch range and metadata of a volo-export classifier (.onnx, or .engine + sidecar); anything
    else is a one-line InputDataError."""
    path = Path(path)
    if artifact_kind(path) == ENGINE:
        return _engine_spec(path)
    graph = load_graph(path)
    info = read_info(graph)
    initializers = {t.name for t in graph.graph.initializer}
    inputs = [v for v in graph.graph.input if v.name not in initializers]
    if len(inputs) != 1 or len(graph.graph.output) != 1:
        raise InputDataError(f"{path}: {len(inputs)} inputs and {len(graph.graph.output)} outputs; a volo-export "
                             "classifier has one image input and one logits output")
    image, logits = inputs[0], graph.graph.output[0]
    static = input_spec(graph).static_batch  # the image input's batch dim (initializers skipped)
    size = info.preprocessing.size
    in_shape, out_shape = _onnx_shape(image), _onnx_shape(logits)
    if len(in_shape) != 4 or tuple(in_shape[1:]) != (3, size, size) or len(out_shape) != 2 \
            or out_shape[1] != info.num_classes:
        raise InputDataError(f"{path}: input {in_shape} and output {out_shape} are not the (N, 3, {size}, {size}) -> "
                             f"(N, {info.num_classes}) of a volo-export classifier")
    return ArtifactSpec(path, "onnx", info, Tensor(image.name, _triton_type(image, path), (3, size, size)),
                        Tensor(logits.name, _triton_type(logits, path), (info.num_classes,)),
                        BatchRange() if static is None else BatchRange(static, static),
                        side_files=_external_data(graph, path))


def _external_data(graph, path: Path) -> tuple[ExternalFile, ...]:
    """The files an ONNX keeps its external weights in (inside its folder: `external_data.external_files`),
    copied into the repository at the same place relative to model.onnx."""
    files = external_files(graph, path)
    taken = [f.location for f in files if PurePosixPath(f.location).as_posix() in RESERVED_FILES]
    if taken:
        raise InputDataError(f"{path}: its external data file {taken[0]!r} would take the place of the model file "
                             "in the repository; save the weights under another name")
    return files


def _engine_spec(path: Path) -> ArtifactSpec:
    from volo_export.trt.provenance import read_sidecar, verify_plan_file

    provenance = read_sidecar(path)
    verify_plan_file(path, provenance)
    info, profile = provenance.info, provenance.profile  # info: the sidecar's image_size fits every profile shape
    lo, _, hi = profile.batches
    return ArtifactSpec(path, ENGINE, info, Tensor(provenance.input_name, "TYPE_FP32", tuple(profile.max[1:])),
                        Tensor(provenance.output_name, "TYPE_FP32", (info.num_classes,)), BatchRange(lo, hi), profile)


def _onnx_shape(value) -> list:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]


def _triton_type(value, path: Path) -> str:
    elem = value.type.tensor_type.elem_type
    if elem not in ONNX_TO_TRITON:
        raise InputDataError(f"{path}: tensor {value.name!r} has ONNX element type {elem}; serving takes float32 "
                             "or float16 tensors")
    return ONNX_TO_TRITON[elem]


def model_name(path: Path) -> str:
    """A Triton model name from an artifact's file name: `d1_fp16.onnx` -> `d1_fp16`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem).strip("_.-")[:100] or "volo"


# --------------------------------------------------------------------------- batching policy


def max_batch_size(spec: ArtifactSpec, asked: int | None) -> int:
    """Triton's max_batch_size for `spec`: 0 (no batching) for a static-batch artifact, else `asked` or the
    artifact's limit (at most 32). One-line UsageError when the artifact cannot take it."""
    batch = spec.batch
    what = "the engine profile" if spec.kind == ENGINE else "the ONNX"
    if batch.static:
        if asked not in (None, batch.lo):
            raise UsageError(f"{spec.path.name} has a static batch of {batch.lo}; --max-batch {asked} cannot apply "
                             "(re-export with a dynamic batch)")
        return 0
    if batch.lo > 1:
        raise UsageError(f"{what} of {spec.path.name} starts at batch {batch.lo}, but Triton sends any batch from 1: "
                         "rebuild it with --min-batch 1")
    if asked is None:
        return min(DEFAULT_BATCH, batch.hi or DEFAULT_BATCH)
    if batch.hi is not None and asked > batch.hi:
        raise UsageError(f"--max-batch {asked} is above {what} of {spec.path.name}, which takes at most batch "
                         f"{batch.hi}; use --max-batch {batch.hi} or rebuild the engine with --max-batch {asked}")
    return asked


def preferred_batches(spec: ArtifactSpec, settings: RepoSettings, max_batch: int) -> tuple[int, ...]:
    """The dynamic batcher's preferred sizes: the user's, else an engine's profile opt and max batch."""
    if settings.preferred_batch:
        over = [b for b in settings.preferred_batch if b > max_batch]
        if over:
            raise UsageError(f"--preferred-batch {over} above the max batch {max_batch}")
        return tuple(sorted(set(settings.preferred_batch)))
    if spec.profile is not None:
        return tuple(sorted({min(spec.profile.batches[1], max_batch), max_batch}))
    return ()


# --------------------------------------------------------------------------- ModelConfig messages


def _tensor(message, t: Tensor, labels: bool = False) -> None:
    """Fill a ModelInput/ModelOutput `message` from `t` (`labels`: Triton's classification labels file)."""
    message.name, message.data_type = t.name, model_config_pb2().DataType.Value(t.data_type)
    message.dims.extend(int(d) for d in t.dims)
    if labels:
        message.label_filename = LABELS_FILE


def _batched(t: Tensor, max_batch: int, rows: int) -> Tensor:
    """Without batching (max_batch_size 0) the batch axis is part of the dims."""
    return t if max_batch else Tensor(t.name, t.data_type, (rows, *t.dims))


def _new_config(name: str, max_batch: int, image: Tensor, output: Tensor, labels: bool, **head):
    """A ModelConfig: name, platform or backend (`head`), max_batch_size, one input and one output."""
    config = model_config_pb2().ModelConfig(name=name, max_batch_size=max_batch, **head)
    _tensor(config.input.add(), image)
    _tensor(config.output.add(), output, labels)
    return config


def _instances(config, settings: RepoSettings, kind: str) -> None:
    group = config.instance_group.add(count=settings.instances,
                                      kind=model_config_pb2().ModelInstanceGroup.Kind.Value(kind))
    if settings.gpus and kind == "KIND_GPU":
        group.gpus.extend(settings.gpus)


def _dynamic_batching(config, settings: RepoSettings, max_batch: int, preferred: Sequence[int] = ()) -> None:
    if settings.dynamic_batching and max_batch:
        config.dynamic_batching.preferred_batch_size.extend(preferred)
        config.dynamic_batching.max_queue_delay_microseconds = settings.max_queue_delay_us


def _warmup(config, t: Tensor, batch: int) -> None:
    if batch:
        warmup = config.model_warmup.add(name=f"warmup_batch{batch}", batch_size=batch)
        data = warmup.inputs[t.name]
        data.data_type, data.random_data = model_config_pb2().DataType.Value(t.data_type), True
        data.dims.extend(t.dims)


def default_trt_cache_dir() -> Path:
    """The TensorRT EP's engine cache when --trt-cache is not given: the user cache of whoever writes the
    repository. Not a fixed path in a world-writable /tmp, where another user could plant engines first."""
    from volo_export.io import user_cache_dir

    folder = user_cache_dir("tensorrt-ep")
    if folder is None:
        raise UsageError("--tensorrt-ep: no home folder to keep the engine cache in; give --trt-cache DIR")
    return folder.absolute()


def _tensorrt_ep(config, spec: ArtifactSpec, settings: RepoSettings, max_batch: int) -> None:
    """ONNX Runtime's TensorRT execution provider in Triton's onnxruntime backend. As in
    `runtime.onnxruntime_runner.provider_options`: precision is already in the graph (FP16 conversion or
    Q/DQ, both gated), so precision_mode stays FP32; engine and timing caches on; the batch profile."""
    shape = "x".join(str(d) for d in spec.input.dims)
    opt = max(1, max_batch // 2)
    cache = settings.trt_cache_dir or str(default_trt_cache_dir())
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
    accelerator.parameters.update({
        "precision_mode": "FP32", "max_workspace_size_bytes": str(4 << 30),
        "trt_engine_cache_enable": "1", "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "1", "trt_timing_cache_path": cache,
        "trt_profile_min_shapes": f"{spec.input.name}:1x{shape}",
        "trt_profile_opt_shapes": f"{spec.input.name}:{opt}x{shape}",
        "trt_profile_max_shapes": f"{spec.input.name}:{max(1, max_batch)}x{shape}"})


def network_config(spec: ArtifactSpec, settings: RepoSettings, name: str, local: bool = False):
    """The network model's ModelConfig. `local`: the same model in Triton's Python backend, running
    volo-export's runner on the artifact where it is (for `serve`)."""
    max_batch = max_batch_size(spec, settings.max_batch)
    rows = spec.batch.lo  # a static batch
    image, logits = _batched(spec.input, max_batch, rows), _batched(spec.output, max_batch, rows)
    if local:
        head, kind = {"backend": "python"}, "KIND_CPU"  # the runner picks its own device (TensorRT, CUDA or CPU)
    else:
        head = {"platform": "tensorrt_plan" if spec.kind == ENGINE else "onnxruntime_onnx"}
        kind = "KIND_GPU" if spec.kind == ENGINE or settings.device == "gpu" else "KIND_CPU"
    config = _new_config(name, max_batch, image, logits, True, **head)
    config.version_policy.latest.num_versions = 1
    _instances(config, settings, kind)
    _dynamic_batching(config, settings, max_batch, preferred_batches(spec, settings, max_batch) if max_batch else ())
    _warmup(config, image, min(settings.warmup_batch, max_batch or 1))
    if settings.tensorrt_ep and spec.kind != ENGINE and not local:
        _tensorrt_ep(config, spec, settings, max_batch or rows)
    params = dict(spec.info.to_props())  # the artifact's metadata: clients read preprocessing here
    if local:
        params.update(artifact=str(spec.path.resolve()), threads=str(settings.threads or 0))
    elif settings.threads is not None and kind == "KIND_CPU" and spec.kind != ENGINE:
        params["intra_op_thread_count"] = str(settings.threads)
    for key, value in params.items():
        config.parameters[key].string_value = value
    return config


def preprocess_config(spec: ArtifactSpec, settings: RepoSettings, name: str, max_batch: int):
    """The Python-backend preprocessing model's ModelConfig: one encoded image per row -> the network's input."""
    config = _new_config(name, max_batch, Tensor(IMAGE_INPUT, "TYPE_STRING", (1,)), spec.input, False,
                         backend="python")
    _instances(config, settings, "KIND_CPU")
    _dynamic_batching(config, settings, max_batch)
    return config


def ensemble_config(spec: ArtifactSpec, name: str, preprocess: str, network: str, max_batch: int):
    """The ensemble's ModelConfig: image bytes -> `preprocess` -> `network` -> logits (with labels)."""
    image, logits = spec.input.name, spec.output.name
    config = _new_config(name, max_batch, Tensor(IMAGE_INPUT, "TYPE_STRING", (1,)), spec.output, True,
                         platform="ensemble")
    for model, inputs, outputs in ((preprocess, {IMAGE_INPUT: IMAGE_INPUT}, {image: "preprocessed"}),
                                   (network, {image: "preprocessed"}, {logits: logits})):
        step = config.ensemble_scheduling.step.add(model_name=model, model_version=-1)
        step.input_map.update(inputs)
        step.output_map.update(outputs)
    return config


def config_text(config) -> str:
    """A ModelConfig as config.pbtxt (protobuf text format, as Triton reads it)."""
    from google.protobuf import text_format

    return text_format.MessageToString(config)


# --------------------------------------------------------------------------- models and files


def triton_model_source(name: str) -> bytes:
    """A Python-backend model file shipped in `volo_export/serve/triton_models/`."""
    return files("volo_export.serve.triton_models").joinpath(name).read_bytes()


def vendored_preprocessing() -> dict[str, Path]:
    """The one preprocessing implementation and the modules it imports, as files to copy under `volo_export/`."""
    import volo_export

    root = Path(volo_export.__file__).parent
    return {f"volo_export/{rel}": root / rel for rel in VENDORED_MODULES}


def repository_models(spec: ArtifactSpec, settings: RepoSettings, name: str, local: bool = False) -> list[ModelFiles]:
    """The model directories for one artifact (see the module docstring)."""
    version = str(settings.version)
    labels = ("\n".join(class_names(spec.info.labels, spec.info.num_classes)) + "\n").encode()
    body = ({f"{version}/model.py": triton_model_source("network_model.py")} if local else
            {f"{version}/model.plan" if spec.kind == ENGINE else f"{version}/model.onnx": spec.path,
             **{f"{version}/{PurePosixPath(f.location).as_posix()}": f.path for f in spec.side_files}})
    models = [ModelFiles(name, "network", network_config(spec, settings, name, local),
                         {LABELS_FILE: labels, **body}, settings.version)]
    if not settings.image_model:
        return models
    max_batch = max_batch_size(spec, settings.max_batch)
    if not max_batch:
        raise UsageError(f"{spec.path.name} has a static batch of {spec.batch.lo}: the image model needs a "
                         "dynamic batch (re-export without --batch)")
    preprocess, ensemble = f"{name}_preprocess", f"{name}_image"
    prep = spec.info.preprocessing
    numpy_dtype = {"TYPE_FP32": "float32", "TYPE_FP16": "float16"}[spec.input.data_type]
    preprocessing = json.dumps({**asdict(prep), "dtype": numpy_dtype}, indent=2).encode()
    vendored = {f"{version}/{rel}": source for rel, source in vendored_preprocessing().items()}
    models.append(ModelFiles(preprocess, "preprocess", preprocess_config(spec, settings, preprocess, max_batch),
                             {f"{version}/model.py": triton_model_source("preprocess_model.py"),
                              f"{version}/preprocessing.json": preprocessing, **vendored}, settings.version))
    models.append(ModelFiles(ensemble, "ensemble", ensemble_config(spec, ensemble, preprocess, name, max_batch),
                             {LABELS_FILE: labels}, settings.version))
    return models


def write_models(models: Sequence[ModelFiles], root: Path, progress: Progress = SILENT) -> dict[str, object]:
    """Check every ModelConfig (the rules beyond the protobuf, then the cross-model checks) and write every
    model directory under `root`; returns {name: ModelConfig}."""
    configs = {model.name: model.config for model in models}
    for name, config in configs.items():
        problems = config_problems(config)
        if problems:
            raise InputDataError(f"{name}/config.pbtxt: " + "; ".join(problems))
    check_repository(configs)
    for model in models:
        progress.stage(f"writing model {model.name} ({model.role})")
        folder = Path(root) / model.name
        (folder / str(model.version)).mkdir(parents=True)
        for rel, content in model.files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
        (folder / "config.pbtxt").write_text(config_text(model.config), encoding="utf-8")
    return configs


def plan_repository(artifacts: Sequence[Path], settings: RepoSettings) -> list[ModelFiles]:
    """Every model of a repository for `artifacts`, checked before anything is written."""
    if not artifacts:
        raise UsageError("give at least one artifact")
    if settings.name and len(artifacts) > 1:
        raise UsageError("--name names one model: give one artifact, or let the file names name them")
    specs = [read_artifact_spec(Path(a)) for a in artifacts]
    if settings.device == "cpu" and any(s.kind == ENGINE for s in specs):
        raise UsageError("a TensorRT plan runs on a GPU: --device cpu applies to ONNX artifacts only")
    models = [m for spec in specs
              for m in repository_models(spec, settings, settings.name or model_name(spec.path))]
    seen: dict[str, str] = {}
    for m in models:
        check_model_name(m.name)
        if m.name in seen:
            raise UsageError(f"two models would be named {m.name!r}; rename an artifact or use --name")
        seen[m.name] = m.role
    return models


def write_repository(artifacts: Sequence[Path], out: Path, settings: RepoSettings = RepoSettings(),
                     replace: bool = False, progress: Progress = SILENT) -> RepositoryResult:
    """`triton-repo`: a model repository for the NGC Triton server at `out`, written into a staging folder
    and moved into place only when every config passed its checks. `replace`: write into an existing
    repository, swapping out only the model folders being written (the repository's other models stay, and
    a source artifact inside a folder that would be replaced is refused)."""
    from volo_export.io import atomic_directory

    out = Path(out)
    models = plan_repository(artifacts, settings)
    if replace and out.is_dir():
        _replace_models(models, out, progress)
    else:
        with atomic_directory(out, replace) as staging:
            write_models(models, staging, progress)
    notes = []
    if any(m.role == "preprocess" for m in models):
        notes.append("the image models run Triton's Python backend: the server's Python needs numpy and Pillow "
                     "(NGC image: pip install pillow)")
    if any(f.endswith("model.plan") for m in models for f in m.files):
        notes.append("TensorRT plans load only on the TensorRT version and GPU they were built for: use the NGC "
                     "tritonserver release with that TensorRT (see the engine's .engine.json)")
    listed = [{"name": m.name, "role": m.role, "config": str(out / m.name / "config.pbtxt")} for m in models]
    return RepositoryResult(out, listed, notes)


def _sources(models: Sequence[ModelFiles]) -> list[Path]:
    """Every file the models are copied from, engine sidecars included."""
    from volo_export.trt.provenance import sidecar_path

    files = [p for m in models for p in m.files.values() if isinstance(p, Path)]
    return files + [sidecar_path(p) for p in files if p.suffix in ENGINE_SUFFIXES]


def _replace_models(models: Sequence[ModelFiles], out: Path, progress: Progress) -> None:
    """`--force` into the existing repository `out`: write the models into a staging folder beside it, then
    swap each model folder in (the previous one is removed once every swap is done, or put back)."""
    from volo_export.io import make_staging, remove_stale_staging

    replaced = [(out / m.name).resolve() for m in models]
    for source in _sources(models):
        inside = next((folder for folder in replaced if source.resolve().is_relative_to(folder)), None)
        if inside is not None:
            raise UsageError(f"--force would replace {inside}, which holds the source {source}; write the "
                             "repository elsewhere or move the artifact out first")
    remove_stale_staging(out.parent)
    staging, old = make_staging(out.name, out.parent), make_staging(out.name + "-replaced", out.parent)
    moved: list[str] = []
    try:
        write_models(models, staging, progress)
        for m in models:
            if os.path.lexists(out / m.name):
                os.replace(out / m.name, old / m.name)
            os.replace(staging / m.name, out / m.name)
            moved.append(m.name)
    except BaseException:
        for name in moved:  # put the previous model folders back
            shutil.rmtree(out / name, ignore_errors=True)
        for entry in old.iterdir():
            os.replace(entry, out / entry.name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)

