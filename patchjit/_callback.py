"""Turning a user's callback into something the kernels can call, with clear errors."""

from __future__ import annotations

import contextlib
import sys
import threading
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


# --- typed function pointers ----------------------------------------------------------
# The engine's drivers take the callback as an argument typed by its signature (a
# ``numba.cfunc``), so one compiled driver serves every callback of that signature and
# is cached on disk; a new callback costs about its own compilation. A cfunc cannot
# raise: numba reports the exception through ``sys.unraisablehook`` and returns 0,
# which the drivers watch for (see :func:`raise_callback_error`).

_INT = nbtypes.int64
_VSHAPE = nbtypes.UniTuple(nbtypes.int64, 3)
_STATUS = nbtypes.int32


def _process_wrapper(patch, out, vshape, ovshape, nc, nco, args):
    _FUNC(_TAKE(patch, vshape, nc), _OVIEW(out, ovshape, nco), *args)  # noqa: F821
    return 1


def _map_wrapper(patch, vshape, nc, args, value):
    value[0] = _FUNC(_TAKE(patch, vshape, nc), *args)  # noqa: F821
    return 1


def builtin(func) -> bool:
    """patchjit's own module-level callbacks (the built-in ops): the engine inlines them
    into drivers cached on disk. A user's function (which may change between processes)
    goes through an in-memory pointer (:func:`process_pointer`), never cached."""
    py = getattr(func, "py_func", None)
    mod = getattr(py, "__module__", "") or ""
    qual = getattr(py, "__qualname__", "") or ""
    return mod.split(".")[0] == "patchjit" and "<" not in qual and py.__closure__ is None


def _wrapper_name(kind, func, take, oview) -> str:
    py = func.py_func
    parts = [kind, py.__module__.replace(".", "_"), py.__qualname__.replace(".", "_")]
    parts += [v.py_func.__name__ for v in (take, oview) if v is not None]
    return "__".join(parts)


def _make_pointer(impl, kind, func, take, oview, sig):
    from numba.core.ccallback import CFunc

    bound = {"_FUNC": func, "_TAKE": take, "_OVIEW": oview}
    g = {**impl.__globals__, **bound}
    name = _wrapper_name(kind, func, take, oview)
    f = pytypes.FunctionType(impl.__code__, g, name, impl.__defaults__, impl.__closure__)
    f.__qualname__ = name
    cf = CFunc(f, (sig.args, sig.return_type), locals={}, options={})
    cf.compile()
    return cf


_PTR_ATTR = "_patchjit_pointers"
_PTR_LOCK = threading.Lock()


def _pointer(func, key, build):
    """The cfunc for ``key``, kept on the dispatcher itself (freed with it)."""
    table = func.__dict__.get(_PTR_ATTR)
    if table is None:
        with _PTR_LOCK:
            table = func.__dict__.setdefault(_PTR_ATTR, {})
    ptr = table.get(key)
    if ptr is None:
        ptr = build()
        table[key] = ptr
    return ptr


def process_pointer(func, take, oview, src_dtype, acc_dtype, args):
    """Typed function pointer ``cb(flat_patch, flat_out, vshape, ovshape, nc, nco, args)`` that
    calls ``func(take(patch), oview(out), *args)`` and returns 1 (0 if it raised)."""
    args_t = numba.typeof(args)
    key = ("process", take, oview, np.dtype(src_dtype), np.dtype(acc_dtype), args_t)
    sig = _STATUS(
        array_type(src_dtype, 1, "C", readonly=True), array_type(acc_dtype, 1, "C"),
        _VSHAPE, _VSHAPE, _INT, _INT, args_t,
    )  # fmt: skip
    return _pointer(
        func, key, lambda: _make_pointer(_process_wrapper, "process", func, take, oview, sig)
    )


def map_pointer(func, take, src_dtype, args):
    """Typed function pointer ``cb(flat_patch, vshape, nc, args, value)`` storing
    ``func(take(patch), *args)`` in ``value[0]``; returns 1 (0 if it raised)."""
    args_t = numba.typeof(args)
    key = ("map", take, np.dtype(src_dtype), args_t)
    sig = _STATUS(
        array_type(src_dtype, 1, "C", readonly=True), _VSHAPE, _INT, args_t,
        array_type(np.float64, 1, "C"),
    )  # fmt: skip
    return _pointer(func, key, lambda: _make_pointer(_map_wrapper, "map", func, take, None, sig))


# --- a callback's exception -----------------------------------------------------------
# While patchjit kernels run, numba's unraisable reports of cfunc errors are kept here
# instead of printed (the engine raises the callback's own exception instead); any other
# unraisable report goes to the previous hook.

_HOOK_LOCK = threading.Lock()
_ACTIVE = [0]
_PREVIOUS_HOOK = None
_SEEN: list = []  # recent exceptions reported by cfuncs, newest last
_CFUNC_OBJECT = "<numba.core.cpu.CPUContext"


def _hook(unraisable):
    obj = unraisable.object
    if _ACTIVE[0] > 0 and isinstance(obj, str) and obj.startswith(_CFUNC_OBJECT):
        _SEEN.append(unraisable.exc_value)
        del _SEEN[:-8]
        return
    (_PREVIOUS_HOOK or sys.__unraisablehook__)(unraisable)


@contextlib.contextmanager
def capturing():
    """Keep numba's cfunc error reports out of stderr while kernels run."""
    global _PREVIOUS_HOOK
    with _HOOK_LOCK:
        if sys.unraisablehook is not _hook:
            _PREVIOUS_HOOK = sys.unraisablehook
            sys.unraisablehook = _hook
        _ACTIVE[0] += 1
    try:
        yield
    finally:
        with _HOOK_LOCK:
            _ACTIVE[0] -= 1


def raise_callback_error(func, call, where: str):
    """Raise the exception ``func`` raised on one patch, with its own type and message.

    ``call()`` runs the user's function again on that patch from Python (the compiled
    code raises normally there); ``where`` names the patch. If it does not raise again
    (a callback that depends on state), the exception numba reported is raised.
    """
    note = f"raised by callback {_name(func)!r} on {where}"
    try:
        call()
    except Exception as exc:
        exc.add_note(note)
        raise
    exc = _SEEN[-1] if _SEEN else None
    if exc is not None:
        exc = exc.with_traceback(None)
        exc.add_note(note + " (it did not raise when run again on that patch)")
        raise exc
    raise RuntimeError(f"callback {_name(func)!r} failed on {where}")
