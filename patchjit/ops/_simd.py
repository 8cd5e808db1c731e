"""Explicit-SIMD DCT denoising kernels for n x n patches, written as LLVM IR.

LLVM's auto-vectorisers do poorly on the four small matrix products of a patch DCT
(they vectorise the wrong loop, or lose the regular structure once the constant DCT
matrix is folded in), so the fast kernels are generated directly as vector code by
numba intrinsics: every row of the patch is one ``<n x float>`` SSA value (an AVX
register for n = 8 float32), the DCT matrices are vector constants, and the whole
transform-threshold-inverse chain stays in registers:

1. rows:      ``t[i] = sum_j  splat(x[i, j]) * D[:, j]``      (``t = x @ D.T``)
2. columns:   ``u[a] = sum_i  D[a, i] * t[i]``                 (``u = D @ t``)
3. threshold: ``u = |u| < thr ? 0 : u``, DC coefficient kept
4. columns:   ``w[i] = sum_a  D[a, i] * u[a]``                 (``w = D.T @ u``)
5. rows:      ``out[i] = sum_k splat(w[i][k]) * D[k, :]``      (``out = w @ D``)

Steps 2 and 4 use the even/odd symmetry of the DCT matrix
(``D[a, n-1-i] = (-1)**a D[a, i]``), which halves their multiply-adds. Multiply-adds are
``llvm.fmuladd`` (fused where the CPU has FMA). Nothing touches memory except the
patch loads and the output stores.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import load_item, store_item

__all__ = ["make_gray_kernel"]

_I32 = ir.IntType(32)


class _Vectors:
    """Helpers that emit ``<n x ft>`` vector instructions with one IRBuilder."""

    def __init__(self, builder: ir.IRBuilder, ft, n: int):
        self.b = builder
        self.ft = ft
        self.n = n
        self.ty = ir.VectorType(ft, n)
        module = builder.module
        suffix = f"v{n}f{64 if ft == ir.DoubleType() else 32}"
        self._fmuladd = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.ty, [self.ty] * 3), f"llvm.fmuladd.{suffix}"
        )
        self._fabs = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.ty, [self.ty]), f"llvm.fabs.{suffix}"
        )
        self.undef = ir.Constant(self.ty, ir.Undefined)
        self.zero = ir.Constant(self.ty, [ir.Constant(ft, 0.0)] * n)

    def const(self, values) -> ir.Constant:
        return ir.Constant(self.ty, [ir.Constant(self.ft, float(v)) for v in values])

    def splat(self, x) -> ir.Value:
        v = self.b.insert_element(self.undef, x, ir.Constant(_I32, 0))
        return self.lane(v, 0)

    def lane(self, v, k: int) -> ir.Value:
        """Every element equal to element ``k`` of ``v``."""
        mask = ir.Constant(ir.VectorType(_I32, self.n), [k] * self.n)
        return self.b.shuffle_vector(v, self.undef, mask)

    def fma(self, a, b, c) -> ir.Value:
        return self.b.call(self._fmuladd, [a, b, c])

    def lincomb(self, coeffs, vecs) -> ir.Value:
        """``sum coeffs[i] * vecs[i]`` with constant scalar ``coeffs``."""
        acc = None
        for c, v in zip(coeffs, vecs):
            cv = self.const([c] * self.n)
            acc = self.b.fmul(cv, v) if acc is None else self.fma(cv, v, acc)
        return acc

    def threshold(self, v, thr, keep_first: bool) -> ir.Value:
        """``v`` with elements whose magnitude is below ``thr`` set to zero (NaN kept)."""
        small = self.b.fcmp_ordered("<", self.b.call(self._fabs, [v]), thr)
        out = self.b.select(small, self.zero, v)
        if keep_first:
            first = self.b.extract_element(v, ir.Constant(_I32, 0))
            out = self.b.insert_element(out, first, ir.Constant(_I32, 0))
        return out


def _column_dct(V: _Vectors, d: np.ndarray, rows: list) -> list:
    """``D @ rows`` (rows are vectors): even/odd split halves the multiply-adds."""
    n = len(rows)
    h = n // 2
    b = V.b
    even = [b.fadd(rows[i], rows[n - 1 - i]) for i in range(h)]
    odd = [b.fsub(rows[i], rows[n - 1 - i]) for i in range(h)]
    out = []
    for a in range(n):
        src = even if a % 2 == 0 else odd
        acc = V.lincomb(d[a, :h], src)
        if n % 2:
            mid = rows[h]
            acc = V.fma(V.const([d[a, h]] * n), mid, acc) if a % 2 == 0 else acc
        out.append(acc)
    return out


def _column_idct(V: _Vectors, d: np.ndarray, coefs: list) -> list:
    """``D.T @ coefs``: ``w[i] = E_i + O_i`` and ``w[n-1-i] = E_i - O_i``."""
    n = len(coefs)
    h = n // 2
    b = V.b
    ev = list(range(0, n, 2))
    od = list(range(1, n, 2))
    out = [None] * n
    for i in range((n + 1) // 2):
        e = V.lincomb([d[a, i] for a in ev], [coefs[a] for a in ev])
        if i == h:  # the middle row of an odd size: the odd part vanishes
            out[i] = e
            continue
        o = V.lincomb([d[a, i] for a in od], [coefs[a] for a in od])
        out[i] = b.fadd(e, o)
        out[n - 1 - i] = b.fsub(e, o)
    return out


def _row_dct(V: _Vectors, dt_rows: list, scalars: list) -> ir.Value:
    """One row of ``x @ D.T``: ``sum_j splat(x[j]) * D[:, j]``."""
    acc = None
    for x, col in zip(scalars, dt_rows):
        s = V.splat(x)
        acc = V.b.fmul(s, col) if acc is None else V.fma(s, col, acc)
    return acc


def _row_idct(V: _Vectors, d_rows: list, w) -> ir.Value:
    """One row of ``w @ D``: ``sum_k splat(w[k]) * D[k, :]``."""
    acc = None
    for k, row in enumerate(d_rows):
        s = V.lane(w, k)
        acc = V.b.fmul(s, row) if acc is None else V.fma(s, row, acc)
    return acc


def _denoise_rows(V: _Vectors, d: np.ndarray, load_row, thr, keep_dc: bool = True) -> list:
    """The whole chain for one plane; ``load_row(i)`` gives the n scalars of row i."""
    n = V.n
    dt_rows = [V.const(d[:, j]) for j in range(n)]
    d_rows = [V.const(d[k, :]) for k in range(n)]
    t = [_row_dct(V, dt_rows, load_row(i)) for i in range(n)]
    u = _column_dct(V, d, t)
    u = [V.threshold(u[a], thr, keep_first=(keep_dc and a == 0)) for a in range(n)]
    w = _column_idct(V, d, u)
    return [_row_idct(V, d_rows, w[i]) for i in range(n)]


def _is_numeric_array(ty, ndim: int) -> bool:
    return (
        isinstance(ty, types.Array)
        and ty.ndim == ndim
        and isinstance(ty.dtype, (types.Integer, types.Float, types.Boolean))
    )


def _is_output(ty, ndim: int) -> bool:
    return (
        isinstance(ty, types.Array)
        and ty.ndim == ndim
        and ty.mutable
        and ty.dtype in (types.float32, types.float64)
    )


class _ArrayAccess:
    """Element loads (cast to ``to``) and stores for a numba array value."""

    def __init__(self, context, builder, aryty, value):
        self.ctx, self.b, self.ty = context, builder, aryty
        self.ary = context.make_array(aryty)(context, builder, value)
        self.shape = cgutils.unpack_tuple(builder, self.ary.shape, aryty.ndim)
        self.strides = cgutils.unpack_tuple(builder, self.ary.strides, aryty.ndim)

    def ptr(self, *idx):
        inds = [self.ctx.get_constant(types.intp, i) for i in idx]
        return cgutils.get_item_pointer2(
            self.ctx, self.b, self.ary.data, self.shape, self.strides, self.ty.layout, inds
        )

    def load(self, to, *idx):
        v = load_item(self.ctx, self.b, self.ty, self.ptr(*idx))
        return self.ctx.cast(self.b, v, self.ty.dtype, to)

    def store(self, value, *idx):
        store_item(self.ctx, self.b, self.ty, value, self.ptr(*idx))

    def store_row(self, vec, vecty, i: int, n: int):
        """Store the vector ``vec`` as elements ``[i, 0:n]`` (C layout: one store)."""
        if self.ty.layout == "C":
            p = self.b.bitcast(self.ptr(i, 0), vecty.as_pointer())
            self.b.store(vec, p, align=self.ctx.get_abi_sizeof(vecty.element))
        else:
            for j in range(n):
                self.store(self.b.extract_element(vec, ir.Constant(_I32, j)), i, j)


def make_gray_kernel(d: np.ndarray, keep_dc: bool = True):
    """Intrinsic ``kernel(patch, out, thr)`` for ``(n, n)`` patches (shapes unchecked).

    ``d`` is the ``(n, n)`` orthonormal DCT-II matrix (:func:`patchjit.ops.dct_matrix`).
    ``keep_dc=False`` thresholds the DC coefficient like the others (what OpenCV's
    ``xphoto.dctDenoising`` does); the paper keeps it.
    """
    d = np.asarray(d, dtype=np.float64)
    n = d.shape[0]

    @intrinsic
    def kernel(typingctx, patch, out, thr):
        if not (_is_numeric_array(patch, 2) and _is_output(out, 2)):
            return None
        if not isinstance(thr, (types.Float, types.Integer)):
            return None
        wt = out.dtype

        def codegen(context, builder, signature, args):
            src = _ArrayAccess(context, builder, patch, args[0])
            dst = _ArrayAccess(context, builder, out, args[1])
            V = _Vectors(builder, context.get_value_type(wt), n)
            th = V.splat(context.cast(builder, args[2], thr, wt))
            rows = _denoise_rows(
                V, d, lambda i: [src.load(wt, i, j) for j in range(n)], th, keep_dc
            )
            for i, r in enumerate(rows):
                dst.store_row(r, V.ty, i, n)
            return context.get_dummy_value()

        return types.none(patch, out, thr), codegen

    return kernel
