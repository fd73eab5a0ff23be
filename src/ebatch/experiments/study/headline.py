"""E-BATCH's headline ratios from a set of run results: the one place they are computed.

``ebatch reproduce`` and any study that varies an assumption (a tornado chart, a sensitivity table) call
these on the summaries of its runs, so that every headline figure means the same thing:

- :func:`offline_ratios`: throughput and requests per joule of E-BATCH over each baseline under an
  offline backlog, over the whole run (``steady=False``) or its steady-state window (``steady=True``,
  the middle 80% of completions, docs/metrics.md);
- :func:`load_ratios`: under load, p99 latency (lower is better) and requests per joule;
- :func:`geomean_ratios`: the geometric mean over networks of each ratio (NaN if any is missing).

Every function takes ``{label: summary}`` with ``"ebatch"`` among the labels; a summary is
``SimulationResult.summary()`` or a :class:`~ebatch.experiments.study.reproduce_results.RunFigures`'s fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ebatch.experiments.formatting import geomean, ratio

__all__ = ["BASELINES", "geomean_ratios", "load_ratios", "offline_ratios"]

#: The baselines E-BATCH is compared with (labels of :func:`~ebatch.experiments.study.reproduce_config.policy_specs`).
BASELINES = ("cellular", "padding", "padding-sorted")

Summaries = Mapping[str, Mapping[str, Any]]


def _get(summary, key: str) -> float:
    return summary[key] if isinstance(summary, Mapping) else getattr(summary, key)


def offline_ratios(runs: Summaries, steady: bool = False) -> dict[str, float]:
    """``throughput_vs_<base>`` and ``energy_efficiency_vs_<base>`` for each baseline present, and
    ``..._vs_best_baseline`` (over the best baseline's figure)."""
    prefix = "steady_" if steady else ""
    thr, eff = f"{prefix}throughput_rps", f"{prefix}requests_per_j"
    e = runs["ebatch"]
    bases = [b for b in BASELINES if b in runs]
    ratios = {}
    for base in bases:
        ratios[f"throughput_vs_{base}"] = ratio(_get(e, thr), _get(runs[base], thr))
        ratios[f"energy_efficiency_vs_{base}"] = ratio(_get(e, eff), _get(runs[base], eff))
    if bases:
        ratios["throughput_vs_best_baseline"] = ratio(_get(e, thr), max(_get(runs[b], thr) for b in bases))
        ratios["energy_efficiency_vs_best_baseline"] = ratio(_get(e, eff), max(_get(runs[b], eff) for b in bases))
    return ratios


def load_ratios(runs: Summaries, suffix: str = "") -> dict[str, float]:
    """``p99_latency<suffix>_vs_<base>`` (E-BATCH's p99 over the baseline's: lower is better) and
    ``energy_efficiency_under_load<suffix>_vs_<base>`` (requests per joule, higher is better)."""
    e = runs["ebatch"]
    ratios = {}
    for base in (b for b in BASELINES if b in runs):
        p = runs[base]
        ratios[f"p99_latency{suffix}_vs_{base}"] = ratio(_get(e, "latency_p99_s"), _get(p, "latency_p99_s"))
        ratios[f"energy_efficiency_under_load{suffix}_vs_{base}"] = ratio(
            _get(e, "requests_per_j"), _get(p, "requests_per_j"))
    return ratios


def geomean_ratios(per_network: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The geometric mean of each key over the networks (keys of the first mapping)."""
    rows = list(per_network)
    if not rows:
        return {}
    return {key: geomean([row.get(key, float("nan")) for row in rows]) for key in rows[0]}
