"""Reproduce the E-BATCH paper's comparison: networks x presets x policies, offline and under load.

Life cycle::

    config = ReproduceConfig.quick()                             # or ReproduceConfig(networks=(...), ...)
    result = run_reproduce(config, log=print, workers=2)         # a frozen ReproduceResult
    write_outputs(result, "results/reproduce")                   # ebatch.experiments.report.reproduce

Per network and preset (:class:`~ebatch.experiments.study.reproduce_plan.CasePlan`):

1. Offline (every request queued at 0): ``padding``, ``padding`` with ``sort_window``, ``cellular``, all
   with the same B, on the test set and on backlogs of 2x and 4x its size resampled with the seed.
   **Saturation** S = the best offline throughput among these three baselines on the test set (the state
   of the art's capacity on that network and preset). The offered load is ``load_fraction x S``.
2. E-BATCH's T is tuned (:func:`~ebatch.experiments.study.tune.tune_from_summaries`) at that load (Poisson,
   the same B) for the objective ``tune_objective`` (default ``edp``: energy per request x p99 latency).
3. E-BATCH at that T offline on every backlog; every policy under Poisson arrivals at the load, under the
   ``azure-conv`` trace time-scaled to the same mean rate, and at ``curve_fractions`` of S.

The stages are phases on the sweep machinery (:class:`~ebatch.experiments.study.phases.PhaseRunner`): the
sensitivity study's and the auto-T study's runs join the phase their inputs allow, and the numbers do not
depend on the number of workers. Ratios (:mod:`~ebatch.experiments.study.headline`) are E-BATCH's figure
over a baseline's. **The headline** (:data:`HEADLINE_BASIS`): per preset, the geometric mean over networks
of the steady-state ratios (middle 80% of completions, docs/metrics.md) on the largest backlog, where the
fill and drain transients of a finite backlog no longer weigh, with the p99-latency and energy ratios under
load beside them; the whole-run ratios on every backlog are the convergence table. Raises ``ValueError``
for an unknown network, preset or data set (before anything runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from ebatch.experiments.formatting import geomean
from ebatch.experiments.study.autostudy import auto_case, auto_saturation_configs, auto_tasks
from ebatch.experiments.study.headline import geomean_ratios, load_ratios, offline_ratios
from ebatch.experiments.study.phases import PhaseRunner
from ebatch.experiments.study.reproduce_config import PAPER_HEADLINE, ReproduceConfig, policy_specs
from ebatch.experiments.study.reproduce_plan import CasePlan, curve_name
from ebatch.experiments.study.reproduce_results import (
    Assumption,
    Backlog,
    Case,
    ConvergenceRow,
    CurvePoint,
    LoadPoint,
    PolicyRuns,
    ReproduceResult,
    RunFigures,
    Timing,
    TuneRecord,
)
from ebatch.experiments.study.sensitivity import sensitivity_configs, sensitivity_rows, variants
from ebatch.experiments.study.tune import load_label, tune_from_summaries
from ebatch.hardware import HardwareSpec, load_preset
from ebatch.sweep import RunConfig
from ebatch.workload import DATASETS

__all__ = ["HEADLINE_BASIS", "build_case", "convergence", "headline", "run_reproduce"]

#: What the headline's throughput and energy-efficiency ratios are measured on.
HEADLINE_BASIS = "steady state (middle 80% of completions) of the largest offline backlog"

Summaries = Mapping[RunConfig, dict]


def build_case(plan: CasePlan, summaries: Summaries, timesteps: int, tune_record: TuneRecord) -> Case:
    """One network on one preset from the summaries of its runs (every phase done)."""
    net, config = plan.net, plan.config
    saturation_label, saturation = plan.saturation(summaries)
    load = config.load_fraction * saturation
    specs = {label: (name, params) for label, name, params in policy_specs(config, timesteps)}
    backlogs = {f: {label: summaries[c] for label, c in plan.backlog(f, timesteps).items()}
                for f in config.backlog_factors}
    loaded = {run: {label: summaries[c] for label, c in runs.items()}
              for run, runs in plan.loaded(saturation, timesteps).items()}
    offline = backlogs[1]
    policies = {
        label: PolicyRuns(policy=name, params=params, offline=RunFigures.from_summary(offline[label]),
                          poisson=RunFigures.from_summary(loaded["poisson"][label]),
                          trace=RunFigures.from_summary(loaded["trace"][label]),
                          overloaded=load > offline[label]["throughput_rps"])
        for label, (name, params) in specs.items()
    }
    curve = tuple(
        CurvePoint(f, f * saturation, {label: LoadPoint(s["latency_p50_s"], s["latency_p99_s"],
                                                       s["energy_per_request_j"])
                                       for label, s in loaded[curve_name(f)].items()})
        for f in config.curve_fractions
    )
    sample = offline["ebatch"]
    lengths = plan.backlog(1)["padding"].workload.load().lengths
    return Case(
        network=net.model, dataset=net.dataset, preset=load_preset(plan.preset).name,
        frame_rate_hz=net.frame_rate_hz if DATASETS[net.dataset].kind == "speech" else None,
        requests=sample["requests"], length_mean=float(lengths.mean()), length_max=int(lengths.max()),
        saturation_rps=saturation, saturation_policy=saturation_label, load_rps=load, tuned_timesteps=timesteps,
        tune=tune_record, policies=policies,
        ratios={**offline_ratios(offline), **load_ratios(loaded["poisson"]), **load_ratios(loaded["trace"], "_trace")},
        curve=curve,
        backlogs=tuple(
            Backlog(f, runs["ebatch"]["requests"], {label: RunFigures.from_summary(s) for label, s in runs.items()},
                    offline_ratios(runs), offline_ratios(runs, steady=True))
            for f, runs in backlogs.items()
        ),
    )


def _headline_ratios(case: Case) -> dict[str, float]:
    """A case's headline ratios: steady state on the largest backlog, and the ratios under Poisson load."""
    largest = max(case.backlogs, key=lambda b: b.factor)
    under_load = {k: v for k, v in case.ratios.items() if k.startswith(("p99_latency", "energy_efficiency_under"))}
    return {**largest.steady_ratios, **under_load}


