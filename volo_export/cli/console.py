"""Where the CLI writes, and the one place library errors become messages and exit codes.

Results go to stdout (`stdout`), everything else (progress, notes, warnings,
errors) to stderr (`console`). A `VoloExportError` becomes one line
`error: <message>` and the error type's exit code (1 failure, 2 usage,
3 validation failed, 4 TensorRT check failed); a failed check's report is
shown first by the command's own renderer. An OSError (disk full, file too
large, read-only folder) is one line and exit 1. Parse errors are mapped in
`cli.OneLineErrors`. User-supplied text never goes through rich markup, and
output that is not a terminal is never cut at 80 columns.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from volo_export.errors import VerdictFailed, VoloExportError, first_line
from volo_export.progress import Progress

# Pipes and files get wide consoles: tables are never truncated there (a terminal keeps its width).
_PIPE_WIDTH = 1000
console = Console(stderr=True, log_path=False, width=None if sys.stderr.isatty() else _PIPE_WIDTH)
stdout = Console(width=None if sys.stdout.isatty() else _PIPE_WIDTH)


class ReaderGoneTolerant:
    """sys.stdout that, once its reader has gone (`volo-export models | head -1`, `... | true`), drops
    the rest of the output instead of failing: the command finishes its work (an export piped to `head`
    still writes its model) and exits with its own code. Installed by `cli.main`."""

    def __init__(self, stream):
        self._stream, self._gone = stream, False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        import os

        self._gone = True
        devnull = os.open(os.devnull, os.O_WRONLY)  # what is still buffered, and the exit's flush, go nowhere
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _prefixed(prefix: str, text: str) -> None:
    """`prefix` (rich markup) then `text` verbatim: user-supplied paths and messages are escaped, so
    '[v2]' or '[/]' in a file name prints as written."""
    console.print(f"{prefix} {escape(text)}", highlight=False, soft_wrap=True)


def note(text: str) -> None:
    _prefixed("[yellow]note:[/]", text)


def notice(text: str) -> None:
    _prefixed("[yellow]notice:[/]", text)


def warning(text: str) -> None:
    _prefixed("[bold yellow]warning:[/]", text)


class _Notices(Progress):
    """Progress for quick commands: no bars, notices and warnings printed when they come."""

    def notice(self, text: str) -> None:
        notice(text)

    def warning(self, text: str) -> None:
        warning(text)


NOTICES = _Notices()


def error_line(text: str) -> None:
    _prefixed("[red]error:[/]", text)


def result_line(text: str) -> None:
    """A line of the command's result on stdout, verbatim."""
    stdout.print(text, markup=False, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors(show_report: Callable[[object], None] | None = None) -> Iterator[None]:
    """Turn a VoloExportError into 'error: <message>' on stderr and its exit code. A failed verdict
    (gate, TensorRT check) carries its report: `show_report` renders it before the message."""
    try:
        yield
    except VoloExportError as e:
        if isinstance(e, VerdictFailed) and e.report is not None and show_report is not None:
            try:
                show_report(e.report)  # may write --report: a disk that says no must not hide the verdict
            except (VoloExportError, OSError) as report_error:
                error_line(f"the report was not written: {first_line(report_error)}")
        error_line(str(e))
        raise typer.Exit(e.exit_code) from None
    except OSError as e:  # the machine said no: disk full, file too large, read-only, permissions
        error_line(f"{e.strerror or e}: {e.filename}" if e.filename else f"{e.strerror or e}")
        raise typer.Exit(1) from None
