"""Bar chart of the benchmark times: one group per workload, one bar per tool, log scale.

Bars with a red cross-hatch are WRONG results (or a merge that cannot average); faded,
dotted bars are the estimated time of a call that was not run (too slow). Tools that
were not run at all have no bar; the table (latest.md) says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools import TOOLS
from workloads import Workload

WIDTH = 0.8  # of a workload group


def _bar(row: dict[str, Any]) -> tuple[float, str] | None:
    """(seconds, kind) to draw for a row: kind is "ok", "wrong" or "estimate"."""
    if row["status"] in ("ok", "wrong", "cannot average") and row.get("median_s"):
        return row["median_s"], "ok" if row["status"] == "ok" else "wrong"
    if row["status"] == "too slow" and row.get("estimate_s"):
        return row["estimate_s"], "estimate"
    return None


def _draw_group(ax, x: float, rows: list[dict[str, Any]], colors: dict[str, Any]) -> None:
    width = WIDTH / max(len(rows), 1)
    for i, row in enumerate(rows):
        bar = _bar(row)
        if bar is None:
            continue
        t, kind = bar
        ax.bar(
            x - WIDTH / 2 + (i + 0.5) * width, t, width * 0.9,
            color=colors[row["tool"]], alpha=0.35 if kind == "estimate" else 1.0,
            hatch={"wrong": "xx", "estimate": ".."}.get(kind),
            edgecolor="red" if kind == "wrong" else "black", linewidth=0.6,
        )  # fmt: skip


def plot_times(
    rows: list[dict[str, Any]], workloads: list[Workload], path: Path, machine: dict[str, Any]
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    tools = [t for t in TOOLS if any(r["tool"] == t for r in rows)]
    colors = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(tools)}
    names = [w.name for w in workloads]
    fig, ax = plt.subplots(figsize=(max(8.0, 1.5 * len(names)), 5))
    for x, name in enumerate(names):
        _draw_group(ax, x, [r for r in rows if r["workload"] == name], colors)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("median time per call (s, log scale)")
    ax.grid(axis="y", which="both", alpha=0.3)
    handles = [Patch(color=colors[t], label=t) for t in tools] + [
        Patch(facecolor="white", edgecolor="red", hatch="xx", label="WRONG / no mean"),
        Patch(facecolor="white", edgecolor="black", hatch="..", label="estimated (not run)"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(
        f"patchjit and peers · {machine['cpu_model']}, {machine['usable_cores']} cores · "
        f"{machine['date'][:10]}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
