"""The runs of one case of ``ebatch reproduce`` (a network on a preset) as sweep configurations, by phase.

A case's stages depend on each other: the baselines offline give the saturation S; S gives the load, at
which T is tuned and the baselines are measured; T gives E-BATCH's runs. :class:`CasePlan` turns each stage
into :class:`~ebatch.sweep.RunConfig` lists that ``run_reproduce`` gathers over every case into one phase
each (so that the workers always have a whole phase of independent runs to share)::

    plan = CasePlan(net, "epur", config)
    plan.offline_baselines()                      # phase 1: the baselines on every backlog
    label, s = plan.saturation(summaries)         # the best baseline on the test set, and its throughput
    plan.tune_configs(s) + plan.load_baselines(s) # phase 2: E-BATCH's (B, T) grid and the baselines at the load
    plan.tuned_runs(t, s)                         # phase 3: E-BATCH at the tuned T, offline and under load

Backlogs: ``config.backlog_factors`` x the test set (1: the test set; 2 and 4: resampled with the seed).
Runs under load: Poisson at ``load_fraction`` x S (``"poisson"``), the trace time-scaled to the same mean
rate (``"trace"``), and Poisson at each of ``curve_fractions`` x S (``"curve <fraction>"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ebatch.experiments.study.reproduce_config import (
    Network,
    ReproduceConfig,
    policy_configs,
    policy_specs,
    workload_config,
)
from ebatch.experiments.study.tune import tune_configs
from ebatch.sweep import RunConfig

__all__ = ["CasePlan", "curve_name"]


def curve_name(fraction: float) -> str:
    """The name of the latency-versus-load run at ``fraction`` x S."""
    return f"curve {fraction:g}"


@dataclass(frozen=True)
class CasePlan:
    """The run configurations of one network on one preset (see the module docstring)."""

    net: Network
    preset: str
    config: ReproduceConfig

    def backlog(self, factor: int, timesteps: int | None = None) -> dict[str, RunConfig]:
        """``{label: config}`` offline on ``factor`` x the test set; E-BATCH too once ``timesteps`` is known."""
        work = workload_config(self.net, self.config, backlog_factor=factor)
        return policy_configs(self.net, self.preset, work, policy_specs(self.config, timesteps))

    def offline_baselines(self) -> list[RunConfig]:
        return [c for f in self.config.backlog_factors for c in self.backlog(f).values()]

    def saturation(self, summaries: Mapping[RunConfig, dict]) -> tuple[str, float]:
        """The baseline with the best offline throughput on the test set, and that throughput (S)."""
        runs = self.backlog(1)
        best = max(runs, key=lambda label: summaries[runs[label]]["throughput_rps"])
        return best, summaries[runs[best]]["throughput_rps"]

    def loaded(self, saturation_rps: float, timesteps: int | None = None) -> dict[str, dict[str, RunConfig]]:
        """``{run: {label: config}}`` for every run under load (see the module docstring)."""
        cfg, load = self.config, self.config.load_fraction * saturation_rps
        specs = policy_specs(cfg, timesteps)
        runs = {
            "poisson": policy_configs(self.net, self.preset, workload_config(self.net, cfg, "poisson", load), specs),
            "trace": policy_configs(self.net, self.preset, workload_config(self.net, cfg, cfg.trace, load), specs),
        }
        for fraction in cfg.curve_fractions:
            work = workload_config(self.net, cfg, "poisson", fraction * saturation_rps)
            runs[curve_name(fraction)] = policy_configs(self.net, self.preset, work, specs)
        return runs

    def load_baselines(self, saturation_rps: float) -> list[RunConfig]:
        return [c for runs in self.loaded(saturation_rps).values() for c in runs.values()]

    def tune_configs(self, saturation_rps: float) -> list[RunConfig]:
        """E-BATCH at B = ``batch_size`` and every T of the grid, under Poisson at the load."""
        work = workload_config(self.net, self.config, "poisson", self.config.load_fraction * saturation_rps)
        return tune_configs(self.net.model, self.preset, work, [self.config.batch_size])

    def tuned_runs(self, timesteps: int, saturation_rps: float) -> list[RunConfig]:
        """E-BATCH at the tuned T: offline on every backlog and every run under load."""
        offline = [self.backlog(f, timesteps)["ebatch"] for f in self.config.backlog_factors]
        return offline + [runs["ebatch"] for runs in self.loaded(saturation_rps, timesteps).values()]
