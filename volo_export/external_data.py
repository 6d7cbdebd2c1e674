"""The one policy for an ONNX file's external data (tensors stored in other files, `location` inside the
graph), applied before any reader sees the file: ours (`export.metadata.load_graph`) and every one we hand
the file to (ONNX Runtime and OpenVINO in `runtime/`, TensorRT's and TensorRT-RTX's parser in
`trt/parser.py`, the Triton repository copy in `serve/repository.py`).

A location must name a regular file inside the model's folder: relative, no `..` component, not escaping
through a symlink (a symlink that stays inside is fine), not a named pipe, device, socket or folder. This is
what ONNX itself checks since the external-data path-traversal advisories (CVE-2024-27318 and the ones
before it), done here so that readers without those checks (TensorRT's parser, a file copy) never meet a
file that fails it. The check and the reader's open are separate steps: a folder that someone else can
change in between is out of scope (SECURITY.md).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from volo_export.errors import InputDataError
from volo_export.io import file_kind


@dataclass(frozen=True)
class ExternalFile:
    """One external-data file of a model: `location` as the graph writes it (relative, '/'-separated) and
    the file it names."""

    location: str
    path: Path


def location_problem(location: str) -> str | None:
    """Why `location` is refused by its spelling alone (None: it is a plain relative path)."""
    if not location:
        return "an empty location"
    if PurePosixPath(location).is_absolute() or PureWindowsPath(location).is_absolute() or location.startswith("\\"):
        return "an absolute path"
    if ".." in PurePosixPath(location.replace("\\", "/")).parts:
        return "a '..' component"
    return None


def external_files(model, path: Path) -> tuple[ExternalFile, ...]:
    """The external-data files of ModelProto `model` read from `path`, each checked against the policy
    (module docstring); a one-line InputDataError naming the tensor's location otherwise."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    tensors = [t for t in _all_tensors(model) if uses_external_data(t)]
    locations = sorted({ExternalDataInfo(t).location for t in tensors})
    return tuple(checked_file(location, Path(path)) for location in locations)


def _all_tensors(model):
    """Initializers and node-attribute tensors of the main graph and every subgraph."""
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        yield from graph.initializer
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors
                graphs += [attribute.g] if attribute.HasField("g") else []
                graphs += list(attribute.graphs)


def checked_file(location: str, model_path: Path) -> ExternalFile:
    """One external-data `location` of the ONNX at `model_path`, checked against the policy (module docstring)."""
    where = f"{model_path}: external data {location!r}"
    problem = location_problem(location)
    if problem:
        raise InputDataError(f"{where} is {problem}; external data must be a file inside the model's folder")
    folder = model_path.resolve().parent
    target = folder / location
    if not os.path.lexists(target):
        raise InputDataError(f"{model_path}: its weights file {location} is not beside it")
    resolved = target.resolve()
    if not resolved.is_relative_to(folder):
        raise InputDataError(f"{where} leads outside the model's folder (to {resolved}, through a symlink); "
                             "external data must be a file inside the model's folder")
    mode = os.stat(resolved).st_mode
    if not stat.S_ISREG(mode):
        raise InputDataError(f"{where} is {file_kind(mode)}, not a regular file")
    return ExternalFile(location, resolved)
