"""Charts of a sweep's results: Pareto fronts and heatmaps, in one PNG (matplotlib's Agg canvas).

- **Pareto fronts**, one panel per (model, hardware preset): every run as a point, ``x`` against ``y``
  (both lower is better; by default p99 latency and energy per request), coloured by policy; the runs no
  other run of the panel beats on both are ringed and joined by a step line.
- **Heatmaps**, one panel per (model, preset, policy) whose runs vary along a grid axis: ``metric`` over
  the first two axes that vary (in the table's column order: hardware overrides ``hardware_*``, policy
  parameters ``param_*``, then the workload's ``rate_rps``, ``cv``, ``seed``, ``arrival``, ``dataset``), or the
  one or two given. Runs that differ
  only along other axes are averaged into one cell (the title says over which).

Raises ``ValueError`` for missing columns or an empty table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ebatch.experiments.study.tune import pareto_front

__all__ = ["axis_columns", "sweep_chart"]

WORKLOAD_AXES = ("rate_rps", "cv", "seed", "arrival", "dataset")
_PANEL_IN = 4.2


def axis_columns(runs: pd.DataFrame) -> list[str]:
    """The columns that vary within ``runs`` and are sweep axes, in the order heatmaps take them."""
    candidates = [c for c in runs.columns if c.startswith(("param_", "hardware_"))] + \
        [c for c in WORKLOAD_AXES if c in runs.columns]
    return [c for c in candidates if runs[c].nunique(dropna=True) > 1]


def _label(column: str) -> str:
    return column.removeprefix("param_").removeprefix("hardware_")


def _sorted_values(series: pd.Series) -> list:
    values = series.dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _tick(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}" if isinstance(value, float) else str(value)


def _pareto(ax, runs: pd.DataFrame, x: str, y: str, title: str, colors: dict) -> None:
    for policy, group in runs.groupby("policy"):
        ax.scatter(group[x], group[y], s=18, color=colors[policy], alpha=0.75, label=policy)
    finite = runs[np.isfinite(runs[x]) & np.isfinite(runs[y])]
    if not finite.empty:
        front = finite[pareto_front(finite, x, y)].sort_values(x)
        ax.step(front[x], front[y], where="post", color="black", linewidth=0.8)
        ax.scatter(front[x], front[y], s=60, facecolors="none", edgecolors="black", linewidths=1.0,
                   label="Pareto front")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _heatmap(ax, runs: pd.DataFrame, axes: list[str], metric: str, title: str) -> None:
    col = axes[0]
    row = axes[1] if len(axes) > 1 else None
    cols = _sorted_values(runs[col])
    rows = _sorted_values(runs[row]) if row else [None]
    grid = np.full((len(rows), len(cols)), np.nan)
    for (i, r), (j, c) in ((a, b) for a in enumerate(rows) for b in enumerate(cols)):
        cell = runs[(runs[col] == c) & ((runs[row] == r) if row else True)][metric]
        if cell.notna().any():
            grid[i, j] = cell.mean()
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label=metric)
    middle = np.nanmean([np.nanmin(grid), np.nanmax(grid)]) if np.isfinite(grid).any() else 0.0
    for i, j in zip(*np.nonzero(np.isfinite(grid))):
        ax.annotate(f"{grid[i, j]:.3g}", (j, i), ha="center", va="center", fontsize=7,
                    color="black" if grid[i, j] > middle else "white")
    ax.set_xticks(range(len(cols)), [_tick(v) for v in cols], fontsize=7)
    ax.set_xlabel(_label(col))
    ax.set_yticks(range(len(rows)), [_tick(v) for v in rows] if row else [""], fontsize=7)
    ax.set_ylabel(_label(row) if row else "")
    others = [_label(c) for c in axis_columns(runs) if c not in axes]
    ax.set_title(title + (f"\nmean over {', '.join(others)}" if others else ""), fontsize=9)


def sweep_chart(runs: pd.DataFrame, path: str | Path, x: str = "latency_p99_s", y: str = "energy_per_request_j",
                metric: str = "energy_per_request_j", axes: list[str] | None = None) -> Path:
    """Draw the Pareto panels and the heatmaps of ``runs`` (a sweep's results table) into ``path``."""
    if runs.empty:
        raise ValueError("plot: the results hold no runs yet; run the sweep first")
    for name, column in (("x", x), ("y", y), ("metric", metric), *(("axes", a) for a in axes or [])):
        if column not in runs.columns:
            raise ValueError(f"{name}: no column {column!r} in the results; choose one of {', '.join(runs.columns)}")
    if axes is not None and not 1 <= len(axes) <= 2:
        raise ValueError(f"axes: give one or two columns, got {len(axes)}")
    colors = {policy: f"C{i % 10}" for i, policy in enumerate(sorted(runs["policy"].unique()))}
    panels = [(f"{m} on {h}", g) for (m, h), g in runs.groupby(["model", "hardware"])]
    maps = []
    for (m, h, p), group in runs.groupby(["model", "hardware", "policy"]):
        chosen = axes or axis_columns(group)[:2]
        if chosen and all(group[a].nunique(dropna=True) > 0 for a in chosen):
            maps.append((f"{p}, {m} on {h}", group, chosen))
    columns = min(4, max(len(panels), len(maps), 1))
    pareto_rows, map_rows = -(-len(panels) // columns), -(-len(maps) // columns)
    fig = Figure(figsize=(_PANEL_IN * columns, 3.6 * (pareto_rows + map_rows)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(pareto_rows + map_rows, columns)
    for k, (title, group) in enumerate(panels):
        _pareto(fig.add_subplot(grid[k // columns, k % columns]), group, x, y, title, colors)
    for k, (title, group, chosen) in enumerate(maps):
        _heatmap(fig.add_subplot(grid[pareto_rows + k // columns, k % columns]), group, chosen, metric, title)
    path = Path(path)
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise ValueError(f"out: cannot write {str(path)!r} ({exc.strerror or exc})") from None
    return path
