"""Compiled variants of one kernel: parallel/serial, with helpers bound at definition."""

from __future__ import annotations

import functools
import types as pytypes

from numba import njit

from . import _cache


def variant(impl, name, bound=None, *, cache=True, **options):
    """Compile ``impl`` as a new numba function called ``name``.

    ``bound`` maps global names of ``impl`` to the helpers this variant uses (bound
    when the variant is defined, so a cached variant's argument types are the same in
    every process: a helper passed at call time would be typed by object identity).
    Each variant has its own name, hence its own files in numba's disk cache, whose
    index ignores the compile flags: a parallel and a serial variant of one function
    would otherwise load each other's machine code. ``cache`` attaches patchjit's disk
    cache (see :mod:`patchjit._cache`); ``options`` go to ``numba.njit``.
    """
    g = impl.__globals__ if not bound else {**impl.__globals__, **bound}
    f = pytypes.FunctionType(impl.__code__, g, name, impl.__defaults__, impl.__closure__)
    f.__qualname__ = name
    f.__doc__ = impl.__doc__
    f.__module__ = impl.__module__
    dispatcher = njit(**options)(f)
    return _cache.attach(dispatcher) if cache else dispatcher


def twins(impl, name, **options):
    """``(parallel, serial)`` variants of ``impl``, named ``name`` and ``name_serial``."""
    return (
        variant(impl, name, parallel=True, **options),
        variant(impl, f"{name}_serial", **options),
    )


# How a driver calls the callback: through the typed pointer ``cb``, or a built-in op
# inlined (``cb`` unused).


@njit(inline="always")
def _call_pointer(cb, patch, o, vshape, ovshape, nc, nco, args):
    return cb(patch, o, vshape, ovshape, nc, nco, args)


@njit(inline="always")
def _call_pointer_map(cb, patch, vshape, nc, args, value):
    return cb(patch, vshape, nc, args, value)


def _inlined_name(inline) -> str:
    func, take, oview = inline
    parts = [func.py_func.__module__, func.py_func.__qualname__, take.py_func.__name__]
    parts += [oview.py_func.__name__] if oview is not None else []
    return "__" + "_".join(parts).replace(".", "_")


@functools.cache
def _inlined_process_call(func, take, oview):
    @njit(inline="always")
    def call(cb, patch, o, vshape, ovshape, nc, nco, args):
        func(take(patch, vshape, nc), oview(o, ovshape, nco), *args)
        return 1

    return call


@functools.cache
def _inlined_map_call(func, take):
    @njit(inline="always")
    def call(cb, patch, vshape, nc, args, value):
        value[0] = func(take(patch, vshape, nc), *args)
        return 1

    return call
