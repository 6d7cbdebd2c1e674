"""The `volo_export.*` metadata every artifact carries, so it can be run,
validated or benchmarked alone (preprocessing, classes, provenance)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from volo_export.errors import InputDataError, first_line
from volo_export.names import ANY_TARGET, Precision
from volo_export.models.variants import Preprocessing, VoloConfig

PREFIX = "volo_export."
MAX_CLASSES = 1_000_000  # ImageNet-21k has 21843; the class list is held in memory for every prediction


class MissingMetadata(InputDataError):
    """A model that carries no volo-export metadata at all (a foreign export: `--model-name` may speak
    for it). Metadata that is there but wrong is a plain InputDataError: nothing speaks over it."""


@dataclass(frozen=True)
class ArtifactInfo:
    """What an exported model is: the contract stored in ONNX metadata_props and engine sidecars."""

    model: str
    preprocessing: Preprocessing
    num_classes: int
    labels: str
    precision: str = Precision.FP32
    target: str = ANY_TARGET
    opset: int | None = None
    checkpoint_sha256: str | None = None
    random_weights: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_model(cls, config: VoloConfig, checkpoint_sha256: str | None, opset: int) -> "ArtifactInfo":
        return cls(model=config.name, preprocessing=config.preprocessing, num_classes=config.num_classes,
                   labels=config.labels, opset=opset, checkpoint_sha256=checkpoint_sha256,
                   random_weights=checkpoint_sha256 is None,
                   versions={k: v for k, v in library_versions().items() if v is not None})

    def to_props(self) -> dict[str, str]:
        """Flat string map for ONNX metadata_props (values JSON-encoded where not plain strings)."""
        p = self.preprocessing
        props = {
            "model": self.model, "image_size": str(p.size), "crop_pct": repr(p.crop_pct),
            "interpolation": p.interpolation, "mean": json.dumps(list(p.mean)), "std": json.dumps(list(p.std)),
            "num_classes": str(self.num_classes), "labels": self.labels, "precision": self.precision,
            "target": self.target, "opset": str(self.opset), "checkpoint_sha256": self.checkpoint_sha256 or "",
            "random_weights": json.dumps(self.random_weights), "versions": json.dumps(self.versions, sort_keys=True),
        }
        props.update(self.extra)
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: dict[str, str], source: str = "model") -> "ArtifactInfo":
        own = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if "model" not in own:
            raise MissingMetadata(f"{source} carries no volo-export metadata (was it exported by volo-export?)")
        try:
            prep = Preprocessing(size=int(own.pop("image_size")), crop_pct=float(own.pop("crop_pct")),
                                 interpolation=own.pop("interpolation"),
                                 mean=tuple(json.loads(own.pop("mean"))), std=tuple(json.loads(own.pop("std"))))
            opset = own.pop("opset")
            return cls(model=own.pop("model"), preprocessing=prep, num_classes=int(own.pop("num_classes")),
                       labels=own.pop("labels"), precision=own.pop("precision"), target=own.pop("target"),
                       opset=int(opset) if opset not in ("", "None") else None,
                       checkpoint_sha256=own.pop("checkpoint_sha256") or None,
                       random_weights=json.loads(own.pop("random_weights")),
                       versions=json.loads(own.pop("versions")), extra=own)
        except (KeyError, TypeError, ValueError) as e:
            raise InputDataError(f"{source} has incomplete volo-export metadata ({type(e).__name__}: {e})") from None
        except InputDataError as e:  # Preprocessing's own check (models.variants.preprocessing_problem)
            raise InputDataError(f"{source} has bad volo-export metadata ({e})") from None

    def __post_init__(self) -> None:
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or \
                not 1 <= self.num_classes <= MAX_CLASSES:
            raise InputDataError(f"num_classes {self.num_classes!r} is not a whole number in 1..{MAX_CLASSES}")

    def to_dict(self) -> dict:
        return asdict(self)


ARTIFACT_LIBRARIES = ("volo-export", "torch", "onnx", "onnxruntime", "onnxscript")  # what shapes an artifact


def library_versions(names: Sequence[str] = ARTIFACT_LIBRARIES) -> dict[str, str | None]:
    """The installed version of each distribution in `names` (in that order), None where it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def graph_sha256(model_proto) -> str:
    """Hash of the graph (nodes and weights), not of the metadata: what outputs and activations depend on.
    Lowered artifacts record their FP32 source's as `fp32_graph_sha256`; calibration caches key on it."""
    return hashlib.sha256(model_proto.graph.SerializeToString(deterministic=True)).hexdigest()


def write_info(model_proto, info: ArtifactInfo) -> None:
    """Replace the model's volo_export.* metadata_props with `info`."""
    keep = [(p.key, p.value) for p in model_proto.metadata_props if not p.key.startswith(PREFIX)]
    del model_proto.metadata_props[:]
    for key, value in keep + sorted(info.to_props().items()):
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value


