"""Hand a call with a dask array to :mod:`patchjit.dask`, which is imported only then."""

from __future__ import annotations


def is_dask(x) -> bool:
    """True for a dask array, checked without importing dask (an optional extra)."""
    return type(x).__module__.split(".")[0] == "dask"


def on_dask(name: str, params: dict):
    """Run ``patchjit.dask.<name>(**params)`` (lazy result)."""
    from . import dask as lazy

    return getattr(lazy, name)(**params)
