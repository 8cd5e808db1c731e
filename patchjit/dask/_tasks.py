"""The per-chunk tasks of the dask graphs: picklable callables that run the engine.

Each task gets its chunk's input region (the chunk plus its halo, channels last) from
:func:`dask.array.map_overlap`, runs the engine (:mod:`patchjit._engine`,
:mod:`patchjit._batches`) on the patches of the global grid that touch its core, and
returns the core. :class:`_ProcessTask` and :class:`_MapTask` are the two kinds
(overlap-add, one value per patch); the batch and unpatchify tasks change only their
source or their engine call.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import _batches as B
from .. import _engine as E
from .. import _finalize_kernels as F
from .. import _kernels as K
from .._cast import to_dtype
from .._plan import _window_profiles, values_dtype
from .._validate import as_image

# numba's workqueue layer aborts when two threads launch parallel kernels at once. Tasks
# with threads=1 run the engine's serial kernels and need no lock; others take this lock
# unless the layer is known to be tbb/omp.
_LAUNCH_LOCK = threading.Lock()


class _Launch:
    """Serialise parallel kernel launches unless the threading layer is thread-safe.

    With ``threads=1`` (the default in dask tasks) the engine runs serial kernels, which
    are safe from any thread: no lock, so tasks really run concurrently.
    """

    def __init__(self, threads=None):
        self.threads = threads

    def __enter__(self):
        import numba

        if self.threads == 1:
            self.lock = None
            return
        try:
            safe = numba.threading_layer() in ("tbb", "omp")
        except ValueError:  # no parallel kernel has run yet in this process
            safe = False
        self.lock = None if safe else _LAUNCH_LOCK
        if self.lock is not None:
            self.lock.acquire()

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()


def _read_only(a):
    a = a.view()
    a.flags.writeable = False
    return a


def _src4(region, k):
    """The block's input as the engine's read-only C-contiguous (D, H, W, C) view."""
    v = np.ascontiguousarray(as_image(region, "block"))
    if v.ndim == k:
        v = v[..., None]
    return _read_only(v.reshape((1,) * (3 - k) + v.shape))


class _Normaliser:
    """Divide a core's accumulator by the global coverage sliced to the core.

    The same kernels and inputs as in memory (``_plan._normalise``), the separable
    coverage vectors or the non-separable window's profiles shifted to the core's
    start, so the coverage of every pixel is the in-memory one bit for bit.
    """

    def __init__(self, grid):

        self.full = grid.window_array is not None and grid.window_vectors is None
        self.profiles = _window_profiles(grid) if self.full else None

    def __call__(self, acc, rows, nco, divide):
        serial = E.serial_wanted()
        if self.full:
            ind, vecs, pads = self.profiles
            starts = E.canonical3([r[0] for r in rows], 0)
            pads = tuple(int(p + s) for p, s in zip(pads, starts))
            fin = F.finalize_window_serial if serial else F.finalize_window
            fin(acc, ind[0], ind[1], vecs, pads, nco, divide)
        else:
            vecs = E.canonical3([r[4] for r in rows], np.ones(1))
            fin = F.finalize_serial if serial else F.finalize
            fin(acc, *vecs, nco, divide)


class _ProcessTask:
    """One output chunk of :func:`process_image` (picklable for distributed workers).

    Returns the chunk's core as ``(*core, nco)``, or ``(*core)`` when ``squeeze``.
    Subclasses change the source (``_source``) or the accumulation (``_accumulate``).
    """

    squeeze = False

    def __init__(self, plan, tables, norm, func, args, take, oview):
        self.plan, self.grid, self.tables, self.norm = plan, plan.grid, tables, norm
        self.func, self.args, self.take, self.oview = func, args, take, oview
        self.threads = plan.threads
        self.w3 = plan.weights3()

    def __call__(self, region, block_id=None):
        plan = self.plan
        rows = [self.tables[a][block_id[a]] for a in range(self.grid.ndim)]
        core = [r[1] - r[0] for r in rows]
        acc = plan.accumulator(E.canonical3(core, 1))
        if all(r[2][1] > r[2][0] for r in rows):
            src, origins, region0 = self._source(region, rows)
            origins3 = E.canonical3(origins, np.zeros(1, dtype=np.int64))
            region0 = tuple(int(v) for v in E.canonical3(region0, 0))
            self._accumulate(src, origins3, acc, region0, self._out_frame(rows))
        with _Launch(self.threads), E.thread_limit(self.threads):
            self.norm(acc, rows, plan.nco, plan.red == "mean")
        result = acc.reshape((*core, plan.nco))
        if self.squeeze:
            result = result[..., 0]
        return to_dtype(result, plan.out_dtype)

    def _out_frame(self, rows):
        """With a margin or a scale: the output patches' origins and the core's start,
        both in the result's global padded frame (the input's stay in ``src``'s)."""
        if self.plan.out_geometry is None:
            return None
        g, k = self.grid, self.grid.ndim
        origins = [g.origins[a][slice(*rows[a][2])] for a in range(k)]
        region0 = [rows[a][0] + g.pad_width[a][0] for a in range(k)]
        return (
            E.canonical3(origins, np.zeros(1, dtype=np.int64)),
            tuple(int(v) for v in E.canonical3(region0, 0)),
        )

    def _accumulate(self, src, origins3, acc, region0, out_frame=None):
        """Overlap-add the patches at ``origins3`` (``src``'s frame) into ``acc``, whose
        region starts at ``region0`` (or at ``out_frame``'s, see :meth:`_out_frame`)."""
        plan = self.plan
        geometry = None
        if out_frame is not None:
            geometry, region0 = (out_frame[0], self.grid.patch3), out_frame[1]
        E.prepare_process_callback(self.func, self.take, self.oview, src, plan.acc_dtype, self.args)
        with _Launch(self.threads), E.thread_limit(self.threads):
            E.run_accumulate(
                src, self.take, self.oview, self.func, self.args, origins3, plan.in_patch3,
                plan.grid_in.n_channels, self.w3, plan.code, acc, region0, nc_out=plan.nco,
                out_geometry=geometry,
            )  # fmt: skip

    def _source(self, region, rows):
        """The engine's source, input patch origins in its frame and the core's start
        there (``rows[a][3]``: where the region starts in the padded source)."""
        g, k = self.plan.grid_in, self.grid.ndim
        origins = [g.origins[a][slice(*rows[a][2])] - rows[a][3] for a in range(k)]
        region0 = [rows[a][0] + g.pad_width[a][0] - rows[a][3] for a in range(k)]
        return _src4(region, k), origins, region0


