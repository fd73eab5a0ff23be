"""The Markdown report of ``ebatch reproduce`` (``docs/reproduction.md``), built from its typed result.

Every number in it comes from the result (its configuration included) or from the presets and models it
names; the prose around the numbers says what they mean and where our setting differs from the paper's.
``report(result)`` returns the whole page.
"""

from __future__ import annotations

from ebatch.experiments.formatting import number, ratio, times
from ebatch.experiments.report.markdown import markdown_table
from ebatch.experiments.report.paper_gaps import paper_gaps, tornado_pointer
from ebatch.experiments.report.reproduce_discussion import discussion
from ebatch.experiments.report.reproduce_headline import convergence_section, headline_section
from ebatch.experiments.study.reproduce_config import POLICY_LABELS, policy_specs
from ebatch.experiments.study.reproduce_results import ReproduceResult
from ebatch.experiments.study.tune import OBJECTIVE_MEANINGS
from ebatch.workload.datasets import DEFAULT_SUBWORD_FACTOR

__all__ = ["markdown_table", "report"]


def _setup(result: ReproduceResult) -> str:
    cfg = result.config
    nets = []
    for case in result.cases_on(result.cases[0].preset):
        rate = (f", {case.frame_rate_hz:g} frames/s" if case.frame_rate_hz
                else f", words x {DEFAULT_SUBWORD_FACTOR:g} subword tokens")
        nets.append(f"- `{case.network}` on `{case.dataset}`{rate}: {case.requests} requests, "
                    f"mean length {case.length_mean:.1f}, longest {case.length_max} time-steps.")
    curve = ", ".join(f"{f:g}" for f in cfg.curve_fractions)
    baselines = [label for label, _, _ in policy_specs(cfg)]
    figures = ["normalised.png", "energy_breakdown.png", "latency_vs_load.png"]
    figures += ["sensitivity.png"] if result.sensitivity else []
    figures += ["auto_study.png"] if result.auto_study else []
    return "\n".join([
        "## Setup", "",
        *nets, "",
        f"- Policies, all with B = {cfg.batch_size}: `padding`; `padding` with `sort_window={cfg.sort_window}` "
        "(\"padding-sorted\"); `cellular`; `ebatch` with T tuned per network and preset (below).",
        "- **Offline**: every request queued at time 0; throughput = completed / makespan, energy efficiency = "
        "requests per joule; on the test set and on backlogs of "
        + ", ".join(f"{f}x" for f in cfg.backlog_factors if f != 1)
        + " its size resampled with the seed, each over the whole run and over its steady state "
        "(the middle 80% of completions).",
        "- **Saturation S** of a network on a preset: the best offline throughput among the baselines "
        f"({', '.join(baselines)}), i.e. the capacity of the state of the art. E-BATCH is not part "
        "of S, so the load does not depend on the tuning.",
        f"- **Latency**: Poisson arrivals at {cfg.load_fraction:g} x S, and the `{cfg.trace}` trace (its first "
        "requests) time-scaled to the same mean rate; p50/p99 of arrival-to-notification latency. A policy "
        "whose offline throughput is below the offered load is overloaded (marked *): its p99 grows with "
        "the number of requests. Latency versus load at "
        f"{curve} x S (Poisson).",
        "- **T tuning**: `ebatch.experiments.study.tune.tune` sweeps T = 1, 2, 4, ... up to the longest request at "
        f"B = {cfg.batch_size} under the Poisson load above and picks the objective `{cfg.tune_objective}` "
        f"({OBJECTIVE_MEANINGS[cfg.tune_objective]}; ties to the smaller T).",
        "- Same request lengths (seed "
        f"{cfg.seed}) for every policy of a network; figures in `DIR/` ("
        + ", ".join(f"`{name}`" for name in figures) + "), every number in `DIR/reproduction.json`.",
    ])


def _cases(result: ReproduceResult) -> str:
    header = ["network", "preset", "policy", "T", "throughput (req/s)", "req/J", "mJ/req", "padding",
              "p50 (s)", "p99 (s)", "p99 trace (s)", "E-BATCH thr. ratio", "E-BATCH req/J ratio",
              "E-BATCH p99 ratio"]
    rows = []
    for case in result.cases:
        e = case.policies["ebatch"]
        for policy in POLICY_LABELS:
            p = case.policies[policy]
            mark = "*" if p.overloaded else ""
            own = policy == "ebatch"
            rows.append([
                case.network, case.preset, policy, case.tuned_timesteps if own else "",
                number(p.offline.throughput_rps), number(p.offline.requests_per_j),
                number(p.offline.energy_per_request_j * 1e3), f"{p.offline.padding_fraction:.2f}",
                number(p.poisson.latency_p50_s) + mark, number(p.poisson.latency_p99_s) + mark,
                number(p.trace.latency_p99_s) + mark,
                "" if own else times(ratio(e.offline.throughput_rps, p.offline.throughput_rps)),
                "" if own else times(ratio(e.offline.requests_per_j, p.offline.requests_per_j)),
                "" if own else times(ratio(e.poisson.latency_p99_s, p.poisson.latency_p99_s)),
            ])
    loads = "; ".join(f"{c.network}/{c.preset}: S = {number(c.saturation_rps)} req/s ({c.saturation_policy}), "
                      f"load {number(c.load_rps)} req/s" for c in result.cases)
    return "## Per network and preset\n\n" + markdown_table(header, rows) + f"\n\nSaturation and load: {loads}.\n"


