"""``finalize=``: merge in bands of rows, finalize each finished block, keep only that.

The patch rows along the first spatial axis run in groups, each into a band of
accumulator rows per output; rows no later patch touches are normalised, converted to
the output dtype, handed to the output's ``finalize`` and kept, the rest are carried
into the next band. :func:`patchjit.process_image` and :func:`patchjit.process_batches`
share this runner; they differ only in how a group of patches is accumulated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _engine as E
from ._cast import to_dtype
from ._plan import Plan, _normalise

# The band of accumulator rows a finalize run holds: this fraction of the whole, at least
# a few patches high.
BAND_FRACTION = 32


def check_finalize(finalize, out, several: bool = True) -> None:
    """``finalize`` is a callable, or (``several``: for a ``func`` that may return
    several outputs) one per output, a tuple or dict with None entries meaning "keep
    that output whole"; it cannot be combined with ``out``."""
    if finalize is None:
        return
    if not several and not callable(finalize):
        raise TypeError(
            f"finalize must be callable, got {type(finalize).__name__} (one per output, a "
            f"tuple or dict, is for process_batches' several outputs)"
        )
    values = finalize.values() if isinstance(finalize, dict) else finalize
    values = values if isinstance(finalize, (tuple, list, dict)) else (finalize,)
    for f in values:
        if f is not None and not callable(f):
            raise TypeError(f"finalize must be callable, got {type(f).__name__}")
    if out is not None:
        raise ValueError("out cannot be combined with finalize; drop out=")


def finalizer_for(finalize, key, n_outputs: int):
    """The finalize function of output ``key`` (an index or a dict key), or None."""
    if finalize is None or callable(finalize):
        return finalize
    if isinstance(finalize, dict):
        if n_outputs == 1 and key == 0 and 0 not in finalize:
            raise TypeError(
                f"finalize is a dict (keys {sorted(map(repr, finalize))}) but func returned one "
                f"array, not a dict; give one callable"
            )
        return finalize.get(key)
    if len(finalize) != n_outputs:
        raise ValueError(
            f"finalize has {len(finalize)} entries for {n_outputs} outputs; give one "
            f"callable (or None) per output"
        )
    return finalize[key]


def _axis_slice(c: int, lo: int, hi: int) -> tuple:
    idx = [slice(None)] * 3
    idx[c] = slice(lo, hi)
    return tuple(idx)


class _Output:
    """One output's band state: its plan, finalize, carried rows and finished blocks."""

    def __init__(self, plan: Plan, finalize: Callable, c: int):
        g = plan.grid
        self.plan, self.finalize, self.c = plan, finalize, c
        self.oo = plan.out_origins3[c]
        self.q = g.patch3[c]
        self.total = g.spatial3[c]
        self.region0 = g.region3
        self.carry, self.lo, self.blocks = None, 0, []
        self.lead = 0 if g.channel_axis != 0 or not plan.keep_c else 1
        self.block_lead = self.lead

    def band(self, g1: int):
        """The band for the groups up to patch row ``g1`` (exclusive), carry included;
        with its region start."""
        c = self.c
        hi = self.total  # the last band runs to the end (rows past the last patch stay
        if g1 < len(self.oo):  # uncovered, NaN, with edge="valid")
            hi = min(int(self.oo[g1 - 1]) + self.q - self.region0[c], hi)
        hi = max(hi, self.lo if self.carry is None else self.lo + self.carry.shape[c])
        shape = list(self.plan.grid.spatial3)
        shape[c] = hi - self.lo
        band = self.plan.accumulator(shape)
        if self.carry is not None:
            band[_axis_slice(c, 0, self.carry.shape[c])] = self.carry
        r0 = list(self.region0)
        r0[c] += self.lo
        self.hi = hi
        return band, tuple(r0)

    def finish(self, band, g1: int) -> None:
        """Finalize the rows of ``band`` that no patch row from ``g1`` on touches."""
        c, lo, hi, plan = self.c, self.lo, self.hi, self.plan
        last = g1 == len(self.oo)
        done = self.total if last else min(max(int(self.oo[g1]) - self.region0[c], lo), hi)
        finished = np.ascontiguousarray(band[_axis_slice(c, 0, done - lo)])
        self.carry = band[_axis_slice(c, done - lo, hi - lo)].copy()
        if done > lo:
            _normalise(finished, plan.grid, plan.nco, plan.red, E.serial_wanted(), rows=(c, lo))
            spatial = list(plan.grid.spatial_shape)
            spatial[0] = done - lo
            rows = to_dtype(plan.layout(finished.reshape((*spatial, plan.nco))), plan.out_dtype)
            block = rows if self.finalize is None else np.asarray(self.finalize(rows))
            # channels first: the rows are axis 1, or axis 0 where finalize dropped the
            # channel axis (e.g. an argmax over axis 0)
            lead = self.lead if block.ndim >= rows.ndim else 0
            if self.blocks and lead != self.block_lead:
                raise ValueError(
                    f"finalize returned shape {block.shape} for a block of {done - lo} rows, "
                    f"with another number of axes than for the block before"
                )
            if block.ndim <= lead or block.shape[lead] != done - lo:
                raise ValueError(
                    f"finalize returned shape {block.shape} for a block of {done - lo} rows "
                    f"(shape {rows.shape}); it must keep the block's length along axis {lead}"
                )
            self.block_lead = lead
            self.blocks.append(block)
        self.lo = done

    def result(self) -> np.ndarray:
        return np.concatenate(self.blocks, axis=self.block_lead)


def rows_per_group(base: Plan) -> int:
    """How many patch rows (along the first spatial axis) one band holds: the band is
    1/:data:`BAND_FRACTION` of the result's rows, at least two patches high."""
    g = base.grid
    c = 3 - g.ndim
    oo, q = g.origins3[c], g.patch3[c]
    budget = max(g.spatial3[c] // BAND_FRACTION, 2 * q)
    step = int(oo[1] - oo[0]) if len(oo) > 1 else q
    return max(1, (budget - q) // max(step, 1) + 1)


def run_banded(base: Plan, outputs, finalizers, accumulate) -> list:
    """Merge every output in bands of rows and finalize each block (see the module).

    ``outputs``: one plan per output (their grids share ``base.grid_in``'s patch rows);
    ``finalizers``: one callable (or None) per output. ``accumulate(sub_in, targets)``
    merges the patches at input origins ``sub_in`` into ``targets``: per output
    ``(plan, band, out_origins3, region0)``. Returns the finalized results.
    """
    c = 3 - base.grid.ndim  # the first spatial axis, canonical
    oi = base.grid_in.origins3[c]
    states = [_Output(p, f, c) for p, f in zip(outputs, finalizers)]
    per_group = rows_per_group(base)
    for g0 in range(0, len(oi), per_group):
        g1 = min(g0 + per_group, len(oi))
        sub_in = list(base.grid_in.origins3)
        sub_in[c] = oi[g0:g1]
        targets = []
        for s in states:
            band, r0 = s.band(g1)
            sub_out = list(s.plan.out_origins3)
            sub_out[c] = s.oo[g0:g1]
            targets.append((s.plan, band, tuple(sub_out), r0))
        accumulate(tuple(sub_in), targets)
        for s, (_, band, _, _) in zip(states, targets):
            s.finish(band, g1)
    return [s.result() for s in states]
