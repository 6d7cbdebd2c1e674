"""`volo-export CMD --help | cat`: help printed to a pipe shows every option name in full (rich cuts a
non-terminal at 80 columns otherwise: `--hardware-comp…`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer.main

from volo_export.cli import app

COMMANDS = typer.main.get_command(app).commands


def _help_in_a_pipe(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("TERMINAL_WIDTH", "COLUMNS")}
    done = subprocess.run([sys.executable, "-c", "from volo_export.cli import main; main()", *args, "--help"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_name_is_shown_in_full(name):
    shown = _help_in_a_pipe(name)
    names = [opt for p in COMMANDS[name].params if p.param_type_name == "option"
             for opt in (*p.opts, *p.secondary_opts)]
    assert names and "--help" in shown
    missing = [opt for opt in names if opt not in shown.replace("│", " ").split()]
    assert not missing, f"{name} --help | cat lacks {missing}"
    assert "…" not in shown


def test_the_top_level_help_lists_every_command():
    shown = _help_in_a_pipe()
    assert all(name in shown for name in COMMANDS) and "…" not in shown
