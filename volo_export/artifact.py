"""What an artifact file is and what it says about itself, without loading a runtime.

An artifact is an ONNX file (its `volo_export.*` metadata_props) or a TensorRT
plan `X.engine` with its sidecar `X.engine.json` (the same metadata, plus
provenance). Reading either needs only `onnx` / `json`: preprocessing, labels
and the rest come from here for predict, preprocess, validate and serving alike.
"""

from __future__ import annotations

from pathlib import Path

from volo_export.errors import InputDataError
from volo_export.export.metadata import ArtifactInfo, read_info
from volo_export.trt.provenance import ENGINE_SUFFIXES, SIDECAR_SUFFIX, read_sidecar

ONNX_SUFFIX = ".onnx"

ONNX, ENGINE = "onnx", "engine"


def artifact_kind(path: Path) -> str:
    """"onnx" or "engine" by the file name; anything else is a one-line InputDataError."""
    path = Path(path)
    if path.suffix == ONNX_SUFFIX:
        return ONNX
    if path.suffix in ENGINE_SUFFIXES:
        return ENGINE
    raise InputDataError(f"{path}: unsupported artifact type {path.suffix!r} "
                         f"(expected {ONNX_SUFFIX} or {'/'.join(ENGINE_SUFFIXES)})")


def read_artifact_info(path: Path) -> ArtifactInfo:
    """ArtifactInfo of an ONNX file, a TensorRT plan `X.engine` or its sidecar `X.engine.json`."""
    path = Path(path)
    if path.name.endswith(SIDECAR_SUFFIX) and Path(path.name[:-len(SIDECAR_SUFFIX)]).suffix in ENGINE_SUFFIXES:
        return read_sidecar(path.with_name(path.name[:-len(SIDECAR_SUFFIX)])).info
    if artifact_kind(path) == ENGINE:
        return read_sidecar(path).info
    return read_info(path)
