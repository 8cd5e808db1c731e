"""Hand a call with a dask array to :mod:`patchjit.dask`, which is imported only then."""

from __future__ import annotations

# Options of the in-memory functions that the dask twins do not take yet, with their
# defaults.
_NOT_ON_DASK = {"margin": 0, "scale": 1, "finalize": None}


def is_dask(x) -> bool:
    """True for a dask array, checked without importing dask (an optional extra)."""
    return type(x).__module__.split(".")[0] == "dask"


def on_dask(name: str, params: dict):
    """Run ``patchjit.dask.<name>(**params)`` (lazy result)."""
    from . import dask as lazy

    params = dict(params)
    for key, default in _NOT_ON_DASK.items():
        if key not in params:
            continue
        value = params.pop(key)
        plain = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (value is default or (plain and value == default)):
            raise NotImplementedError(
                f"{name}({key}={value!r}) is not supported on dask arrays yet; compute the "
                f"image first (numpy.asarray(image)) or drop {key}="
            )
    return getattr(lazy, name)(**params)
