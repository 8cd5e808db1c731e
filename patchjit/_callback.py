"""Turning a user's callback into something the kernels can call, with clear errors."""

from __future__ import annotations

import types as pytypes
import weakref

import numba
import numpy as np
from numba.core import types as nbtypes
from numba.core.registry import CPUDispatcher

# A plain Python function that we jit for the user keeps its dispatcher in this
# attribute, so the same function object compiles once. The dispatcher refers back to
# the function (``py_func``), a cycle that the garbage collector frees when the user
# drops the function; a global table would keep it alive forever.
_ATTR = "__patchjit_dispatcher__"
# The dispatchers made here. numba keeps each dispatcher's compile results alive from a
# ``weakref.finalize`` (a GC root) until the dispatcher dies, and a result's type
# annotation refers back to the Python function: function -> dispatcher -> results ->
# function would never be freed. For these dispatchers only, the annotation (used by
# ``inspect_types`` alone) is dropped after each compile; a user's own ``@njit``
# function is never touched.
_OWNED: weakref.WeakSet = weakref.WeakSet()


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def resolve(func, role: str = "func"):
    """Return a numba dispatcher for ``func``.

    A numba ``@njit`` function is used as it is. A plain Python function is compiled
    with ``numba.njit`` on first use and remembered on the function object itself (a new
    function object, e.g. a lambda built in a loop, compiles anew). Anything else
    raises TypeError.
    """
    if isinstance(func, CPUDispatcher):
        return func
    if not callable(func):
        raise TypeError(f"{role} must be a function, got {type(func).__name__} {func!r}")
    if isinstance(func, pytypes.FunctionType):
        jitted = func.__dict__.get(_ATTR)
        if jitted is None:
            jitted = numba.njit(func)
            func.__dict__[_ATTR] = jitted
            _OWNED.add(jitted)
        return jitted
    raise TypeError(
        f"{role} must be a numba @njit function or a plain Python function that numba can "
        f"compile; got {type(func).__name__} {_name(func)!r}. Wrap it in a `def` and "
        f"decorate that with @numba.njit"
    )


def check_args(args) -> tuple:
    """Check that every extra argument has a numba type; return it as a tuple."""
    if not isinstance(args, tuple):
        raise TypeError(
            f"args must be a tuple of extra callback arguments, got {type(args).__name__}; "
            f"write args=(value,) for a single argument"
        )
    for i, a in enumerate(args):
        try:
            numba.typeof(a)
        except ValueError:
            raise TypeError(
                f"args[{i}] of type {type(a).__name__} cannot be passed to a numba function; "
                f"use numbers, numpy arrays or tuples of them"
            ) from None
    return args


def return_type(dispatcher, arg_types: tuple):
    """Return type of a dispatcher compiled for ``arg_types`` (compiling if needed)."""
    dispatcher.compile(arg_types)
    cres = dispatcher.overloads[arg_types]
    if dispatcher in _OWNED and cres.type_annotation is not None:
        dispatcher.overloads[arg_types] = cres = cres._replace(type_annotation=None)
    return cres.signature.return_type


def compile_callback(func, patch_type, out_type, args: tuple, *, scalar: bool) -> None:
    """Compile ``func`` for the exact types the kernel will pass, or raise TypeError.

    ``out_type`` is None for patch -> scalar callbacks (``scalar=True``), whose return
    type must then be a real number or a bool.
    """
    arg_types = (patch_type,) if out_type is None else (patch_type, out_type)
    arg_types += tuple(numba.typeof(a) for a in args)
    shown = ", ".join(str(t) for t in arg_types)
    expected = "func(patch, *args) -> number" if scalar else "func(patch, out, *args) -> None"
    try:
        ret = return_type(func, arg_types)
    except Exception as exc:  # numba raises many error types while typing user code
        hint = ""
        if "setitem(readonly" in str(exc) or "Cannot modify readonly" in str(exc):
            hint = (
                " The patch is read-only: write results into `out` (to edit the patch "
                "in place, copy it first, e.g. `out[...] = patch`, then edit `out`)."
            )
        raise TypeError(
            f"callback {_name(func)!r} failed to compile for arguments ({shown}); the "
            f"expected signature is {expected}.{hint} numba says:\n{exc}"
        ) from exc
    if not scalar and not isinstance(ret, nbtypes.NoneType):
        raise TypeError(
            f"callback {_name(func)!r} returns {ret}, but a process callback must fill "
            f"`out` and return None ({expected}); remove the return value and write the "
            f"result into out"
        )
    if scalar and not isinstance(ret, (nbtypes.Integer, nbtypes.Float, nbtypes.Boolean)):
        raise TypeError(
            f"callback {_name(func)!r} must return a real number for map_patches "
            f"({expected}), but it returns {ret} for arguments ({shown})"
        )


def array_type(dtype, ndim: int, layout: str = "C", readonly: bool = False):
    return nbtypes.Array(numba.from_dtype(np.dtype(dtype)), ndim, layout, readonly=readonly)
