"""The headline sections of the reproduction report: the converged headline, energy under load, convergence.

Every number comes from the result: the headline (``result.headline``, on ``result.headline_basis``), the
convergence rows (whole run and steady state on each backlog) and the cases' runs under Poisson load.
"""

from __future__ import annotations

from ebatch.experiments.formatting import geomean, number, times
from ebatch.experiments.report.markdown import markdown_table
from ebatch.experiments.study.reproduce_results import ReproduceResult

__all__ = ["convergence_section", "headline_section", "quick_notice"]

BASES = ("cellular", "padding", "padding-sorted")


def quick_notice(result: ReproduceResult) -> str:
    """A plain warning for ``--quick`` runs (empty otherwise)."""
    if not result.config.quick_run:
        return ""
    return ("> **`--quick` run: these figures are not comparable to the paper's.** It follows the full protocol "
            f"on {result.config.requests} requests per network instead of the whole test sets (fewer load points, "
            "smaller studies), so fill and drain transients and sampling noise weigh far more; run "
            "`ebatch reproduce` without `--quick` for the converged figures.")


def _row(result: ReproduceResult, preset: str, factor: int, window: str) -> dict[str, float]:
    for r in result.convergence:
        if (r.preset, r.backlog_factor, r.window) == (preset, factor, window):
            return dict(r.ratios)
    return {}


def _drift(result: ReproduceResult, window: str) -> float:
    """The largest relative change of a cellular ratio between the two largest backlogs, over presets."""
    factors = sorted({r.backlog_factor for r in result.convergence})
    if len(factors) < 2:
        return float("nan")
    changes = []
    for preset in result.headline:
        big, prev = _row(result, preset, factors[-1], window), _row(result, preset, factors[-2], window)
        changes += [abs(big[k] / prev[k] - 1) for k in ("throughput_vs_cellular", "energy_efficiency_vs_cellular")]
    return max(changes)


def headline_section(result: ReproduceResult) -> str:
    """The headline table beside the paper's figures, its basis and why, and energy under load."""
    rows = []
    for preset, h in result.headline.items():
        paper = result.paper.get(preset, {})
        rows.append([f"`{preset}`", times(h["throughput_vs_cellular"]), times(paper.get("throughput")),
                     times(h["energy_efficiency_vs_cellular"]), times(paper.get("energy_efficiency")),
                     times(h["throughput_vs_padding"]), times(h["energy_efficiency_vs_padding"]),
                     times(h["p99_latency_vs_cellular"])])
    header = ["preset", "throughput vs cellular", "paper", "requests/J vs cellular", "paper",
              "throughput vs padding", "requests/J vs padding", "p99 latency vs cellular (lower is better)"]
    factors = sorted({r.backlog_factor for r in result.convergence})
    largest = factors[-1] if factors else 1
    why = (
        f"Throughput and requests per joule are the **{result.headline_basis}** ({largest}x the test set, "
        "resampled): a finite backlog starts with every batch full at once and ends with partly filled batches "
        "and, for cellular batching, a tail of the longest requests run a few at a time; the steady-state "
        "window (the middle 80% of completions, work counted in cells, docs/metrics.md) leaves both out, so "
        "it measures the regime a server under a sustained backlog sits in, and the largest backlog is the "
        "one least moved by sampling."
    )
    if len(factors) >= 2:
        why += (f" Between the {factors[-2]}x and {factors[-1]}x backlogs the steady-state ratios to cellular "
                f"move by at most {100 * _drift(result, 'steady'):.1f}%, the whole-run ratios by up to "
                f"{100 * _drift(result, 'whole'):.1f}% (convergence table below).")
        falling = all(_row(result, p, factors[-1], "steady")["throughput_vs_cellular"]
                      < 0.99 * _row(result, p, factors[-2], "steady")["throughput_vs_cellular"]
                      for p in result.headline)
        if falling:
            why += (" The steady-state ratio to cellular still falls by over 1% as the backlog grows: cellular "
                    "batching's own "
                    "throughput grows with the number of queued requests it can pick ready cells from, so the "
                    "headline ratio to it is an upper bound for a longer backlog.")
    why += (f" p99 latency is under Poisson arrivals at {result.config.load_fraction:g} x S on the test set. "
            "The paper's figures are \"over the state of the art\" (its abstract); ours are E-BATCH over "
            "cellular batching and over plain padding on this simulator.")
    return "\n\n".join(s for s in [
        "## Headline (geometric mean over networks)", quick_notice(result), markdown_table(header, rows), why,
        _energy_under_load(result),
    ] if s)


def _energy_under_load(result: ReproduceResult) -> str:
    header = ["preset", "E-BATCH mJ/request", *(f"{b} mJ/request" for b in BASES),
              *(f"requests/J vs {b}" for b in BASES)]
    rows = []
    for preset, h in result.headline.items():
        cases = result.cases_on(preset)
        mj = {label: geomean([c.policies[label].poisson.energy_per_request_j * 1e3 for c in cases])
              for label in ("ebatch", *BASES)}
        rows.append([f"`{preset}`", number(mj["ebatch"]), *(number(mj[b]) for b in BASES),
                     *(times(h[f"energy_efficiency_under_load_vs_{b}"]) for b in BASES)])
    return ("### Second headline: energy per request under load\n\n"
            f"Every policy serving the test set as Poisson arrivals at {result.config.load_fraction:g} x S (S: the "
            "best baseline's offline throughput); energy per request over the whole run (static power is charged "
            "only while a step runs, docs/metrics.md), geometric means over networks.\n\n"
            + markdown_table(header, rows))


def convergence_section(result: ReproduceResult) -> str:
    """E-BATCH's offline ratios on every backlog, over the whole run and over the steady-state window."""
    if not result.convergence:
        return ""
    requests = {}
    for case in result.cases:
        for b in case.backlogs:
            requests.setdefault((case.preset, b.factor), []).append(b.requests)
    header = ["preset", "backlog", "window", *(f"{k} vs {b}" for b in BASES for k in ("throughput", "requests/J"))]
    rows = []
    for r in result.convergence:
        sizes = "/".join(str(n) for n in requests.get((r.preset, r.backlog_factor), []))
        backlog = ("test set" if r.backlog_factor == 1 else f"{r.backlog_factor}x resampled") + f" ({sizes})"
        rows.append([f"`{r.preset}`", backlog, r.window,
                     *(times(r.ratios[f"{k}_vs_{b}"]) for b in BASES for k in ("throughput", "energy_efficiency"))])
    return ("## Convergence of the offline ratios\n\n"
            "Every policy offline on the test set and on backlogs of 2x and 4x as many requests drawn from it with "
            f"seed {result.config.seed} (with replacement once they outnumber it); requests per network in "
            "brackets, in the order of the networks. `whole`: completed / makespan and completed / energy of the "
            "whole run; `steady`: the same over the middle 80% of completions. Geometric means over networks.\n\n"
            + markdown_table(header, rows))