def _breakdown(result: ReproduceResult) -> str:
    header = ["network", "preset", "policy", "DRAM mJ/req", "SRAM mJ/req", "MAC mJ/req", "static mJ/req",
              "DRAM weight MB/req"]
    rows = []
    for case in result.cases:
        for policy in POLICY_LABELS:
            off = case.policies[policy].offline
            n = off.completed
            parts = [number(off.energy_breakdown_j[k] / n * 1e3) for k in ("dram", "sram", "mac", "static")]
            rows.append([case.network, case.preset, policy, *parts, number(off.dram_weight_bytes / n / 1e6)])
    return "## Where the energy goes (offline)\n\n" + markdown_table(header, rows)


def _curves(result: ReproduceResult) -> str:
    header = ["network", "preset", "policy"] + [f"{p.fraction:g} S" for p in result.cases[0].curve]
    rows = []
    for case in result.cases:
        for policy in POLICY_LABELS:
            rows.append([case.network, case.preset, policy,
                         *[number(p.policies[policy].latency_p99_s) for p in case.curve]])
    return "## p99 latency (s) versus offered load (Poisson)\n\n" + markdown_table(header, rows)


def _sensitivity(result: ReproduceResult) -> str:
    rows = result.sensitivity
    if not rows:
        return ""
    cfg = result.config
    header = ["preset", "parameter", "value", "thr. vs cellular", "req/J vs cellular", "thr. vs padding",
              "req/J vs padding"]
    body = []
    for r in rows:
        if r.factor is not None:
            shown = f"{r.factor:g} x ({number(r.value)})"
        else:
            shown = f"{'B' if r.parameter == 'batch_size' else 'N'} = {r.value}"
        body.append([r.preset, r.parameter, shown, times(r.throughput_vs_cellular),
                     times(r.energy_efficiency_vs_cellular), times(r.throughput_vs_padding),
                     times(r.energy_efficiency_vs_padding)])
    n = cfg.sensitivity_requests or cfg.requests
    if n is None:
        base = ("every request of each data set, as in the main runs, so the 1x rows and the B = "
                f"{cfg.batch_size} rows repeat the test set's whole-run ratios (convergence table)")
    else:
        base = f"{n} requests per network, so the 1x rows are the base presets on these requests"
    return ("## Sensitivity\n\nOne parameter at a time, offline, T as tuned for the base preset, geometric means "
            f"over networks; {base}. `requests` (N) varies how many requests are queued offline.\n\n"
            + markdown_table(header, body))


def _auto(result: ReproduceResult) -> str:
    rows = result.auto_study
    if not rows:
        return ""
    cfg = result.config
    header = ["network", "preset", "slots", "load (req/s)", "p99 SLO (s)", "best fixed T", "its p99 (s)",
              "its mJ/req", "auto p99 (s)", "auto mJ/req", "meets SLO", "auto / best fixed energy",
              "hold decisions / windows"]
    body = [[r.network, r.preset, "stream" if r.streaming else "whole", number(r.rate_rps),
             number(r.latency_slo_s), r.best_fixed_timesteps, number(r.best_fixed_latency_p99_s),
             number(r.best_fixed_energy_per_request_j * 1e3),
             number(r.auto_latency_p99_s), number(r.auto_energy_per_request_j * 1e3),
             "yes" if r.auto_meets_slo else "**no**", times(r.auto_energy_vs_best_fixed),
             f"{r.auto_held}/{r.auto_windows}"] for r in rows]
    return (
        "## `timesteps=\"auto\"` on a varying load\n\n"
        f"{cfg.auto_requests} requests per case; arrivals: the whole `{cfg.trace}` trace thinned to that many "
        "requests (every k-th arrival, keeping the trace's rise and fall over its hour) and time-scaled to "
        f"{cfg.load_fraction:g} x S. The SLO is {cfg.auto_slo_factor:g} x the lowest p99 any fixed T "
        "reaches on the same arrivals; \"best fixed T\" is the fixed T of lowest energy per request among those "
        f"meeting it. B = {cfg.batch_size}.\n\n" + markdown_table(header, body))


def _assumptions(result: ReproduceResult) -> str:
    parts = ["## Preset parameters that are assumptions", ""]
    for preset, items in result.assumptions.items():
        parts.append(f"`{preset}` ({len(items)} assumed parameters; the others carry a published source in "
                     f"`src/ebatch/hardware/presets/{preset}.yaml`):")
        parts.append("")
        parts += [f"- `{a.parameter}` = {number(float(a.value))}: {a.source}" for a in items]
        parts.append("")
    return "\n".join(parts)


def report(result: ReproduceResult) -> str:
    """The whole Markdown page."""
    timing = result.timing
    return "\n\n".join(s for s in [
        "# Reproducing E-BATCH (arXiv 2009.10656)",
        f"Generated by `{result.command or 'ebatch reproduce'}`"
        + (f" in {timing.wall_s:.0f} s" if timing is not None else "")
        + ". Do not edit by hand: rerun the command.",
        headline_section(result),
        discussion(result),
        _setup(result),
        convergence_section(result),
        _cases(result),
        _breakdown(result),
        _curves(result),
        _sensitivity(result),
        _auto(result),
        tornado_pointer(),
        paper_gaps(result.config),
        _assumptions(result),
    ] if s) + "\n"
