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
When the outermost hold ends (numba has released the lock by then), it puts the
previous handler back and, if a SIGINT came in meanwhile, raises it again: the
handler runs right away, inside numba's ``end_event`` broadcast, and its
``KeyboardInterrupt`` propagates out of numba's compile call, whose work is complete.
Listeners registered after this one then miss that end event. Several SIGINTs during
one hold arrive as one. A handler that is not a Python function (``SIG_IGN``,
``SIG_DFL``) is left alone; a handler someone installs during the hold is kept and
gets the signal. Compilations in other threads are not touched: SIGINT only ever
interrupts the main thread.

Whether a hold is the outermost is asked of numba's lock (the start event comes
before the lock is taken, the end event after it is released), not counted: a count
could be left off by one for good by an interrupt between the event and the acquire.

The listener is registered on patchjit's first call, not at import. It then stays
for the life of the process and also covers the compilations a user runs outside
patchjit.
"""

from __future__ import annotations

import signal
import threading

from numba.core import event
from numba.core.compiler_lock import global_compiler_lock

__all__ = ["install"]

_EVENT = "numba:compiler_lock"


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class _HoldSigint(event.Listener):
    """Hold SIGINT while the main thread is inside numba's compiler lock."""

    def __init__(self):
        self.previous = None  # the handler replaced, while one is replaced
        self.pending = False

    def _record(self, signum, frame):
        self.pending = True

    _record.holds_sigint = True  # marks a recorder (this one's or another copy's)

    def on_start(self, ev):
        if not _main_thread() or global_compiler_lock.is_locked():
            return  # another thread, or a nested hold: the outermost one decides
        current = signal.getsignal(signal.SIGINT)
        if callable(current) and not getattr(current, "holds_sigint", False):
            self.pending = False
            self.previous = signal.signal(signal.SIGINT, self._record)

    def on_end(self, ev):
        if not _main_thread() or global_compiler_lock.is_locked():
            return  # still held: a nested release
        previous, self.previous = self.previous, None
        if previous is None:
            return
        if signal.getsignal(signal.SIGINT) == self._record:
            signal.signal(signal.SIGINT, previous)
        # else: a handler installed during the hold stays, and gets the signal
        if self.pending:
            self.pending = False
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
