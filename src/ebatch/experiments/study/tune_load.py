"""The load ``ebatch tune`` tunes under by default: Poisson at a fraction of the baselines' saturation.

Offline (every request queued at 0) the p99 latency is dominated by queueing: the last request waits for
the whole backlog, so the largest B wins on both axes and the Pareto front collapses to one point (gnmt-enc
on tpu-v1). Under load, latency is service plus a bounded queue, and T trades latency against energy.

The load follows ``ebatch reproduce``: saturation S is the best offline throughput among the baselines
(padding, padding with ``sort_window=256``, cellular; the state of the art's capacity) on the same
requests at the largest B of the grid, and requests arrive as Poisson at ``fraction`` x S
(:data:`DEFAULT_LOAD_FRACTION` = 0.7, reproduce's ``load_fraction``). E-BATCH is not part of S, so the
load does not depend on what is being tuned. Two phases: the baselines offline, then the grid at the load.
"""

from __future__ import annotations

from ebatch.experiments.study.phases import PhaseRunner
from ebatch.experiments.study.reproduce_config import ReproduceConfig, policy_specs
from ebatch.sweep import RunConfig, WorkloadConfig

__all__ = ["DEFAULT_LOAD_FRACTION", "poisson_at_load"]

#: ``ebatch tune``'s default load, as a fraction of the baselines' saturation (reproduce's ``load_fraction``).
DEFAULT_LOAD_FRACTION = ReproduceConfig().load_fraction


def poisson_at_load(model: str, hardware: str, dataset: str, requests: int | None, seed: int, frame_rate_hz: float,
                    batch_size: int, fraction: float, runner: PhaseRunner) -> tuple[WorkloadConfig, str]:
    """The requests arriving as Poisson at ``fraction`` x S, and the load in words (see the module docstring)."""
    offline = WorkloadConfig(dataset, requests, "offline", None, seed, frame_rate_hz)
    baselines = {label: RunConfig(model, hardware, offline, name, params)
                 for label, name, params in policy_specs(ReproduceConfig(batch_size=batch_size))}
    summaries = runner.run("saturation", baselines.values())
    best = max(baselines, key=lambda label: summaries[baselines[label]]["throughput_rps"])
    saturation = summaries[baselines[best]]["throughput_rps"]
    rate = fraction * saturation
    work = WorkloadConfig(dataset, requests, "poisson", rate, seed, frame_rate_hz)
    label = (f"poisson, mean rate {rate:.4g} req/s = {fraction:g} x saturation {saturation:.4g} req/s "
             f"(the best baseline offline: {best} at B={batch_size})")
    return work, label
