"""The precision, target and runtime names are spelled in one vocabulary (`volo_export.names`).

A string literal equal to one of those names may appear only in the vocabulary, a precision form's own
module and the tolerance table; every other module uses the `names` members. The few literals below are
other things that happen to be spelled the same (a library's import name, OpenVINO's own hint names,
a torch device, a JSON field): each is listed with what it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import volo_export
from volo_export.names import Executor, Precision, Runtime, Target

PACKAGE = Path(volo_export.__file__).parent
NAMES = {str(m) for kind in (Precision, Target, Runtime, Executor) for m in kind}
ALLOWED_MODULES = {"names.py", "tolerances.py"}
FORMS = "precision/forms/"
# (module, literal): what the literal means there (not a precision/target/runtime name of volo-export).
OTHER_MEANINGS = {
    ("runtime/openvino_runner.py", "bf16"): "OpenVINO's own INFERENCE_PRECISION_HINT value",
    ("runtime/openvino_runner.py", "openvino"): "the per-user cache folder's name",
    ("runtime/auto.py", "onnxruntime"): "a Python distribution whose version keys the cached verdict",
    ("runtime/auto.py", "openvino"): "a Python distribution whose version keys the cached verdict",
    ("runtime/auto.py", "cpu"): "a JSON field (the CPU model)",
    ("export/metadata.py", "onnxruntime"): "a Python distribution recorded in the metadata",
    ("bench/machine.py", "onnxruntime"): "a Python distribution recorded in the environment",
    ("bench/machine.py", "openvino"): "a Python distribution recorded in the environment",
    ("bench/machine.py", "tensorrt"): "a Python distribution recorded in the environment",
    ("bench/machine.py", "cpu"): "a JSON field (the CPU model)",
    ("bench/report.py", "cpu"): "a JSON field (the CPU model)",
    ("serve/loadtest.py", "cpu"): "a JSON field (the CPU model)",
    ("models/checkpoint.py", "cpu"): "torch's device name",
    ("serve/repository.py", "cpu"): "Triton's instance kind (KIND_CPU) as --device",
    ("cli/triton_repo.py", "cpu"): "Triton's instance kind (KIND_CPU) as --device",
    ("trt/products.py", "tensorrt"): "the TensorRT product's Python module and --trt-runtime choice",
    ("trt/products.py", "tensorrt-rtx"): "the TensorRT-RTX product's name",
    ("trt/environment.py", "tensorrt"): "the TensorRT library's file name",
    ("trt/infer.py", "tensorrt"): "the TensorRT Python module",
    ("trt/rtx.py", "tensorrt-rtx"): "TensorRT-RTX's runtime cache folder",
    ("trt/config.py", "tensorrt"): "the TensorRT product (trt.products), not a runtime choice",
    **{(module, "auto"): "the TensorRT product choice (--trt-runtime, trt.products.RUNTIME_CHOICES)"
       for module in ("trt/products.py", "trt/config.py", "trt/check.py", "trt/parser.py", "cli/engine.py", "api.py")},
    ("serve/repository.py", "tensorrt"): "Triton's execution accelerator name (--tensorrt-ep)",
}
# Modules whose data types are spelled like precisions (GEMM element types, TensorRT layer precisions).
DTYPE_MODULES = {"trt/layers.py", "trt/products.py", "bench/isa.py", "bench/limits.py", "bench/report.py"}


def _literals(path: Path) -> set[str]:
    """String constants of a module that equal a vocabulary name, docstrings and f-string text excluded."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES
            and id(node) not in docstrings}


def _offending() -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in ALLOWED_MODULES or module.startswith(FORMS):
            continue
        dtypes = {str(p) for p in Precision} if module in DTYPE_MODULES else set()
        left = {lit for lit in _literals(path) if (module, lit) not in OTHER_MEANINGS and lit not in dtypes}
        if left:
            found[module] = left
    return found


def test_names_are_spelled_only_in_the_vocabulary_the_forms_and_the_tolerances():
    assert _offending() == {}


def test_the_scan_finds_a_name_spelled_elsewhere(tmp_path, monkeypatch):
    (tmp_path / "stray.py").write_text('"""int8 in a docstring is fine."""\nX = "int8"\n')
    assert _literals(tmp_path / "stray.py") == {"int8"}


@pytest.mark.parametrize("kind", [Precision, Target, Runtime, Executor])
def test_names_are_their_strings(kind):
    for member in kind:
        assert kind(str(member)) is member and member == str(member) and f"{member}" == member.value
