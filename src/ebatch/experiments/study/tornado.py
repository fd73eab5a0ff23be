"""What drives the headline: E-BATCH's ratios over cellular as each assumption moves over its plausible range.

Life cycle::

    config = TornadoConfig(requests=1000)                # networks and presets of ``ebatch reproduce``
    result = run_tornado(config, workers=2, log=print)   # a frozen TornadoResult; runs on ebatch.sweep
    result.bars_by_swing()                                # one bar per (preset, parameter), widest first
    write_tornado(result, "results/tornado")             # ebatch.experiments.report.tornado

The headline is reproduce's: per preset, the geometric mean over networks of E-BATCH's offline throughput and
requests per joule over cellular's, on ``config.requests`` requests of each network's data set (seeded), with
E-BATCH's T tuned as reproduce tunes it (Poisson at ``load_fraction`` x the best baseline's offline throughput,
objective ``edp``) on the base preset. Then one parameter at a time takes the low and the high end of its range
(:mod:`~ebatch.experiments.study.tornado_ranges`) while the others keep the preset's values, and cellular and
E-BATCH rerun offline, **T kept at the base preset's tuning** (what a deployment tuned on the base model would
run). A value equal to the preset's reuses the base runs. Every simulation goes through
:func:`ebatch.sweep.run_configs` (``workers`` 0: serially here; >= 2: a local dask cluster). Raises
``ValueError`` for an unknown network, data set or preset, or a preset without ranges, before anything runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import pandas as pd

from ebatch.experiments.formatting import geomean, json_safe, ratio
from ebatch.experiments.study.reproduce_config import NETWORKS, PRESETS, Network, ReproduceConfig, policy_specs
from ebatch.experiments.study.tornado_ranges import ranges_for
from ebatch.experiments.study.tune import choose, timestep_grid
from ebatch.hardware import load_preset
from ebatch.sweep import RunConfig, WorkloadConfig, run_configs

__all__ = ["Bar", "BaseCase", "Ratios", "TornadoConfig", "TornadoResult", "run_tornado"]


@dataclass(frozen=True)
class TornadoConfig:
    """What :func:`run_tornado` runs: reproduce's networks, presets and protocol on ``requests`` requests each."""

    networks: tuple[Network, ...] = NETWORKS
    presets: tuple[str, ...] = PRESETS
    requests: int = 1000
    seed: int = 0

    def protocol(self) -> ReproduceConfig:
        """Reproduce's configuration on these networks, presets and requests (B, load, objective as reproduce's)."""
        return ReproduceConfig(networks=self.networks, presets=self.presets, requests=self.requests, seed=self.seed,
                               sensitivity=False, auto_study=False)

    def check(self) -> None:
        """Raise ``ValueError`` naming the field for a bad network, preset, request count or missing range."""
        self.protocol().check()
        for preset in self.presets:
            ranges_for(preset)


@dataclass(frozen=True)
class Ratios:
    """E-BATCH's figure over cellular's: offline throughput and requests per joule."""

    throughput_vs_cellular: float
    energy_efficiency_vs_cellular: float

    @classmethod
    def geomean(cls, parts: list[Ratios]) -> Ratios:
        return cls(geomean(r.throughput_vs_cellular for r in parts),
                   geomean(r.energy_efficiency_vs_cellular for r in parts))


METRICS = ("throughput_vs_cellular", "energy_efficiency_vs_cellular")


@dataclass(frozen=True)
class BaseCase:
    """One preset as shipped: T per network, the load it was tuned at, and the ratios (per network, headline)."""

    preset: str
    tuned_timesteps: Mapping[str, int]
    load_rps: Mapping[str, float]
    per_network: Mapping[str, Ratios]
    headline: Ratios


@dataclass(frozen=True)
class Bar:
    """One parameter of one preset at the low and high end of its range, with the headline at each."""

    preset: str
    parameter: str
    source: str
    reason: str
    base_value: float | bool
    low_value: float | bool
    high_value: float | bool
    base: Ratios
    low: Ratios
    high: Ratios
    low_per_network: Mapping[str, Ratios] = field(default_factory=dict)
    high_per_network: Mapping[str, Ratios] = field(default_factory=dict)

    def span(self, metric: str) -> tuple[float, float]:
        """(smallest, largest) of ``metric`` over the low end, the base and the high end."""
        values = [getattr(r, metric) for r in (self.low, self.base, self.high)]
        return min(values), max(values)

    def swing(self, metric: str) -> float:
        """How far ``metric`` moves over the range: largest - smallest (in "x" of the ratio)."""
        low, high = self.span(metric)
        return high - low

    @property
    def widest(self) -> float:
        """The larger swing of the two headline ratios."""
        return max(self.swing(m) for m in METRICS)


@dataclass(frozen=True)
class TornadoResult:
    """Everything :func:`run_tornado` measured: per preset its base, one bar per ranged parameter, ``runs``
    distinct simulations on ``workers`` in ``wall_s``; ``to_json()`` is its strict-JSON form (with the bars'
    ranking, widest first)."""

    config: TornadoConfig
    base: Mapping[str, BaseCase]
    bars: tuple[Bar, ...]
    runs: int
    workers: int
    wall_s: float
    command: str = ""

    def bars_by_swing(self, preset: str | None = None) -> list[Bar]:
        """The bars (of ``preset``, or all), widest swing first."""
        chosen = [b for b in self.bars if preset is None or b.preset == preset]
        return sorted(chosen, key=lambda b: (-b.widest, b.preset, b.parameter))

    def to_json(self) -> dict:
        data = asdict(self)
        data["config"] = {**data["config"], "networks": [asdict(n) for n in self.config.networks]}
        return json_safe({**data, "ranking": [[b.preset, b.parameter, b.widest] for b in self.bars_by_swing()]})