def headline(cases: list[Case], presets) -> dict[str, dict[str, float]]:
    """Per preset, geometric means over networks of the headline ratios (:data:`HEADLINE_BASIS`)."""
    return {preset: geomean_ratios(_headline_ratios(c) for c in cases if c.preset == preset) for preset in presets}


def convergence(cases: list[Case], presets) -> tuple[ConvergenceRow, ...]:
    """Per preset, backlog and window (whole run, steady state): geometric means over networks of the ratios."""
    rows = []
    for preset in presets:
        on = [c for c in cases if c.preset == preset]
        for i, backlog in enumerate(on[0].backlogs if on else ()):
            for window in ("whole", "steady"):
                per_net = [c.backlogs[i].ratios if window == "whole" else c.backlogs[i].steady_ratios for c in on]
                keys = per_net[0]
                rows.append(ConvergenceRow(preset, backlog.factor, window,
                                           {k: geomean([r[k] for r in per_net]) for k in keys}))
    return tuple(rows)


def _assumptions(spec: HardwareSpec) -> tuple[Assumption, ...]:
    return tuple(Assumption(k, getattr(spec, k), spec.sources[k]) for k in spec.assumptions)


def run_reproduce(config: ReproduceConfig, log: Callable[[str], None] | None = None, command: str = "",
                  workers: int = 0, scheduler: str | None = None, processes: bool = True) -> ReproduceResult:
    """Every case, the sensitivity study and the auto-T study (each when ``config`` asks for it), in phases
    on ``workers`` local workers (0: serially here) or on the dask ``scheduler`` at that address."""
    config.check()
    log = log or (lambda _msg: None)
    start = time.perf_counter()
    plans = [CasePlan(net, preset, config) for preset in config.presets for net in config.networks]
    found = variants(config) if config.sensitivity else []
    auto_baselines = auto_saturation_configs(config) if config.auto_study else {}
    with PhaseRunner(workers, scheduler, processes, log) as runner:
        summaries = runner.run("offline_baselines", [
            *(c for p in plans for c in p.offline_baselines()), *sensitivity_configs(found, config),
            *(c for runs in auto_baselines.values() for c in runs.values()),
        ])
        saturation = {p: p.saturation(summaries)[1] for p in plans}
        summaries.update(runner.run("load", [
            c for p in plans for c in p.tune_configs(saturation[p]) + p.load_baselines(saturation[p])]))
        tuned, records = {}, {}
        for p in plans:
            grid = p.tune_configs(saturation[p])
            result = tune_from_summaries(grid, summaries, config.tune_objective)
            tuned[p] = int(result.best["timesteps"])
            records[p] = TuneRecord(config.tune_objective, load_label(grid[0].workload.load()),
                                    tuple(result.points.to_dict(orient="records")))
        by_name = {(p.net.model, load_preset(p.preset).name): t for p, t in tuned.items()}
        summaries.update(runner.run("tuned_ebatch", [
            *(c for p in plans for c in p.tuned_runs(tuned[p], saturation[p])),
            *sensitivity_configs(found, config, by_name),
        ]))
        auto = None
        if config.auto_study:
            auto = tuple(runner.map("auto_study", auto_case, auto_tasks(config, auto_baselines, summaries)))
    cases = []
    for p in plans:
        case = build_case(p, summaries, tuned[p], records[p])
        r = case.ratios
        log(f"{case.network} on {case.preset}: T={case.tuned_timesteps}, E-BATCH vs cellular "
            f"throughput {r['throughput_vs_cellular']:.2f}x, requests/J {r['energy_efficiency_vs_cellular']:.2f}x")
        cases.append(case)
    presets = [load_preset(p).name for p in config.presets]
    return ReproduceResult(
        command=command, config=config, cases=tuple(cases), headline=headline(cases, presets), paper=PAPER_HEADLINE,
        assumptions={p: _assumptions(load_preset(p)) for p in config.presets},
        headline_basis=HEADLINE_BASIS, convergence=convergence(cases, presets),
        sensitivity=tuple(sensitivity_rows(found, config, by_name, summaries)) if config.sensitivity else None,
        auto_study=auto,
        timing=Timing(time.perf_counter() - start, {f"{k}_s": v for k, v in runner.phases_s.items()},
                      runner.timing()),
    )
