"""Run one function of volo_export in a fresh Python process and read back its one-line JSON answer
(the ISA probes and the per-backend memory probe: each needs a process of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_child(function: str, argument: str, timeout_s: float) -> tuple[object, str | None]:
    """Run `from MODULE import NAME; NAME(argument)` (`function` is "MODULE:NAME") in a child Python with this
    process's sys.path as PYTHONPATH. Returns (the JSON of its last stdout line, None), or (None, why not:
    "took over N s", or "failed: " and its last stderr line or exit code), for "<what> {why}" messages."""
    module, name = function.split(":")
    try:
        child = subprocess.run([sys.executable, "-c", f"import sys; from {module} import {name}; {name}(sys.argv[1])",
                                argument], capture_output=True, text=True, timeout=timeout_s,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    except subprocess.TimeoutExpired:
        return None, f"took over {timeout_s:.0f} s"
    if child.returncode != 0:
        return None, f"failed: {(child.stderr.strip().splitlines() or [f'exit code {child.returncode}'])[-1][:200]}"
    lines = child.stdout.strip().splitlines()
    if not lines:
        return None, "failed: it printed nothing"
    return json.loads(lines[-1]), None
