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

Life cycle: ``run_auto_study(config)`` returns one :class:`AutoCase` per (network, preset), the first one with
the controller's T over time (for the figure).
"""

from __future__ import annotations

import numpy as np

from ebatch.experiments.study.reproduce_config import Network, ReproduceConfig, policy_specs
from ebatch.experiments.study.reproduce_results import AutoCase, FixedT, Trajectory
from ebatch.experiments.study.tune import timestep_grid
from ebatch.sim import simulate
from ebatch.workload import Workload, trace_arrivals

__all__ = ["run_auto_study", "thinned_trace"]


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


def _case(net: Network, preset: str, config: ReproduceConfig, keep_trajectory: bool) -> AutoCase:
    b = config.batch_size
    offline = Workload.from_dataset(net.dataset, n=config.auto_requests, seed=config.seed,
                                    frame_rate_hz=net.frame_rate_hz)
    saturation = max(
        simulate(net.model, offline, name, preset, **params).summary()["throughput_rps"]
        for _, name, params in policy_specs(config)
    )
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
    if keep_trajectory:
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


def run_auto_study(config: ReproduceConfig) -> list[AutoCase]:
    """One case per (network, preset) of the study (see the module docstring)."""
    networks = tuple(config.networks) + tuple(config.auto_extra_networks)
    rows = []
    for preset in config.presets:
        for net in networks:
            rows.append(_case(net, preset, config, keep_trajectory=not rows))
    return rows