def _workload(net: Network, config: TornadoConfig, rate_rps: float | None = None) -> WorkloadConfig:
    return WorkloadConfig(net.dataset, requests=config.requests, arrival="offline" if rate_rps is None else "poisson",
                          rate_rps=rate_rps, seed=config.seed, frame_rate_hz=float(net.frame_rate_hz))


def _run(configs, workers: int, done: dict[RunConfig, dict]) -> dict[RunConfig, dict]:
    """Simulate the configs not yet in ``done`` on the sweep machinery; ``done`` (config -> summary) grows."""
    todo = list(dict.fromkeys(c for c in configs if c not in done))
    done.update((r.config, r.summary) for r in run_configs(todo, workers=workers))
    return done


def _tune(config: TornadoConfig, workers: int, done: dict, log) -> tuple[dict, dict]:
    """Per (preset, network): the load, and T chosen by reproduce's objective at that load."""
    protocol = config.protocol()
    baselines = {(p, n.model): [RunConfig(n.model, p, _workload(n, config), name, params)
                                for _, name, params in policy_specs(protocol)]
                 for p in config.presets for n in config.networks}
    _run([c for cs in baselines.values() for c in cs], workers, done)
    load = {key: protocol.load_fraction * max(done[c]["throughput_rps"] for c in cs) for key, cs in baselines.items()}
    grid = {}
    for p in config.presets:
        for n in config.networks:
            longest = int(_workload(n, config).load().lengths.max())
            work = _workload(n, config, load[p, n.model])
            grid[p, n.model] = [RunConfig(n.model, p, work, "ebatch", {"batch_size": protocol.batch_size,
                                                                       "timesteps": t})
                                for t in timestep_grid(longest)]
    log(f"tornado: tuning T on {sum(len(g) for g in grid.values())} runs ...")
    _run([c for cs in grid.values() for c in cs], workers, done)
    tuned = {}
    for key, cs in grid.items():
        points = pd.DataFrame([{**done[c], **dict(c.policy_params)} for c in cs])
        best, _ = choose(points, protocol.tune_objective)
        tuned[key] = int(points.at[best, "timesteps"])
    return load, tuned


def run_tornado(config: TornadoConfig, workers: int = 0, log: Callable[[str], None] | None = None,
                command: str = "") -> TornadoResult:
    """Tune T on each base preset, then run every bar's two ends (see the module docstring)."""
    config.check()
    log = log or (lambda _msg: None)
    start = time.perf_counter()
    done: dict[RunConfig, dict] = {}
    load, tuned = _tune(config, workers, done, log)
    b = config.protocol().batch_size
    ranges = {p: ranges_for(p) for p in config.presets}

    def pair(preset: str, net: Network, overrides: dict) -> tuple[RunConfig, RunConfig]:
        work = _workload(net, config)
        return (RunConfig(net.model, preset, work, "cellular", {"batch_size": b}, overrides),
                RunConfig(net.model, preset, work, "ebatch", {"batch_size": b, "timesteps": tuned[preset, net.model]},
                          overrides))

    variants = {(p, None, None): {} for p in config.presets}
    for p, rows in ranges.items():
        spec = load_preset(p)
        for row in rows:
            for end, value in (("low", row.low), ("high", row.high)):
                if value != getattr(spec, row.parameter):
                    variants[p, row.parameter, end] = {row.parameter: value}
    configs = {(key, n.model): pair(key[0], n, overrides) for key, overrides in variants.items()
               for n in config.networks}
    log(f"tornado: {len(variants)} variants x {len(config.networks)} networks x 2 policies ...")
    _run([c for cs in configs.values() for c in cs], workers, done)

    def ratios(key) -> dict[str, Ratios]:
        out = {}
        for n in config.networks:
            cellular, ebatch = (done[c] for c in configs[key, n.model])
            out[n.model] = Ratios(ratio(ebatch["throughput_rps"], cellular["throughput_rps"]),
                                  ratio(ebatch["requests_per_j"], cellular["requests_per_j"]))
        return out

    base, bars = {}, []
    for p in config.presets:
        spec = load_preset(p)
        per_net = ratios((p, None, None))
        base[p] = BaseCase(spec.name, {n.model: tuned[p, n.model] for n in config.networks},
                           {n.model: load[p, n.model] for n in config.networks}, per_net,
                           Ratios.geomean(list(per_net.values())))
        for row in ranges[p]:
            ends = {end: ratios((p, row.parameter, end)) if (p, row.parameter, end) in variants else per_net
                    for end in ("low", "high")}
            bars.append(Bar(spec.name, row.parameter, spec.sources[row.parameter], row.reason,
                            getattr(spec, row.parameter), row.low, row.high, base[p].headline,
                            Ratios.geomean(list(ends["low"].values())), Ratios.geomean(list(ends["high"].values())),
                            ends["low"], ends["high"]))
    wall_s = time.perf_counter() - start
    return TornadoResult(config, base, tuple(bars), len(done), workers, wall_s, command)
