"""File helpers: atomic writes, content hashes, the user cache folder.

Every artifact is written into a private staging folder next to its destination and
moved into place (`os.replace`, atomic on one file system) only when everything that
belongs to it was written and checked. A staging folder is named after the process that
owns it (`.NAME.volo-export-PID-START.XXXX`), so one left behind by a process that was
killed (SIGKILL cannot be handled) is recognised and removed by the next write into that
folder, while another live process's staging is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from volo_export.errors import InputDataError, UsageError

_STAGING = re.compile(r"^\..+\.volo-export-(\d+)-(\d+)\.[^.]+$")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_kind(mode: int) -> str:
    """'a folder', 'a named pipe', ... for a stat mode that is not a regular file."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def input_file(path: Path, what: str, error: type[Exception] = InputDataError) -> Path:
    """`path` if it is a regular file (after symlinks); else one `error` line: "WHAT not found: PATH", or
    what it is instead (a folder, a named pipe that would block the read, a device)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as e:
        raise error(f"{what} {path} cannot be read: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        raise error(f"{what} {path} is {file_kind(mode)}, not a file")
    return path


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


def distinct_outputs(inputs: Mapping[str, Path | Sequence[Path] | None],
                     outputs: Mapping[str, Path | None]) -> None:
    """The one rule for every command that writes: no output is one of its inputs or another of its
    outputs (after symlinks and hard links), so a run never replaces what it reads or loses one of its own
    results. {option: path(s)}, None for an option not given; a one-line UsageError otherwise."""
    named_inputs = [(option, Path(p)) for option, given in inputs.items() if given is not None
                    for p in ([given] if isinstance(given, (str, Path)) else given)]
    seen: list[tuple[str, Path]] = []
    for option, given in outputs.items():
        if given is None:
            continue
        path = Path(given)
        for other, earlier in named_inputs + seen:
            if _same_file(path, earlier):
                role = "input" if (other, earlier) in named_inputs else "output"
                raise UsageError(f"{option} {path} must differ from {role} {other}: an output never replaces an "
                                 "input or another output of the same run")
        seen.append((option, path))


def user_cache_dir(name: str) -> Path | None:
    """~/.cache/volo-export/<name> (XDG_CACHE_HOME respected); not created here. None when there is no home
    to keep it in (XDG_CACHE_HOME unset and HOME missing or not a folder): every cache is optional, and a
    tool has no business creating a home folder (as root it would)."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "volo-export" / name
    try:
        home = Path.home()
    except (KeyError, RuntimeError):  # no HOME and no passwd entry
        return None
    return home / ".cache" / "volo-export" / name if home.is_dir() else None


def ensure_writable(path: Path) -> Path:
    """Fail early (before minutes of work) when `path` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"output {path} is a directory; give a file name")
    if not parent.is_dir():
        raise UsageError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"output folder {parent} is not writable")
    return path


def process_start(pid: int) -> int:
    """When process `pid` started (clock ticks since boot, Linux /proc), 0 where unknown. With the pid it
    names a process uniquely: a pid reused by a later process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22 (starttime); fields after the comm's ")"


def _alive(pid: int, start: int) -> bool:
    if Path("/proc/self/stat").exists():
        return process_start(pid) == start != 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove staging folders in `folder` whose owning process is gone; returns what was removed."""
    removed = []
    for entry in Path(folder).iterdir():
        match = _STAGING.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match[1]), int(match[2])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def make_staging(name: str, folder: Path) -> Path:
    """A new private folder `.NAME.volo-export-PID-START.XXXX` in `folder`, owned by this process: once
    the process is gone, `remove_stale_staging(folder)` removes it."""
    owner = f"volo-export-{os.getpid()}-{process_start(os.getpid())}"
    return Path(tempfile.mkdtemp(prefix=f".{name}.{owner}.", dir=folder))


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path in a private folder beside `path`; on success move every file
    written there next to `path` (the file itself, external-data side files), else delete them.

    So a failed or interrupted step never leaves a file at `path` that looks valid.
    """
    path = ensure_writable(path)
    remove_stale_staging(path.parent)
    staging = make_staging(path.name, path.parent)
    try:
        yield staging / path.name
        for item in staging.iterdir():
            os.replace(item, path.parent / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: Path, data, indent: int = 2) -> None:
    """`data` (JSON-able, or a result with `to_dict()`) as indented JSON with a trailing newline at `path`,
    written through `atomic_output`: the one JSON writer."""
    import json

    if hasattr(data, "to_dict"):
        data = data.to_dict()
    with atomic_output(Path(path)) as tmp:
        tmp.write_text(json.dumps(data, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_directory(path: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty private staging folder beside `path`; on success it is renamed to `path`, else
    deleted. An existing `path` is refused unless `replace`; then it is swapped out only once the new
    folder is complete, and removed afterwards. So a folder of files (a model repository) appears
    whole or not at all."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and not path.is_dir():
        raise UsageError(f"output {path} is a file; give a folder")
    if path.exists() and not replace and any(path.iterdir()):
        raise UsageError(f"output folder {path} exists and is not empty; give a new folder or replace it")
    if not parent.is_dir():
        raise UsageError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"output folder {parent} is not writable")
    remove_stale_staging(parent)
    staging = make_staging(path.name, parent)
    old = None
    try:
        yield staging
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp made it private; the result is an ordinary folder
        if path.exists():
            old = make_staging(path.name, parent)
            os.replace(path, old / path.name)
        try:
            os.replace(staging, path)
        except OSError:
            if old is not None:  # put the previous folder back
                os.replace(old / path.name, path)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
