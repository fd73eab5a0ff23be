"""Reproduce the E-BATCH paper's comparison: networks x presets x policies, offline and under load.

Life cycle::

    config = ReproduceConfig.quick()                 # or ReproduceConfig(networks=(...), requests=50, ...)
    result = run_reproduce(config, log=print)        # a frozen ReproduceResult: cases, headline, studies
    write_outputs(result, "results/reproduce")       # ebatch.experiments.report.reproduce

Per network and preset (``run_case``):

1. Offline (every request queued at 0): ``padding``, ``padding`` with ``sort_window``, ``cellular``, all
   with the same B. **Saturation** S = the best offline throughput among these three baselines (the state
   of the art's capacity on that network and preset). The offered load is ``load_fraction x S``.
2. E-BATCH's T is tuned by :func:`ebatch.experiments.study.tune.tune` at that load (Poisson, the same B) for
   the objective ``tune_objective`` (default ``edp``: energy per request x p99 latency), then E-BATCH runs
   offline like the baselines.
3. Latency: every policy under Poisson arrivals at the load, and under the ``azure-conv`` trace
   time-scaled to the same mean rate; p99 versus load at ``curve_fractions`` of S.

Ratios are E-BATCH's figure over a baseline's (throughput, requests per joule; p99 latency: lower is
better), NaN where a side is missing (:func:`~ebatch.experiments.formatting.ratio`). The headline is their
geometric mean over networks, per preset. Raises ``ValueError`` for an unknown network, preset or data set
(before anything runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ebatch.experiments.formatting import geomean, ratio
from ebatch.experiments.study.autostudy import run_auto_study
from ebatch.experiments.study.reproduce_config import (
    EXTRA_HEADLINE_KEYS,
    HEADLINE_KEYS,
    PAPER_HEADLINE,
    Network,
    ReproduceConfig,
    case_workload,
    policy_specs,
)
from ebatch.experiments.study.reproduce_results import (
    Assumption,
    Case,
    CurvePoint,
    LoadPoint,
    PolicyRuns,
    PolicyTiming,
    ReproduceResult,
    RunFigures,
    Timing,
    TuneRecord,
)
from ebatch.experiments.study.sensitivity import run_sensitivity
from ebatch.experiments.study.tune import tune
from ebatch.hardware import HardwareSpec, load_preset
from ebatch.sim import simulate
from ebatch.workload import DATASETS, Workload

__all__ = ["Timer", "headline", "run_case", "run_reproduce"]


@dataclass
class Timer:
    """Wall time and simulated work per policy label (for the benchmark section)."""

    per_policy: dict = field(default_factory=dict)

    def run(self, label: str, model, workload: Workload, name: str, hardware, params: dict) -> dict:
        start = time.perf_counter()
        summary = simulate(model, workload, name, hardware, **params).summary()
        wall = time.perf_counter() - start
        entry = self.per_policy.setdefault(label, {"runs": 0, "wall_s": 0.0, "cells": 0, "requests": 0})
        entry["runs"] += 1
        entry["wall_s"] += wall
        entry["cells"] += summary["useful_cells"]
        entry["requests"] += summary["completed"]
        return summary

    def table(self) -> dict[str, PolicyTiming]:
        return {
            label: PolicyTiming(**e, cells_per_wall_s=e["cells"] / e["wall_s"],
                                requests_per_wall_s=e["requests"] / e["wall_s"])
            for label, e in self.per_policy.items()
        }


def _ratios(policies: Mapping[str, PolicyRuns], baselines: list[str]) -> dict[str, float]:
    e = policies["ebatch"]
    ratios = {}
    for base in ("cellular", "padding", "padding-sorted"):
        p = policies[base]
        ratios[f"throughput_vs_{base}"] = ratio(e.offline.throughput_rps, p.offline.throughput_rps)
        ratios[f"energy_efficiency_vs_{base}"] = ratio(e.offline.requests_per_j, p.offline.requests_per_j)
        ratios[f"p99_latency_vs_{base}"] = ratio(e.poisson.latency_p99_s, p.poisson.latency_p99_s)
        ratios[f"p99_latency_trace_vs_{base}"] = ratio(e.trace.latency_p99_s, p.trace.latency_p99_s)
    best_thr = max(policies[b].offline.throughput_rps for b in baselines)
    best_eff = max(policies[b].offline.requests_per_j for b in baselines)
    ratios["throughput_vs_best_baseline"] = ratio(e.offline.throughput_rps, best_thr)
    ratios["energy_efficiency_vs_best_baseline"] = ratio(e.offline.requests_per_j, best_eff)
    return ratios


def run_case(net: Network, preset: str | HardwareSpec, config: ReproduceConfig, timer: Timer) -> Case:
    """Everything measured for one network on one preset (see the module docstring)."""
    hardware = load_preset(preset) if isinstance(preset, str) else preset
    offline = case_workload(net, config)

    def figures(label, work, name, params) -> RunFigures:
        return RunFigures.from_summary(timer.run(label, net.model, work, name, hardware, params))

    offline_runs = {label: figures(label, offline, name, params) for label, name, params in policy_specs(config)}
    saturation_label = max(offline_runs, key=lambda k: offline_runs[k].throughput_rps)
    saturation = offline_runs[saturation_label].throughput_rps
    load = config.load_fraction * saturation
    poisson = case_workload(net, config, "poisson", load)
    trace = case_workload(net, config, config.trace, load)

    tuned = tune(net.model, hardware, poisson, batch_sizes=[config.batch_size], objective=config.tune_objective)
    t_best = int(tuned.best["timesteps"])
    specs = policy_specs(config, t_best)
    label, name, params = specs[-1]
    offline_runs[label] = figures(label, offline, name, params)
    policies = {}
    for label, name, params in specs:
        policies[label] = PolicyRuns(
            policy=name, params=params, offline=offline_runs[label], poisson=figures(label, poisson, name, params),
            trace=figures(label, trace, name, params), overloaded=load > offline_runs[label].throughput_rps,
        )

    curve = []
    for fraction in config.curve_fractions:
        rate = fraction * saturation
        work = case_workload(net, config, "poisson", rate)
        points = {}
        for label, name, params in specs:
            s = timer.run(label, net.model, work, name, hardware, params)
            points[label] = LoadPoint(s["latency_p50_s"], s["latency_p99_s"], s["energy_per_request_j"])
        curve.append(CurvePoint(fraction, rate, points))

    return Case(
        network=net.model, dataset=net.dataset, preset=hardware.name,
        frame_rate_hz=net.frame_rate_hz if DATASETS[net.dataset].kind == "speech" else None,
        requests=len(offline), length_mean=float(offline.lengths.mean()), length_max=int(offline.lengths.max()),
        saturation_rps=saturation, saturation_policy=saturation_label, load_rps=load, tuned_timesteps=t_best,
        tune=TuneRecord(config.tune_objective, tuned.settings["load"],
                        tuple(tuned.points.to_dict(orient="records"))),
        policies=policies, ratios=_ratios(policies, [label for label, _, _ in policy_specs(config)]),
        curve=tuple(curve),
    )


def headline(cases: list[Case], presets) -> dict[str, dict[str, float]]:
    """Geometric means over networks of E-BATCH's ratios, per preset."""
    return {
        preset: {
            key: geomean([c.ratios[key] for c in cases if c.preset == preset])
            for key in HEADLINE_KEYS + EXTRA_HEADLINE_KEYS
        }
        for preset in presets
    }


