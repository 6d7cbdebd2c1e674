"""Ctrl-C and SIGTERM during native code that calls back into Python.

TensorRT's builder calls our logger and progress monitor from C++; a Python signal handler that raises runs
inside such a callback, where TensorRT catches the exception (`[ERROR] Exception caught in log(): ...`) and
builds on. Inside `deferred_signals` the handlers only record the signal; the native loop asks `pending`
(the progress monitor cancels the build), and on leaving the block the signal is delivered again to the
handlers that were there before, in plain Python code: KeyboardInterrupt (exit 130) or the CLI's Terminated
(exit 143), nothing written.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class PendingSignal:
    """The first signal received inside the block (None: none yet)."""

    signum: int | None = None

    @property
    def pending(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred_signals(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[PendingSignal]:
    """Record `signums` inside the block, re-deliver the first one after it (see the module docstring).
    Outside the main thread (where Python runs no signal handlers) the block runs as is; an ignored signal
    stays ignored."""
    state = PendingSignal()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def record(signum, frame):
        state.signum = state.signum or signum

    # an ignored signal stays ignored (a background job's SIGINT)
    previous = {s: signal.signal(s, record) for s in signums if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield state
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if state.pending:
            signal.raise_signal(state.signum)
