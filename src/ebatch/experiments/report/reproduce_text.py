"""The Markdown report of ``ebatch reproduce`` (``docs/reproduction.md``), built from its result dict.

Every number in it comes from the result; the prose around the numbers says what they mean and where
our setting differs from the paper's. ``report(result)`` returns the whole page.
"""

from __future__ import annotations

import math

from ebatch.experiments.report.reproduce_plots import POLICY_ORDER

__all__ = ["report"]


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _x(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _setup(result: dict) -> str:
    cfg = result["config"]
    nets = []
    for case in result["cases"]:
        if case["preset"] != result["cases"][0]["preset"]:
            continue
        rate = f", {case['frame_rate_hz']:g} frames/s" if case["frame_rate_hz"] else ", words x 1.3 subword tokens"
        nets.append(f"- `{case['network']}` on `{case['dataset']}`{rate}: {case['requests']} requests, "
                    f"mean length {case['length_mean']:.1f}, longest {case['length_max']} time-steps.")
    curve = ", ".join(f"{f:g}" for f in cfg["curve_fractions"])
    return "\n".join([
        "## Setup", "",
        *nets, "",
        f"- Policies, all with B = {cfg['batch_size']}: `padding`; `padding` with `sort_window={cfg['sort_window']}` "
        "(\"padding-sorted\"); `cellular`; `ebatch` with T tuned per network and preset (below).",
        "- **Offline**: every request queued at time 0; throughput = completed / makespan, energy efficiency = "
        "requests per joule.",
        "- **Saturation S** of a network on a preset: the best offline throughput among the three baselines "
        "(padding, padding-sorted, cellular), i.e. the capacity of the state of the art. E-BATCH is not part "
        "of S, so the load does not depend on the tuning.",
        f"- **Latency**: Poisson arrivals at {cfg['load_fraction']:g} x S, and the `{cfg['trace']}` trace (its first "
        "requests) time-scaled to the same mean rate; p50/p99 of arrival-to-notification latency. A policy "
        "whose offline throughput is below the offered load is overloaded (marked *): its p99 grows with "
        "the number of requests. Latency versus load at "
        f"{curve} x S (Poisson).",
        "- **T tuning**: `ebatch.experiments.study.tune.tune` sweeps T = 1, 2, 4, ... up to the longest request at "
        f"B = {cfg['batch_size']} under the Poisson load above and picks the objective `{cfg['tune_objective']}` "
        "(energy per request x p99 latency; ties to the smaller T).",
        "- Same request lengths (seed "
        f"{cfg['seed']}) for every policy of a network; figures in `DIR/` (`normalised.png`, "
        "`energy_breakdown.png`, `latency_vs_load.png`, `sensitivity.png`, `auto_study.png`), every number in "
        "`DIR/reproduction.json`.",
    ])


def _headline(result: dict) -> str:
    rows = []
    for preset, h in result["headline"].items():
        paper = result["paper"].get(preset, {})
        rows.append([f"`{preset}`", _x(h["throughput_vs_cellular"]), _x(paper.get("throughput")),
                     _x(h["energy_efficiency_vs_cellular"]), _x(paper.get("energy_efficiency")),
                     _x(h["throughput_vs_padding"]), _x(h["energy_efficiency_vs_padding"]),
                     _x(h["p99_latency_vs_cellular"])])
    header = ["preset", "throughput vs cellular", "paper", "requests/J vs cellular", "paper",
              "throughput vs padding", "requests/J vs padding", "p99 latency vs cellular (lower is better)"]
    return "## Headline (geometric mean over networks)\n\n" + _table(header, rows) + (
        "\n\nThe paper's figures are \"over the state of the art\" (its abstract); ours are E-BATCH over "
        "cellular batching and over plain padding on this simulator. Per-network figures follow.")


def _cases(result: dict) -> str:
    header = ["network", "preset", "policy", "T", "throughput (req/s)", "req/J", "mJ/req", "padding",
              "p50 (s)", "p99 (s)", "p99 trace (s)", "E-BATCH thr. ratio", "E-BATCH req/J ratio",
              "E-BATCH p99 ratio"]
    rows = []
    for case in result["cases"]:
        e = case["policies"]["ebatch"]
        for policy in POLICY_ORDER:
            p = case["policies"][policy]
            mark = "*" if p["overloaded"] else ""
            rows.append([
                case["network"], case["preset"], policy, case["tuned_timesteps"] if policy == "ebatch" else "",
                _f(p["offline"]["throughput_rps"]), _f(p["offline"]["requests_per_j"]),
                _f(p["offline"]["energy_per_request_j"] * 1e3), f"{p['offline']['padding_fraction']:.2f}",
                _f(p["poisson"]["latency_p50_s"]) + mark, _f(p["poisson"]["latency_p99_s"]) + mark,
                _f(p["trace"]["latency_p99_s"]) + mark,
                "" if policy == "ebatch" else _x(e["offline"]["throughput_rps"] / p["offline"]["throughput_rps"]),
                "" if policy == "ebatch" else _x(e["offline"]["requests_per_j"] / p["offline"]["requests_per_j"]),
                "" if policy == "ebatch" else _x(e["poisson"]["latency_p99_s"] / p["poisson"]["latency_p99_s"]),
            ])
    loads = "; ".join(f"{c['network']}/{c['preset']}: S = {_f(c['saturation_rps'])} req/s ({c['saturation_policy']}), "
                      f"load {_f(c['load_rps'])} req/s" for c in result["cases"])
    return "## Per network and preset\n\n" + _table(header, rows) + f"\n\nSaturation and load: {loads}.\n"


def _breakdown(result: dict) -> str:
    header = ["network", "preset", "policy", "DRAM mJ/req", "SRAM mJ/req", "MAC mJ/req", "static mJ/req",
              "DRAM weight MB/req"]
    rows = []
    for case in result["cases"]:
        for policy in POLICY_ORDER:
            off = case["policies"][policy]["offline"]
            n = off["completed"]
            b = off["energy_breakdown_j"]
            parts = [_f(b[k] / n * 1e3) for k in ("dram", "sram", "mac", "static")]
            rows.append([case["network"], case["preset"], policy, *parts, _f(off["dram_weight_bytes"] / n / 1e6)])
    return "## Where the energy goes (offline)\n\n" + _table(header, rows)


def _curves(result: dict) -> str:
    fractions = [p["fraction"] for p in result["cases"][0]["curve"]]
    header = ["network", "preset", "policy"] + [f"{f:g} S" for f in fractions]
    rows = []
    for case in result["cases"]:
        for policy in POLICY_ORDER:
            p99 = [_f(p[policy]["latency_p99_s"]) for p in case["curve"]]
            rows.append([case["network"], case["preset"], policy, *p99])
    return "## p99 latency (s) versus offered load (Poisson)\n\n" + _table(header, rows)


def _sensitivity(result: dict) -> str:
    rows = result.get("sensitivity")
    if not rows:
        return ""
    cfg = result["config"]
    header = ["preset", "parameter", "value", "thr. vs cellular", "req/J vs cellular", "thr. vs padding",
              "req/J vs padding"]
    body = []
    for r in rows:
        if r["factor"] is not None:
            shown = f"{r['factor']:g} x ({_f(r['value'])})"
        else:
            shown = f"{'B' if r['parameter'] == 'batch_size' else 'N'} = {r['value']}"
        body.append([r["preset"], r["parameter"], shown, _x(r["throughput_vs_cellular"]),
                     _x(r["energy_efficiency_vs_cellular"]), _x(r["throughput_vs_padding"]),
                     _x(r["energy_efficiency_vs_padding"])])
    n = cfg["sensitivity_requests"] or cfg["requests"]
    if n is None:
        base = ("every request of each data set, as in the main runs, so the 1x rows and the B = "
                f"{cfg['batch_size']} rows repeat the headline")
    else:
        base = f"{n} requests per network, so the 1x rows are the base presets on these requests"
    return ("## Sensitivity\n\nOne parameter at a time, offline, T as tuned for the base preset, geometric means "
            f"over networks; {base}. `requests` (N) varies how many requests are queued offline.\n\n"
            + _table(header, body))


def _auto(result: dict) -> str:
    rows = result.get("auto_study")
    if not rows:
        return ""
    cfg = result["config"]
    header = ["network", "preset", "slots", "load (req/s)", "p99 SLO (s)", "best fixed T", "its p99 (s)",
              "its mJ/req", "auto p99 (s)", "auto mJ/req", "meets SLO", "auto / best fixed energy",
              "hold decisions / windows"]
    body = [[r["network"], r["preset"], "stream" if r["streaming"] else "whole", _f(r["rate_rps"]),
             _f(r["latency_slo_s"]), r["best_fixed_timesteps"], _f(r["best_fixed_latency_p99_s"]),
             _f(r["best_fixed_energy_per_request_j"] * 1e3),
             _f(r["auto_latency_p99_s"]), _f(r["auto_energy_per_request_j"] * 1e3),
             "yes" if r["auto_meets_slo"] else "**no**", _x(r["auto_energy_vs_best_fixed"]),
             f"{r['auto_held']}/{r['auto_windows']}"] for r in rows]
    return (
        "## `timesteps=\"auto\"` on a varying load\n\n"
        f"{cfg['auto_requests']} requests per case; arrivals: the whole `{cfg['trace']}` trace thinned to that many "
        "requests (every k-th arrival, keeping the trace's rise and fall over its hour) and time-scaled to "
        f"{cfg['load_fraction']:g} x S. The SLO is {cfg['auto_slo_factor']:g} x the lowest p99 any fixed T "
        "reaches on the same arrivals; \"best fixed T\" is the fixed T of lowest energy per request among those "
        "meeting it. B = " + str(cfg["batch_size"]) + ".\n\n" + _table(header, body))


def _assumptions(result: dict) -> str:
    parts = ["## Preset parameters that are assumptions", ""]
    for preset, items in result["assumptions"].items():
        parts.append(f"`{preset}` ({len(items)} assumed parameters; the others carry a published source in "
                     f"`src/ebatch/hardware/presets/{preset}.yaml`):")
        parts.append("")
        parts += [f"- `{a['parameter']}` = {_f(float(a['value']))}: {a['source']}" for a in items]
        parts.append("")
    return "\n".join(parts)


def report(result: dict) -> str:
    from ebatch.experiments.report.reproduce_discussion import discussion

    timing = result.get("timing", {})
    return "\n\n".join(s for s in [
        "# Reproducing E-BATCH (arXiv 2009.10656)",
        f"Generated by `{result.get('command') or 'ebatch reproduce'}`"
        + (f" in {timing['wall_s']:.0f} s" if "wall_s" in timing else "")
        + ". Do not edit by hand: rerun the command.",
        _headline(result),
        discussion(result),
        _setup(result),
        _cases(result),
        _breakdown(result),
        _curves(result),
        _sensitivity(result),
        _auto(result),
        _assumptions(result),
    ] if s) + "\n"
