"""Charts of experiment results, drawn with matplotlib's Agg canvas (no display, no global backend switch)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["COMPARISON_PANELS", "comparison_chart"]

#: (summary key, panel title, unit, whether higher is better)
COMPARISON_PANELS = (
    ("throughput_rps", "Throughput", "requests/s", True),
    ("energy_per_request_j", "Energy per request", "J", False),
    ("latency_p99_s", "p99 latency", "s", False),
)

_PREFIXES = ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))


def _unit_scale(values: list, unit: str) -> tuple[float, str]:
    """(multiplier, label) so the largest value reads between 1 and 1000 (J -> mJ, s -> ms); rates unscaled."""
    largest = max((abs(v) for v in values if v is not None), default=0.0)
    if unit not in ("J", "s") or largest == 0:
        return 1.0, unit
    for scale, prefix in _PREFIXES:
        if largest >= scale:
            return 1.0 / scale, prefix + unit
    return 1e12, "p" + unit


def comparison_chart(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """A PNG with one bar panel per metric of :data:`COMPARISON_PANELS`, one bar per row (policy).

    ``rows`` are comparison rows (``label`` plus summary keys; ``None`` for a missing value, drawn as no
    bar). Each bar is annotated with its value. Returns the path written.
    """
    labels = [str(r["label"]) for r in rows]
    width_in = max(9.0, 3.0 * len(COMPARISON_PANELS) * max(1.0, len(labels) / 4))
    fig = Figure(figsize=(width_in, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(COMPARISON_PANELS))
    colors = [f"C{i % 10}" for i in range(len(labels))]
    for ax, (key, name, base_unit, higher_better) in zip(axes, COMPARISON_PANELS):
        values = [r.get(key) for r in rows]
        scale, unit = _unit_scale(values, base_unit)
        heights = [v * scale if v is not None else 0.0 for v in values]
        bars = ax.bar(range(len(labels)), heights, color=colors)
        for bar, v in zip(bars, values):
            text = "n/a" if v is None else f"{v * scale:.3g}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 3 else 0, ha="right"
                      if len(labels) > 3 else "center", fontsize=8)
        ax.set_title(f"{name} ({'higher' if higher_better else 'lower'} is better)", fontsize=10)
        ax.set_ylabel(unit)
        ax.margins(y=0.15)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
