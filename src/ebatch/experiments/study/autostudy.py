"""The ``timesteps="auto"`` study: the online controller against every fixed T on a load that varies.

For each network and preset (and ``config.auto_extra_networks``, a unidirectional model whose slots
stream):

- ``auto_requests`` request lengths drawn from the network's data set; arrivals from the whole
  ``azure-conv`` trace thinned to that many requests (every k-th arrival, so the trace's rise and fall
  over its hour is kept) and time-scaled to a mean rate of ``load_fraction x S``, S being the best
  offline throughput of the baselines (padding, sorted padding, cellular) on the same requests;
- E-BATCH with every T of :func:`~ebatch.experiments.study.tune.timestep_grid`; the p99 SLO is
  ``auto_slo_factor`` x the lowest p99 any fixed T reaches (so the SLO is reachable and leaves slack);
- the best fixed T = the lowest energy per request among the fixed T that meet the SLO;
- ``timesteps="auto"`` with that SLO: does it meet it, and with what energy per request?

Life cycle (two phases: the baselines' saturation runs are sweep configs, the rest one call per case)::

    baselines = auto_saturation_configs(config)        # {(network, preset): {label: RunConfig}}
    tasks = auto_tasks(config, baselines, summaries)   # summaries: {RunConfig: summary} of those runs
    cases = [auto_case(task) for task in tasks]        # or PhaseRunner.map(..., auto_case, tasks)

One :class:`AutoCase` per (network, preset), the first one with the controller's T over time (for the figure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ebatch.experiments.study.reproduce_config import (
    Network,
    ReproduceConfig,
    policy_configs,
    policy_specs,
    workload_config,
)
from ebatch.experiments.study.reproduce_results import AutoCase, FixedT, Trajectory
from ebatch.experiments.study.tune import timestep_grid
from ebatch.sim import simulate
from ebatch.sweep import RunConfig
from ebatch.workload import Workload, trace_arrivals

__all__ = ["AutoTask", "auto_case", "auto_saturation_configs", "auto_tasks", "thinned_trace"]


def thinned_trace(name: str, n: int, rate_rps: float) -> np.ndarray:
    """``n`` arrivals spread over the whole trace (every k-th), scaled to a mean rate of ``rate_rps``."""
    trace = trace_arrivals(name)
    step = max(1, trace.size // n)
    arrivals = trace[::step][:n]
    if arrivals.size < n:  # a trace shorter than n: repeat it back to back
        span = trace[-1] + float(np.mean(np.diff(trace)))
        reps = -(-n // arrivals.size)
        arrivals = (arrivals[None, :] + span * np.arange(reps)[:, None]).reshape(-1)[:n]
    arrivals = arrivals - arrivals[0]
    return arrivals * ((n - 1) / arrivals[-1]) / rate_rps


@dataclass(frozen=True)
class AutoTask:
    """One case of the study, its saturation known."""

    net: Network
    preset: str
    config: ReproduceConfig
    saturation_rps: float
    keep_trajectory: bool


def _networks(config: ReproduceConfig) -> tuple[Network, ...]:
    return tuple(config.networks) + tuple(config.auto_extra_networks)


def auto_saturation_configs(config: ReproduceConfig) -> dict[tuple[str, str], dict[str, RunConfig]]:
    """The baselines offline on each case's ``auto_requests`` requests: ``{(network, preset): {label: config}}``."""
    return {
        (net.model, preset): policy_configs(net, preset, workload_config(net, config, requests=config.auto_requests),
                                            policy_specs(config))
        for preset in config.presets for net in _networks(config)
    }


def auto_tasks(config: ReproduceConfig, baselines: Mapping[tuple[str, str], Mapping[str, RunConfig]],
               summaries: Mapping[RunConfig, dict]) -> list[AutoTask]:
    """One task per case, S being the best baseline's offline throughput; the first keeps the trajectory."""
    tasks = []
    for preset in config.presets:
        for net in _networks(config):
            runs = baselines[(net.model, preset)].values()
            saturation = max(summaries[c]["throughput_rps"] for c in runs)
            tasks.append(AutoTask(net, preset, config, saturation, keep_trajectory=not tasks))
    return tasks


def auto_case(task: AutoTask) -> AutoCase:
    """Every fixed T and the controller on the case's thinned trace (see the module docstring)."""
    net, preset, config, saturation = task.net, task.preset, task.config, task.saturation_rps
    b = config.batch_size
    offline = Workload.from_dataset(net.dataset, n=config.auto_requests, seed=config.seed,
                                    frame_rate_hz=net.frame_rate_hz)
    rate = config.load_fraction * saturation
    arrivals = thinned_trace(config.trace, len(offline), rate)
    work = Workload(offline.lengths, arrivals, name=f"{net.dataset}+{config.trace}", meta={"arrival": config.trace})
    fixed = []
    for t in timestep_grid(int(work.lengths.max())):
        s = simulate(net.model, work, "ebatch", preset, batch_size=b, timesteps=t).summary()
        fixed.append(FixedT(t, s["latency_p99_s"], s["energy_per_request_j"]))
    slo = config.auto_slo_factor * min(f.latency_p99_s for f in fixed)
    meeting = [f for f in fixed if f.latency_p99_s <= slo]
    best = min(meeting, key=lambda f: (f.energy_per_request_j, f.latency_p99_s, f.timesteps))
    result = simulate(net.model, work, "ebatch", preset, batch_size=b, timesteps="auto", latency_slo_s=slo)
    s = result.summary()
    controller = result.policy.auto
    chosen = np.asarray(controller.chosen)
    trajectory = None
    if task.keep_trajectory:
        trajectory = Trajectory(tuple(map(float, controller.chosen_at_s)), tuple(chosen.tolist()),
                                tuple(arrivals.tolist()))
    return AutoCase(
        network=net.model, preset=preset, dataset=net.dataset, requests=len(work),
        streaming=not result.model.bidirectional, saturation_rps=saturation, rate_rps=rate, latency_slo_s=slo,
        fixed=tuple(fixed), best_fixed_timesteps=best.timesteps,
        best_fixed_energy_per_request_j=best.energy_per_request_j, best_fixed_latency_p99_s=best.latency_p99_s,
        auto_latency_p99_s=s["latency_p99_s"], auto_energy_per_request_j=s["energy_per_request_j"],
        auto_meets_slo=bool(s["latency_p99_s"] <= slo),
        auto_energy_vs_best_fixed=s["energy_per_request_j"] / best.energy_per_request_j,
        auto_windows=int(chosen.size), auto_held=int(controller.held),
        auto_timesteps_p10_p50_p90=tuple(float(v) for v in np.percentile(chosen, [10, 50, 90])),
        auto_completed=s["completed"], trajectory=trajectory,
    )