class _MapTask:
    """One output chunk of :func:`map_patches`."""

    def __init__(self, plan, tables, func, args, take):
        self.plan, self.grid, self.tables = plan, plan.grid, tables
        self.func, self.args, self.take, self.threads = func, args, take, plan.threads
        self.res_dtype = values_dtype(plan)

    def __call__(self, region, block_id=None):
        g, k = self.grid, self.grid.ndim
        rows = [self.tables[a][block_id[a]] for a in range(k)]
        shape = tuple(i1 - i0 for (i0, i1), _ in rows)
        res = np.empty(E.canonical3(shape, 1), dtype=self.res_dtype)
        if res.size:
            src = _src4(region, k)
            origins = [g.origins[a][slice(*rows[a][0])] - rows[a][1] for a in range(k)]
            self._run(src, E.canonical3(origins, np.zeros(1, dtype=np.int64)), res)
        return to_dtype(res.reshape(shape), self.plan.out_dtype)

    def _run(self, src, origins3, res):
        """One value per patch at ``origins3`` (``src``'s frame) into ``res``."""
        E.prepare_map_callback(self.func, self.take, src, self.args)
        with _Launch(self.threads), E.thread_limit(self.threads):
            E.run_map(src, self.take, self.func, self.args, origins3, self.grid.patch3, res)


class _BatchTask(_ProcessTask):
    """One output chunk of :func:`process_batches`: the batch pipeline on its patches."""

    def __init__(self, plan, tables, norm, func):
        super().__init__(plan, tables, norm, func, (), None, None)

    def _accumulate(self, src, origins3, acc, region0, out_frame=None):
        with _Launch(self.threads), E.thread_limit(self.threads):
            xo, r0 = (origins3, region0) if out_frame is None else out_frame
            targets = [(self.plan, acc, xo, r0)]
            B.accumulate_batches(
                self.plan, src, self.func, origins3, targets, self.plan.own, pipelined=False
            )


class _MapBatchTask(_MapTask):
    """One output chunk of :func:`map_batches`."""

    def __init__(self, plan, tables, func):
        super().__init__(plan, tables, func, (), None)

    def _run(self, src, origins3, res):
        with _Launch(self.threads), E.thread_limit(self.threads):
            B.map_values(
                src, self.func, self.grid, origins3, self.plan.acc_dtype, res.reshape(-1),
                self.plan.own, pipelined=False,
            )  # fmt: skip


class _UnpatchifyTask(_ProcessTask):
    """One output chunk of :func:`unpatchify`: the stacked patches as the source."""

    def __init__(self, plan, tables):
        super().__init__(
            plan, tables, _Normaliser(plan.grid), K.copy_flat, (), K.take_flat, K.oview_flat
        )
        self.squeeze = plan.grid.channel_axis is None

    def _source(self, region, rows):
        g, k = self.grid, self.grid.ndim
        sel = tuple(slice(r[2][0] - r[3], r[2][1] - r[3]) for r in rows)
        v = as_image(region, "patches")[sel]
        shape = E.canonical3(v.shape[:k], 1) + g.patch3 + (g.n_channels,)
        v = np.ascontiguousarray(v).reshape(shape)
        origins = [g.origins[a][slice(*rows[a][2])] for a in range(k)]
        region0 = [rows[a][0] for a in range(k)]
        return _read_only(v), origins, region0
