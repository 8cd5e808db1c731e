"""Worker processes for ``patchjit run --jobs N``: one file per worker at a time.

The parent hands each spawned worker one file, waits for its result, and hands it the
next, so it always knows which file each worker holds. That gives the two guarantees a
process pool that queues work ahead cannot:

- **A dying worker fails its own file only.** When a worker process disappears (the
  OOM killer, ``os._exit``, a segfault in a C extension), the file it held is reported
  failed with the exit code or signal, a fresh worker takes its place and the other
  files go on.
- **Ctrl-C stops the run at once.** Workers ignore SIGINT (a Ctrl-C reaches the whole
  process group); on KeyboardInterrupt the parent kills every worker, removes the
  temporary files they held (provably stale once their process is gone) and re-raises:
  no output is written after the interrupt, whether it went to the process group or to
  the parent alone (as ``timeout -s INT`` sends it).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections import deque
from multiprocessing import connection, get_context
from pathlib import Path

from ._jobs import FileResult, Job, process_file

__all__ = ["run_pool"]


def _worker_main(conn, job: Job, threads: int) -> None:
    """A worker's loop: receive ``(src, dst)``, send back its :class:`FileResult`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides on Ctrl-C
    import numba

    numba.set_num_threads(threads)
    runner = job.runner()
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent is gone
            return
        if task is None:
            return
        src, dst = task
        conn.send(process_file(runner, src, dst))


class _Worker:
    def __init__(self, ctx, job: Job, threads: int):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, job, threads))
        # Started with SIGINT ignored, which the new interpreter inherits: a Ctrl-C to
        # the process group never interrupts a worker, even while it is still starting
        # (no traceback from it); the parent alone acts on it. A Ctrl-C in the
        # milliseconds that ``start()`` takes is lost: press it again.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        child.close()
        self.task: tuple[Path, Path] | None = None

    def give(self, task) -> None:
        self.task = task
        self.conn.send(task)

    def death(self) -> str:
        """How the process ended, for a failed file's reason."""
        self.process.join(5)
        code = self.process.exitcode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by signal {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def stop(self) -> None:
        """Kill the process now and wait for it."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def run_pool(job: Job, todo, jobs: int, threads: int, on_result) -> list[FileResult]:
    """Process ``todo`` (``(src, dst)`` pairs) in ``jobs`` workers of ``threads`` threads.

    ``on_result(result)`` is called for each file as it finishes. Returns the results
    in the order they finished; KeyboardInterrupt propagates after every worker is
    stopped and their temporary files are removed.
    """
    ctx = get_context("spawn")
    pending = deque(todo)
    results: list[FileResult] = []
    workers: list[_Worker] = []
    try:
        for _ in range(min(jobs, len(pending))):
            workers.append(_Worker(ctx, job, threads))
        for w in workers:
            w.give(pending.popleft())
        while any(w.task is not None for w in workers):
            busy = {w.process.sentinel: w for w in workers if w.task is not None}
            busy.update({w.conn: w for w in workers if w.task is not None})
            for ready in connection.wait(list(busy)):
                w = busy[ready]
                if w.task is None:  # already handled through its other handle
                    continue
                result = _receive(w)
                if result is _NOT_YET:
                    continue
                if result is None:  # the worker died holding its file
                    src = w.task[0]
                    reason = f"{src}: worker process died while processing it ({w.death()})"
                    result = FileResult("failed", src, reason)
                    w.stop()
                    w.task = None
                    if pending:
                        workers[workers.index(w)] = w = _Worker(ctx, job, threads)
                w.task = None
                results.append(result)
                on_result(result)
                if pending:
                    w.give(pending.popleft())
    except BaseException:
        held = {w.task[1].parent for w in workers if w.task is not None}
        for w in workers:
            w.stop()
        from .io import remove_stale_temporaries

        for folder in held:  # what the killed workers were writing
            remove_stale_temporaries(folder)
        raise
    for w in workers:
        with contextlib.suppress(OSError):
            w.conn.send(None)
    for w in workers:
        w.process.join(10)
        w.stop()
    return results


_NOT_YET = object()


def _receive(w: _Worker):
    """The worker's result; ``None`` when it died without one; ``_NOT_YET`` otherwise."""
    try:
        if w.conn.poll():
            return w.conn.recv()
    except (EOFError, OSError):  # the pipe closed: the process is gone
        return None
    return None if not w.process.is_alive() else _NOT_YET
