"""Every ```bash block of README.md and docs/*.md runs as written (in the spirit of Polygraphy's
tests/test_examples.py), so the documentation cannot drift from the tool.

- The blocks of one document run in order, in one temporary folder per document, which starts with what
  the documents assume is at hand: `volo_tiny_digits.onnx` (the trained tiny model's gated export, shared
  by the whole session) and the digits folders `digits/calib` and `digits/test` (class sub-folders).
- A block preceded by `<!-- example: skip: REASON -->` is skipped with that reason (a full-size model and
  its checkpoint, a GPU, an install). Every other block must use the tiny model: a block that does not
  and is not marked fails, so nothing is left unrun by accident.
- A block that exports (`volo-export onnx/quantize/bench`, the Python API's `export`) costs tens of
  seconds: it is `slow` (the full suite runs it; the fast lane runs the others).
- Each block runs under `bash -euo pipefail` with this checkout's `volo-export` and `python` first on PATH;
  it passes when it exits 0.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TINY = "volo_tiny_digits"
SKIP = re.compile(r"<!--\s*example:\s*skip:\s*(?P<reason>.*?)\s*-->")
HEAVY = re.compile(r"volo-export (onnx|quantize|bench)\b|\bve\.(export|quantize)\(")
BLOCK_TIMEOUT_S = 900


@dataclass(frozen=True)
class Example:
    document: Path
    line: int  # of the opening fence, 1-based
    code: str
    skip: str | None  # the reason given by a `<!-- example: skip: ... -->` line just above

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def bash_blocks(document: Path) -> list[Example]:
    """The ```bash blocks of a Markdown file, with the skip marker of the line above each (blank lines between
    are allowed)."""
    lines = document.read_text(encoding="utf-8").splitlines()
    examples, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            above = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            marker = SKIP.search(above)
            examples.append(Example(document, start + 1, "\n".join(lines[start + 1:end]) + "\n",
                                    marker.group("reason") if marker else None))
            i = end
        i += 1
    return examples


EXAMPLES = [e for d in DOCUMENTS for e in bash_blocks(d)]


def _param(example: Example):
    marks = [pytest.mark.slow] if example.skip is None and HEAVY.search(example.code) else []
    return pytest.param(example, id=example.id, marks=marks)


@pytest.fixture(scope="session")
def example_seeds(tiny_trained_onnx, digits_folders):
    """What every document's folder starts with."""
    return tiny_trained_onnx[0], digits_folders


_folders: dict[Path, Path] = {}


def _folder_for(document: Path, seeds, tmp_path_factory) -> Path:
    if document not in _folders:
        folder = tmp_path_factory.mktemp(document.stem.lower())
        onnx, (calib, test) = seeds
        shutil.copy(onnx, folder / "volo_tiny_digits.onnx")
        (folder / "digits").mkdir()
        shutil.copytree(calib, folder / "digits" / "calib")
        shutil.copytree(test, folder / "digits" / "test")
        _folders[document] = folder
    return _folders[document]


def test_the_documents_have_examples():
    assert len(EXAMPLES) >= 20 and any(e.skip is None for e in EXAMPLES)
    assert {e.document.name for e in EXAMPLES} >= {"README.md", "EXPORT.md", "PREDICT.md", "TENSORRT.md"}


def test_the_parser_reads_markers(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("a\n<!-- example: skip: needs a GPU -->\n\n```bash\nnvidia-smi\n```\n```bash\necho hi\n```\n"
                   "```console\nnot bash\n```\n")
    first, second = bash_blocks(doc)
    assert (first.skip, first.code, first.line) == ("needs a GPU", "nvidia-smi\n", 4)
    assert (second.skip, second.code) == (None, "echo hi\n")


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES])
def test_example(example: Example, example_seeds, tmp_path_factory):
    if example.skip is not None:
        pytest.skip(example.skip)
    assert TINY in example.code or "tiny" in example.code or "digits/" in example.code, (
        f"{example.id}: a bash block that does not use the tiny model ({TINY}) must be marked "
        "<!-- example: skip: REASON -->")
    folder = _folder_for(example.document, example_seeds, tmp_path_factory)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", example.code], cwd=folder, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, f"{example.id} exited {done.returncode}:\n{example.code}\n{done.stdout[-4000:]}"


def test_ci_runs_the_readme_test_command():
    """.ci/run ends with the exact test command of the README's one-command set-up (the full suite)."""
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (ROOT / "README.md").read_text()
    one_command = next(e.code.strip() for e in bash_blocks(ROOT / "README.md") if "pytest" in e.code and "venv" in e.code)
    assert one_command.endswith(" && " + ci) and '-m "slow or not slow"' in ci
    assert "python -m pytest -q\n" in readme  # the fast lane, stated beside it


def test_every_relative_link_of_the_documents_resolves():
    """README and docs link to files that exist (one click to every task, no dead link after a move)."""
    dead = []
    for document in DOCUMENTS:
        for target in re.findall(r"\]\(([^)\s]+)\)", document.read_text(encoding="utf-8")):
            path = target.split("#")[0]
            if path and not re.match(r"[a-z]+://", path) and not (document.parent / path).exists():
                dead.append(f"{document.relative_to(ROOT)} -> {target}")
    assert not dead