def load_graph(path: Path):
    """The ModelProto of an ONNX file without its external weights; one-line errors for bad files."""
    import onnx
    from google.protobuf.message import DecodeError

    from volo_export.external_data import external_files
    from volo_export.io import input_file

    path = Path(path)
    if path.is_dir():
        raise InputDataError(f"{path} is a folder, not an ONNX model")
    input_file(path, "model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as e:
        raise InputDataError(f"{path} is not an ONNX model: {type(e).__name__}") from None
    if not model.graph.node and not model.opset_import:  # an empty file parses as an empty ModelProto
        what = "an empty file" if path.stat().st_size == 0 else "no graph"
        raise InputDataError(f"{path} is not an ONNX model ({what})")
    external_files(model, path)  # the external-data policy, before any reader sees the file
    return model


def check_onnx_file(path: Path) -> tuple:
    """`external_data`'s policy for an ONNX file about to be handed to another reader (ONNX Runtime, OpenVINO,
    TensorRT's parser), as its ExternalFiles (cached per file version, so opening
    the same model again does not parse it again; the files are checked every time)."""
    path = Path(path)
    if not os.path.lexists(path):
        return ()  # nothing to hand over: the reader says it is missing, in its own words
    from volo_export.external_data import checked_file
    from volo_export.io import input_file

    st = input_file(path, "model").stat()  # a named pipe would block the reader
    return tuple(checked_file(location, path) for location in _locations(str(path.resolve()), st.st_mtime_ns,
                                                                         st.st_size, st.st_ino))


@lru_cache(maxsize=64)
def _locations(path: str, mtime_ns: int, size: int, inode: int) -> tuple[str, ...]:
    from volo_export.external_data import external_files

    return tuple(f.location for f in external_files(load_graph(Path(path)), Path(path)))


def load_model(path: Path):
    """The ModelProto of an ONNX file with its external weights; a weights file that cannot be read or
    that onnx refuses (outside the model's folder, ...) is a one-line InputDataError."""
    import onnx

    graph = load_graph(path)  # the file's own checks first
    try:
        onnx.load_external_data_for_model(graph, str(Path(path).parent))
    except (onnx.checker.ValidationError, OSError, ValueError) as e:
        raise InputDataError(f"{path}: its external weights cannot be loaded: {first_line(e)}") from None
    return graph


def info_or_variant(read: Callable[[], ArtifactInfo], model_name: str | None, source: str,
                    input_shape: Sequence | None = None) -> ArtifactInfo:
    """What an artifact says about itself (`read()`); for an ONNX without volo-export metadata (timm's
    `onnx_export.py`, a plain `torch.onnx.export`), `model_name` (a registered variant) supplies the
    preprocessing, labels and class count instead. `model_name` on an artifact that has metadata is a
    UsageError: its own metadata is the truth. `input_shape` (the graph's input, when known) must take
    the variant's images."""
    from volo_export.errors import UsageError
    from volo_export.models.variants import get_config

    try:
        own = read()
    except MissingMetadata:  # a foreign export; metadata that is there but wrong stays an error
        if model_name is None:
            raise
        config = get_config(model_name)  # the registered variant speaks for it
        info = ArtifactInfo(model=config.name, preprocessing=config.preprocessing,
                            num_classes=config.num_classes, labels=config.labels)
        if input_shape is not None:
            check_input_shape(input_shape, info, f"{Path(source).name} (read as --model-name {model_name})")
        return info
    if model_name is not None:
        raise UsageError(f"{Path(source).name} carries volo-export metadata (model {own.model}): --model-name is "
                         "for ONNX files without it")
    return own


def read_info(model: "Path | object") -> ArtifactInfo:
    """ArtifactInfo of an ONNX file or ModelProto (weights are not loaded for a path)."""
    source = "model"
    if isinstance(model, (str, Path)):
        model, source = load_graph(Path(model)), str(model)
    info = ArtifactInfo.from_props({p.key: p.value for p in model.metadata_props}, source)
    check_input_shape(graph_input_shape(model), info, source)
    return info


def graph_input_shape(model_proto) -> tuple[int | str, ...]:
    """The first real graph input's shape (initializers listed as inputs are skipped): ints for static
    dimensions, names (or "?") for dynamic ones."""
    initializers = {t.name for t in model_proto.graph.initializer}
    inputs = [v for v in model_proto.graph.input if v.name not in initializers]
    if not inputs:
        return ()
    dims = inputs[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def check_input_shape(shape, info: ArtifactInfo, source: str) -> None:
    """A one-line InputDataError unless `shape` (a graph input's, dynamic dims as str or None) takes the
    (N, 3, S, S) images that `info`'s preprocessing makes."""
    size = info.preprocessing.size
    static = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(static) != 4 or any(want is not None and got is not None and got != want
                               for got, want in zip(static[1:], (3, size, size))):
        shown = "(" + ", ".join(str(d) for d in shape) + ")"
        raise InputDataError(f"{source}: its input has shape {shown}, but its preprocessing makes "
                             f"(N, 3, {size}, {size}) images (image_size {size})")

