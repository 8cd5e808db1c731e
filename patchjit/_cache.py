"""numba's on-disk cache for patchjit's own compiled code, in a per-user folder.

patchjit's drivers, batch kernels and the built-in ops' callback wrappers are cached
on disk by default, so that a new process loads them instead of compiling them again.
The cache never lives in the installed package:

- the folder is ``$PATCHJIT_CACHE_DIR``, else the platform's user cache folder
  (``$XDG_CACHE_HOME/patchjit``, ``~/.cache/patchjit``, ``~/Library/Caches/patchjit``,
  ``%LOCALAPPDATA%\\patchjit``);
- inside it, one subfolder per patchjit version, numba version, Python version and a
  hash of patchjit's own source files, so that another version (or an edited
  checkout) never loads stale code;
- ``PATCHJIT_CACHE=0`` turns it off: nothing is read or written.

An unwritable folder disables the cache for the process with one warning; two
processes filling one folder at once are safe (numba writes each file to a temporary
name and renames it into place).

Nothing happens at import: a kernel's cache is opened when it first compiles.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path

import numba
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    NullCache,
    _CacheLocator,
    _SourceFileBackedLocatorMixin,
)

__all__ = ["base_dir", "clear", "enabled", "folder", "size"]


def enabled() -> bool:
    """False when ``PATCHJIT_CACHE=0`` (also ``off``, ``false``, ``no``)."""
    return os.environ.get("PATCHJIT_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


def base_dir() -> Path:
    """The cache's root folder (``PATCHJIT_CACHE_DIR`` or the user cache folder)."""
    chosen = os.environ.get("PATCHJIT_CACHE_DIR")
    if chosen:
        return Path(chosen).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        root = home / "Library" / "Caches"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return root / "patchjit"


@functools.lru_cache(maxsize=1)
def _version_key() -> str:
    from ._version import __version__

    h = hashlib.sha256()
    pkg = Path(__file__).resolve().parent
    for p in sorted(pkg.rglob("*.py")):
        h.update(str(p.relative_to(pkg)).encode())
        h.update(p.read_bytes())
    py = f"{sys.version_info[0]}{sys.version_info[1]}"
    return f"patchjit-{__version__}-numba-{numba.__version__}-py{py}-{h.hexdigest()[:12]}"


def folder() -> Path:
    """The folder this process's patchjit and numba versions cache into."""
    return base_dir() / _version_key()


def size(path: Path | None = None) -> tuple[int, int]:
    """``(files, bytes)`` under ``path`` (default :func:`base_dir`)."""
    path = base_dir() if path is None else Path(path)
    files = total = 0
    if path.is_dir():
        for p in path.rglob("*"):
            if p.is_file():
                files += 1
                total += p.stat().st_size
    return files, total


def clear() -> int:
    """Delete every cache folder patchjit made under :func:`base_dir`; return the count."""
    root = base_dir()
    n = 0
    if root.is_dir():
        for p in root.iterdir():
            if p.is_dir() and p.name.startswith("patchjit-"):
                shutil.rmtree(p, ignore_errors=True)
                n += 1
    return n


_WARNED = threading.Event()


def _warn_once(path, exc) -> None:
    if not _WARNED.is_set():
        _WARNED.set()
        warnings.warn(
            f"patchjit cannot write its compile cache to {path} ({exc}); compiled code is "
            f"kept for this process only. Set PATCHJIT_CACHE_DIR to a writable folder, or "
            f"PATCHJIT_CACHE=0 to silence this.",
            RuntimeWarning,
            stacklevel=4,
        )


class _Locator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """numba cache locator: every patchjit function caches into :func:`folder`."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._path = str(folder())

    def get_cache_path(self):
        return self._path

    @classmethod
    def from_function(cls, py_func, py_file):
        if not os.path.exists(py_file):
            return None
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError as exc:
            _warn_once(self._path, exc)
            return None
        return self


class _Impl(CompileResultCacheImpl):
    _locator_classes = (_Locator,)


class _Cache(FunctionCache):
    _impl_class = _Impl


class _DeferredCache:
    """Stands in for a dispatcher's cache; opens the real one on first use."""

    def __init__(self, py_func):
        self._py_func = py_func
        self._real = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._real is None:
                real = NullCache()
                if enabled():
                    # RuntimeError: no locator, the folder is unwritable (warned)
                    with contextlib.suppress(RuntimeError):
                        real = _Cache(self._py_func)
                self._real = real
            return self._real

    def load_overload(self, *args, **kwargs):
        return self._get().load_overload(*args, **kwargs)

    def save_overload(self, *args, **kwargs):
        return self._get().save_overload(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._get(), name)


def attach(obj):
    """Give a numba dispatcher or ``CFunc`` patchjit's disk cache (opened lazily)."""
    py_func = getattr(obj, "py_func", None) or obj._pyfunc
    obj._cache = _DeferredCache(py_func)
    return obj
