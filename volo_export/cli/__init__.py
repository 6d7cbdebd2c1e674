"""The `volo-export` command line: one small module per command, composed here; no logic.

Heavy libraries (torch, onnx, onnxruntime, tensorrt) are imported inside the commands
so `--help` is instant. Library errors become one line on stderr and an exit code in
`console.user_errors`, the only place that maps them.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
import typer.rich_utils
from typer.core import TyperGroup

from volo_export.cli import bench, check, engine, export, models, predict, preprocess, quantize, validate
from volo_export.cli import loadtest, serve, triton_repo
from volo_export.cli.console import ReaderGoneTolerant, error_line


# Help printed to a pipe or file (`volo-export engine --help | less`) is as wide as it needs to be: rich would
# cut it at 80 columns, option names included. A terminal keeps its own width; TERMINAL_WIDTH still wins.
HELP_PIPE_WIDTH = 160
if typer.rich_utils.MAX_WIDTH is None and not sys.stdout.isatty():
    typer.rich_utils.MAX_WIDTH = HELP_PIPE_WIDTH

# The click that typer runs on (typer >= 0.29 vendors its own copy): its exception classes.
_click = sys.modules[typer.BadParameter.__module__]


class Terminated(BaseException):
    """SIGTERM, raised where the process is (a BaseException, like KeyboardInterrupt for SIGINT, so no
    `except Exception` swallows it): staging folders are removed on the way out as for Ctrl-C."""


# What an interrupted run leaves: no output; the caches it filled on the way stay, since they are checked when
# read (a calibration finished before the signal is kept for the next `quantize`).
NOTHING_WRITTEN = "no output was written (caches filled so far, such as a finished calibration, are kept)"


def _terminate(signum, frame):
    raise Terminated()


class OneLineErrors(TyperGroup):
    """Usage errors found while parsing (unknown option, bad value, missing argument) read like the
    tool's own errors: one `error:` line and exit 2, instead of click's boxed panel. Help stays rich."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _click.ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # `volo-export` or a command with no arguments
                typer.echo(e.ctx.get_help())
                code = 0
            else:
                where = e.ctx.command_path if getattr(e, "ctx", None) else "volo-export"
                error_line(f"{e.format_message()} (see {where} --help)")
                code = e.exit_code
        except typer.Abort:
            error_line("aborted")
            code = 1
        except Terminated:
            error_line(f"terminated (SIGTERM): {NOTHING_WRITTEN}")
            code = 128 + signal.SIGTERM
        code = code if isinstance(code, int) else 0
        if code == 130:  # typer turned Ctrl-C (KeyboardInterrupt) into exit 130; staging folders are already gone
            error_line(f"interrupted (Ctrl-C): {NOTHING_WRITTEN}")
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrors,
    name="volo-export",
    help="Export VOLO vision transformers to validated ONNX (and beyond).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"volo-export {version('volo-export')}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Export VOLO vision transformers to validated ONNX (and beyond)."""


for name, module in (("onnx", export), ("quantize", quantize), ("models", models), ("preprocess", preprocess),
                     ("check", check), ("engine", engine), ("validate", validate), ("predict", predict),
                     ("bench", bench), ("triton-repo", triton_repo), ("serve", serve), ("loadtest", loadtest)):
    app.command(name)(module.command)


def _private_home_if_missing() -> None:
    """HOME names a folder that does not exist: volo-export keeps no cache then (`io.user_cache_dir`), but
    ONNX Runtime (its device id under ~/.cache) and OpenVINO (~/intel) would create it, as root anywhere. They
    get a private temporary home for this run instead, removed at exit."""
    import atexit
    import os
    import shutil
    import tempfile

    home = os.environ.get("HOME")
    if home and not os.path.isdir(home):
        os.environ["HOME"] = private = tempfile.mkdtemp(prefix="volo-export-home-")
        atexit.register(shutil.rmtree, private, ignore_errors=True)


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    for stream in (sys.stdout, sys.stderr):  # a file name the terminal's encoding cannot show (PYTHONIOENCODING=
        reconfigure = getattr(stream, "reconfigure", None)  # ascii) is printed escaped, not a UnicodeEncodeError
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    _private_home_if_missing()
    sys.stdout = ReaderGoneTolerant(sys.stdout)
    app()
