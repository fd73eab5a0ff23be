"""Files of ``ebatch tune``: the swept points, the Pareto front, the JSON result and the front's figure."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

from ebatch.experiments.report.figures import pyplot, save
from ebatch.experiments.study.tune import TuneResult

__all__ = ["tune_front_chart", "write_tune"]

MARKERS = ("o", "v", "^", "s", "D", "P", "X", "<", ">", "h", "p", "d")


def write_tune(tuned: TuneResult, out_dir: str | Path) -> list[Path]:
    """Write points.csv, front.csv, tune.json and tune.png (the front with the chosen point) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "points.csv", out / "front.csv", out / "tune.json"]
    tuned.points.to_csv(paths[0], index=False)
    tuned.front.to_csv(paths[1], index=False)
    paths[2].write_text(json.dumps(tuned.to_json(), indent=2, default=float))
    paths.append(tune_front_chart(tuned, out / "tune.png"))
    return paths


def _decades(axis) -> float:
    low, high = axis.get_view_interval()
    return math.log10(high / low) if low > 0 and high > 0 else 0.0


def tune_front_chart(tuned: TuneResult, path) -> Path:
    """Every (B, T) point (colour: B, marker: T), the Pareto front of p99 latency vs energy (ringed and
    joined), the chosen point and the SLO; the load in the title."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    points = tuned.points
    b_values = sorted(points["batch_size"].unique())
    colours = {b: plt.cm.viridis(i / max(1, len(b_values) - 1)) for i, b in enumerate(b_values)}
    t_values = sorted(points["timesteps"].unique())
    markers = {t: MARKERS[i % len(MARKERS)] for i, t in enumerate(t_values)}
    for (b, t), group in points.groupby(["batch_size", "timesteps"]):
        ax.scatter(group["latency_p99_s"], group["energy_per_request_j"] * 1e3, s=22, color=colours[b],
                   marker=markers[t])
    front = tuned.front
    ax.scatter(front["latency_p99_s"], front["energy_per_request_j"] * 1e3, s=90, facecolors="none",
               edgecolors="black", lw=0.8)
    ax.plot(front["latency_p99_s"], front["energy_per_request_j"] * 1e3, color="black", lw=1, label="Pareto front")
    for b, colour in colours.items():
        ax.scatter([], [], color=colour, marker="s", s=22, label=f"B={b}")
    for t, marker in markers.items():
        ax.scatter([], [], color="grey", marker=marker, s=22, label=f"T={t}")
    best = tuned.best
    ax.scatter([best["latency_p99_s"]], [best["energy_per_request_j"] * 1e3], marker="*", s=220, color="red",
               zorder=5, label=f"chosen: B={best['batch_size']}, T={best['timesteps']}")
    if tuned.latency_slo_s is not None:
        ax.axvline(tuned.latency_slo_s, color="red", ls="--", lw=0.8, label="p99 SLO")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import LogLocator, ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):  # plain numbers (5, 6, 8), not 5 x 10^0, on short log ranges
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter() if _decades(axis) < 1 else plt.NullFormatter())
    ax.set_xlabel("p99 latency (s)")
    ax.set_ylabel("energy per request (mJ)")
    ax.set_title(f"tune {tuned.settings.get('model', '')} on {tuned.settings.get('hardware', '')}: "
                 f"objective {tuned.objective}\n" + textwrap.fill(tuned.settings.get("load", ""), 80), fontsize=8)
    ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return save(fig, path)
