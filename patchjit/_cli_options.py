"""The command line's option values, parsed and checked before any file is read:
numbers per axis, patch, step, margin, scale, sizes, op arguments. Each failure is a
:class:`~patchjit._jobs.UsageError` (exit status 2) naming the flag and the value."""

from __future__ import annotations

from collections.abc import Sequence

from ._jobs import UsageError


def _parse_numbers(text: str, flag: str, kind=int, minimum: int = 1) -> tuple:
    """One number or one per axis, comma-separated; integers must be ``>= minimum``."""
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"{flag} must be one number or one per axis separated by commas, got {text!r}"
        ) from None
    if kind is int and any(v < minimum for v in values):
        what = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        raise UsageError(f"{flag} must be {what}, got {text!r}")
    return values


def _per_patch_axis(values: tuple | None, k: int, flag: str) -> tuple | None:
    """``values`` on every patch axis: one value for all of them, or exactly ``k``."""
    if values is None:
        return None
    if len(values) not in (1, k):
        raise UsageError(f"{flag}: give 1 or {k} values (one per patch axis), got {len(values)}")
    return values * k if len(values) == 1 else values


def _parse_patch(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    patch = _parse_numbers(text, "--patch")
    if len(patch) > 3:
        raise UsageError(f"--patch takes 1, 2 or 3 sizes, got {text!r}")
    return patch * 2 if len(patch) == 1 else patch


def _resolve_step(args, patch: tuple[int, ...], tile: tuple[int, ...]) -> tuple[int, ...]:
    """The step on every patch axis, from ``--step`` or ``--overlap``: resolved once here.

    ``tile`` is the output tile (``patch - 2 * margin``; the patch without
    ``--margin``): the grid the step and the overlap apply to, as in the API. A step
    larger than the tile leaves pixels no patch covers, which only ``--edge valid``
    allows: a usage error otherwise, before any file is read.
    """
    from ._validate import resolve_step

    if args.step is not None and args.overlap is not None:
        raise UsageError("give either --step or --overlap, not both")
    step = _parse_numbers(args.step, "--step") if args.step is not None else None
    overlap = _parse_numbers(args.overlap, "--overlap", float) if args.overlap else None
    given = _per_patch_axis(step or overlap, len(patch), "--step/--overlap")
    try:
        resolved = resolve_step(given if step else None, given if overlap else None, tile)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--overlap: {exc}") from None
    if args.edge != "valid" and any(s > t for s, t in zip(resolved, tile)):
        size = "--patch" if tile == patch else "the output tile (--patch - 2 * --margin)"
        raise UsageError(
            f"--step {','.join(map(str, resolved))} is larger than {size} "
            f"{','.join(map(str, tile))}: pixels between patches would be covered by none; "
            f"give a step <= the patch size, or --edge valid (uncovered pixels become NaN)"
        )
    return resolved


def _resolve_margin(args, patch: tuple[int, ...]) -> tuple[tuple[int, ...] | None, tuple]:
    """``--margin`` on every patch axis (None without it, or 0) and the output tile."""
    if args.margin is None:
        return None, patch
    margin = _per_patch_axis(_parse_numbers(args.margin, "--margin", minimum=0), len(patch),
                             "--margin")  # fmt: skip
    tile = tuple(p - 2 * m for p, m in zip(patch, margin))
    if any(t < 1 for t in tile):
        raise UsageError(
            f"--margin {args.margin} leaves no output of --patch {','.join(map(str, patch))}: "
            f"the output tile (patch - 2 * margin) would be {','.join(map(str, tile))}; give "
            f"a margin of at most {','.join(str((p - 1) // 2) for p in patch)}"
        )
    return (margin if any(margin) else None), tile


def _resolve_scale(args, tile: tuple[int, ...], step: tuple[int, ...]) -> tuple | None:
    """``--scale`` on every patch axis (integers and 1/integers; None without it, or 1).

    For a 1/d scale, the tile and the step must be multiples of d so that patch origins
    map to whole output pixels (the image size is checked per file, by the API).
    """
    from ._plan import _scales

    if args.scale is None:
        return None
    values = _per_patch_axis(_parse_numbers(args.scale, "--scale", float), len(tile),
                             "--scale")  # fmt: skip
    try:
        fractions = _scales(values, len(tile))
    except ValueError:
        raise UsageError(
            f"--scale must be positive integers (2, 4) or 1/integers (0.5, 0.25), "
            f"got {args.scale!r}"
        ) from None
    for t, s, f in zip(tile, step, fractions):
        if (t * f).denominator != 1 or (s * f).denominator != 1:
            raise UsageError(
                f"--scale {args.scale}: the output tile {','.join(map(str, tile))} and "
                f"--step {','.join(map(str, step))} must be multiples of {f.denominator} "
                f"so that patch origins map to whole output pixels"
            )
    if all(f == 1 for f in fractions):
        return None
    return tuple(int(f) if f.denominator == 1 else float(f) for f in fractions)


# --max-memory units: decimal (kB, MB, GB, TB) and binary (KiB, MiB, GiB, TiB); "B" or none
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20,
          "gib": 1 << 30, "tib": 1 << 40}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes from ``"2GB"``, ``"512MB"``, ``"64MiB"``, ``"1.5G"`` or ``"1000000"``."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise UsageError(
            f"--max-memory must be a size such as 2GB, 512MB or 64MiB (units B, kB, MB, GB, "
            f"TB and KiB, MiB, GiB, TiB), got {text!r}"
        )
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1 << 20:
        raise UsageError(f"--max-memory must be at least 1MiB, got {text!r}")
    return size


def _check_max_memory(text: str | None) -> int | None:
    """The budget in bytes; dask (the out-of-core engine) must be installed."""
    if text is None:
        return None
    size = parse_size(text)
    try:
        from . import dask  # noqa: F401
    except ImportError:
        raise UsageError(
            "--max-memory processes large images with dask, which is not installed: "
            'pip install "patchjit[dask]"'
        ) from None
    return size


def _parse_args(items: Sequence[str]) -> tuple:
    values = []
    for text in items:
        try:
            values.append(int(text))
        except ValueError:
            try:
                values.append(float(text))
            except ValueError:
                raise UsageError(f"--arg must be a number, got {text!r}") from None
    return tuple(values)


def _parse_params(op_name: str, items: Sequence[str]) -> tuple[tuple[str, object], ...]:
    """The op's parameters from ``KEY=VALUE`` items, checked by the op itself."""
    from . import ops

    try:
        op = ops.get(op_name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    given = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--param must be KEY=VALUE, got {item!r}")
        given[key] = value
    try:
        values = op._check_params(given)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--param: {exc}") from None
    return tuple(values.items())


def _check_map_op(op_name: str, args) -> None:
    """Map ops give one value per pixel: step 1, edge pad, no window."""
    from . import ops

    if ops.get(op_name).kind != "map":
        return
    for flag, value in (("--step", args.step), ("--overlap", args.overlap),
                        ("--window", args.window)):  # fmt: skip
        if value is not None:
            raise UsageError(f"op {op_name!r} is a map op (one value per pixel): no {flag}")
    if args.edge not in (None, "pad"):
        raise UsageError(f"op {op_name!r} is a map op: --edge must be pad, got {args.edge}")