def _assumptions(spec: HardwareSpec) -> tuple[Assumption, ...]:
    return tuple(Assumption(k, getattr(spec, k), spec.sources[k]) for k in spec.assumptions)


def run_reproduce(config: ReproduceConfig, log: Callable[[str], None] | None = None,
                  command: str = "") -> ReproduceResult:
    """Run every case, the sensitivity study and the auto-T study (each when ``config`` asks for it)."""
    config.check()
    log = log or (lambda _msg: None)
    timer, start, cases = Timer(), time.perf_counter(), []
    for preset in config.presets:
        for net in config.networks:
            case = run_case(net, preset, config, timer)
            r = case.ratios
            log(f"{net.model} on {preset}: T={case.tuned_timesteps}, E-BATCH vs cellular "
                f"throughput {r['throughput_vs_cellular']:.2f}x, requests/J {r['energy_efficiency_vs_cellular']:.2f}x")
            cases.append(case)
    phases = {"cases_s": time.perf_counter() - start}
    sensitivity = auto = None
    if config.sensitivity:
        log("sensitivity study ...")
        phase_start = time.perf_counter()
        sensitivity = tuple(run_sensitivity(cases, config, timer))
        phases["sensitivity_s"] = time.perf_counter() - phase_start
    if config.auto_study:
        log("auto-T study ...")
        phase_start = time.perf_counter()
        auto = tuple(run_auto_study(config))
        phases["auto_study_s"] = time.perf_counter() - phase_start
    return ReproduceResult(
        command=command, config=config, cases=tuple(cases),
        headline=headline(cases, [load_preset(p).name for p in config.presets]), paper=PAPER_HEADLINE,
        assumptions={p: _assumptions(load_preset(p)) for p in config.presets},
        sensitivity=sensitivity, auto_study=auto,
        timing=Timing(time.perf_counter() - start, phases, timer.table()),
    )

