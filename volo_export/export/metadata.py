"""The `volo_export.*` metadata every artifact carries, so it can be run,
validated or benchmarked alone (preprocessing, classes, provenance)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volo_export.errors import InputDataError
from volo_export.models.variants import Preprocessing, VoloConfig

PREFIX = "volo_export."


@dataclass(frozen=True)
class ArtifactInfo:
    """What an exported model is: the contract stored in ONNX metadata_props and engine sidecars."""

    model: str
    preprocessing: Preprocessing
    num_classes: int
    labels: str
    precision: str = "fp32"
    target: str = "any"
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
            raise InputDataError(f"{source} carries no volo-export metadata (was it exported by volo-export?)")
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

    path = Path(path)
    if path.is_dir():
        raise InputDataError(f"{path} is a folder, not an ONNX model")
    if not path.is_file():
        raise InputDataError(f"model not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as e:
        raise InputDataError(f"{path} is not an ONNX model: {type(e).__name__}") from None
    if not model.graph.node and not model.opset_import:  # an empty file parses as an empty ModelProto
        what = "an empty file" if path.stat().st_size == 0 else "no graph"
        raise InputDataError(f"{path} is not an ONNX model ({what})")
    return model


def info_or_variant(read: Callable[[], ArtifactInfo], model_name: str | None, source: str) -> ArtifactInfo:
    """What an artifact says about itself (`read()`); for an ONNX without volo-export metadata (timm's
    `onnx_export.py`, a plain `torch.onnx.export`), `model_name` (a registered variant) supplies the
    preprocessing, labels and class count instead. `model_name` on an artifact that has metadata is a
    UsageError: its own metadata is the truth."""
    from volo_export.errors import UsageError
    from volo_export.models.variants import get_config

    try:
        own = read()
    except InputDataError:
        if model_name is None:
            raise
        config = get_config(model_name)  # no volo-export metadata: the registered variant speaks for it
        return ArtifactInfo(model=config.name, preprocessing=config.preprocessing,
                            num_classes=config.num_classes, labels=config.labels)
    if model_name is not None:
        raise UsageError(f"{Path(source).name} carries volo-export metadata (model {own.model}): --model-name is "
                         "for ONNX files without it")
    return own


def read_info(model: "Path | object") -> ArtifactInfo:
    """ArtifactInfo of an ONNX file or ModelProto (weights are not loaded for a path)."""
    source = "model"
    if isinstance(model, (str, Path)):
        model, source = load_graph(Path(model)), str(model)
    return ArtifactInfo.from_props({p.key: p.value for p in model.metadata_props}, source)

