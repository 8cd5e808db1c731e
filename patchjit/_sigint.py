"""Ctrl-C during a numba compilation takes effect when that compilation ends.

numba's compiler is Python code. A ``KeyboardInterrupt`` raised inside it (Python
runs the SIGINT handler between any two bytecodes of the main thread) can leave
numba's typing context half set up for the rest of the process: every later compile
or cache load then fails with ``RuntimeError: generator raised StopIteration``. Or an
llvmlite ctypes callback swallows the interrupt, and it never reaches the caller.
A first call compiles for seconds, so a user pressing Ctrl-C then is no rare case.

:func:`install` registers one listener on numba's ``"numba:compiler_lock"`` event
(numba's public event API). While the main thread waits for or holds numba's
compiler lock, the listener replaces that thread's SIGINT handler with a recorder.
When the outermost hold ends, it puts the previous handler back and, if a SIGINT
came in meanwhile, raises it again, so the previous handler runs then. A handler that
is not a Python function (``SIG_IGN``, ``SIG_DFL``) is left alone. Compilations in
other threads are not touched: SIGINT only ever interrupts the main thread.

The listener is registered on patchjit's first call, not at import. It then stays
for the life of the process and also covers the compilations a user runs outside
patchjit.
"""

from __future__ import annotations

import signal
import threading

from numba.core import event

__all__ = ["install"]

_EVENT = "numba:compiler_lock"


class _HoldSigint(event.Listener):
    """Hold SIGINT while the main thread is inside numba's compiler lock."""

    def __init__(self):
        self.depth = 0  # nested holds of the lock by the main thread
        self.previous = None  # the handler replaced, while one is replaced
        self.pending = False

    def _record(self, signum, frame):
        self.pending = True

    def on_start(self, ev):
        if threading.current_thread() is not threading.main_thread():
            return
        self.depth += 1
        if self.depth > 1:
            return
        current = signal.getsignal(signal.SIGINT)
        if callable(current):
            self.previous, self.pending = current, False
            signal.signal(signal.SIGINT, self._record)

    def on_end(self, ev):
        if threading.current_thread() is not threading.main_thread():
            return
        self.depth = max(0, self.depth - 1)
        if self.depth or self.previous is None:
            return
        previous, self.previous = self.previous, None
        signal.signal(signal.SIGINT, previous)
        if self.pending:
            self.pending = False
            # the previous handler runs at the next bytecode, after the lock is free
            signal.raise_signal(signal.SIGINT)


_LISTENER = _HoldSigint()
_installed = False
_lock = threading.Lock()


def install() -> None:
    """Register the listener once per process (later calls do nothing)."""
    global _installed
    if _installed:
        return
    with _lock:
        if not _installed:
            event.register(_EVENT, _LISTENER)
            _installed = True
