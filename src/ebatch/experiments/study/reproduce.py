"""Reproduce the E-BATCH paper's comparison: networks x presets x policies, offline and under load.

Life cycle::

    config = ReproduceConfig(quick=True)            # or ReproduceConfig(networks=(...), requests=50, ...)
    result = run_reproduce(config, log=print)       # a JSON-ready dict: cases, headline, sensitivity, ...
    write_outputs(result, "results/reproduce", doc="docs/reproduction.md")   # reproduce_report

Per network and preset (``run_case``):

1. Offline (every request queued at 0): ``padding``, ``padding`` with ``sort_window``, ``cellular``, all
   with the same B. **Saturation** S = the best offline throughput among these three baselines (the state
   of the art's capacity on that network and preset). The offered load is ``load_fraction x S``.
2. E-BATCH's T is tuned by :func:`ebatch.experiments.study.tune.tune` at that load (Poisson, the same B) for the
   objective ``tune_objective`` (default ``edp``: energy per request x p99 latency), then E-BATCH runs
   offline like the baselines.
3. Latency: every policy under Poisson arrivals at the load, and under the ``azure-conv`` trace
   time-scaled to the same mean rate; p99 versus load at ``curve_fractions`` of S.

Ratios are E-BATCH's figure over a baseline's (throughput, requests per joule; p99 latency: lower is
better). The headline is their geometric mean over networks, per preset. Raises ``ValueError`` for an
unknown network, preset or data set (before anything runs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ebatch.experiments.study.tune import tune
from ebatch.hardware import HardwareSpec, load_preset
from ebatch.model import get_model
from ebatch.sim import simulate
from ebatch.workload import DATASETS, Workload

__all__ = [
    "EXTRA_HEADLINE_KEYS", "HEADLINE_KEYS", "NETWORKS", "Network", "PAPER_HEADLINE", "PRESETS", "ReproduceConfig",
    "Timer", "finite", "geomean", "headline", "policy_specs", "run_case", "run_reproduce", "summary_figures",
]


@dataclass(frozen=True)
class Network:
    """A zoo model and the data set its requests come from."""

    model: str
    dataset: str
    frame_rate_hz: float = 100.0  # speech only: frames per second of audio


NETWORKS = (
    Network("eesen", "librispeech-test-clean", 100.0),
    Network("deepspeech2", "librispeech-test-clean", 50.0),  # its conv front end halves the frame rate
    Network("gnmt-enc", "wmt22-en-de"),
)
PRESETS = ("epur", "tpu-v1")
#: The paper's abstract: E-BATCH over the state of the art.
PAPER_HEADLINE = {
    "epur": {"throughput": 1.8, "energy_efficiency": 3.6},
    "tpu-v1": {"throughput": 2.1, "energy_efficiency": 1.6},
}
HEADLINE_KEYS = (
    "throughput_vs_cellular", "energy_efficiency_vs_cellular", "throughput_vs_padding",
    "energy_efficiency_vs_padding", "p99_latency_vs_cellular",
)
#: Also in the headline: E-BATCH against the strongest baseline here (sorted padding) and padding's latency.
EXTRA_HEADLINE_KEYS = (
    "throughput_vs_padding-sorted", "energy_efficiency_vs_padding-sorted", "p99_latency_vs_padding",
    "p99_latency_vs_padding-sorted", "throughput_vs_best_baseline", "energy_efficiency_vs_best_baseline",
)
SUMMARY_KEYS = (
    "completed", "makespan_s", "throughput_rps", "cells_per_s", "energy_per_request_j", "requests_per_j",
    "latency_p50_s", "latency_p99_s", "padding_fraction", "dram_weight_bytes", "mac_utilisation",
    "energy_breakdown_j",
)


@dataclass(frozen=True)
class ReproduceConfig:
    """What ``run_reproduce`` runs. ``requests=None``: every request of each data set."""

    networks: tuple[Network, ...] = NETWORKS
    presets: tuple[str, ...] = PRESETS
    requests: int | None = None
    batch_size: int = 64
    sort_window: int = 256
    load_fraction: float = 0.7
    curve_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)
    tune_objective: str = "edp"
    trace: str = "azure-conv"
    sensitivity: bool = True
    sensitivity_requests: int | None = None  # None: as many as the main runs
    sensitivity_request_counts: tuple[int, ...] = (300, 1000)  # the "requests" variants
    auto_study: bool = True
    auto_requests: int = 1500
    auto_slo_factor: float = 2.0
    auto_extra_networks: tuple[Network, ...] = (Network("lstm-2x512", "librispeech-test-clean", 100.0),)
    seed: int = 0

    @classmethod
    def quick(cls, **changes) -> ReproduceConfig:
        """Fewer requests and load points: the ``--quick`` run."""
        base = dict(requests=300, curve_fractions=(0.4, 0.7, 1.0), sensitivity_requests=120,
                    sensitivity_request_counts=(60,), auto_requests=500)
        return cls(**{**base, **changes})

    def check(self) -> None:
        for net in self.networks + self.auto_extra_networks:
            get_model(net.model)
            if net.dataset not in DATASETS:
                raise ValueError(
                    f"network {net.model}: unknown dataset {net.dataset!r}; choose one of {', '.join(sorted(DATASETS))}"
                )
        for preset in self.presets:
            load_preset(preset)
        if not self.load_fraction > 0:
            raise ValueError(f"load_fraction: must be > 0, got {self.load_fraction}")
        if self.requests is not None and self.requests < 2:
            raise ValueError(f"requests: must be >= 2, got {self.requests}")


def policy_specs(config: ReproduceConfig, timesteps: int | None = None) -> list[tuple[str, str, dict]]:
    """(label, policy name, parameters) of the compared policies; E-BATCH only once T is known."""
    b = config.batch_size
    specs = [
        ("padding", "padding", {"batch_size": b}),
        ("padding-sorted", "padding", {"batch_size": b, "sort_window": config.sort_window}),
        ("cellular", "cellular", {"batch_size": b}),
    ]
    if timesteps is not None:
        specs.append(("ebatch", "ebatch", {"batch_size": b, "timesteps": int(timesteps)}))
    return specs


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

    def table(self) -> dict:
        return {
            label: {**e, "cells_per_wall_s": e["cells"] / e["wall_s"],
                    "requests_per_wall_s": e["requests"] / e["wall_s"]}
            for label, e in self.per_policy.items()
        }


def summary_figures(summary: dict) -> dict:
    return {k: summary[k] for k in SUMMARY_KEYS}


def geomean(values) -> float:
    values = list(values)
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        return float("nan")
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else float("nan")


def _workload(net: Network, config: ReproduceConfig, arrival: str = "offline", rate: float | None = None) -> Workload:
    return Workload.from_dataset(net.dataset, n=config.requests, arrival=arrival, rate_rps=rate, seed=config.seed,
                                 frame_rate_hz=net.frame_rate_hz)


def run_case(net: Network, preset: str | HardwareSpec, config: ReproduceConfig, timer: Timer) -> dict:
    """Everything measured for one network on one preset (see the module docstring)."""
    hardware = load_preset(preset) if isinstance(preset, str) else preset
    offline = _workload(net, config)
    policies = {}
    for label, name, params in policy_specs(config):
        policies[label] = {"policy": name, "params": params,
                           "offline": summary_figures(timer.run(label, net.model, offline, name, hardware, params))}
    saturation_label = max(policies, key=lambda k: policies[k]["offline"]["throughput_rps"])
    saturation = policies[saturation_label]["offline"]["throughput_rps"]
    load = config.load_fraction * saturation
    poisson = _workload(net, config, "poisson", load)
    trace = _workload(net, config, config.trace, load)

    tuned = tune(net.model, hardware, poisson, batch_sizes=[config.batch_size], objective=config.tune_objective)
    t_best = int(tuned.best["timesteps"])
    label, name, params = policy_specs(config, t_best)[-1]
    policies[label] = {"policy": name, "params": params,
                       "offline": summary_figures(timer.run(label, net.model, offline, name, hardware, params))}
    for label, name, params in policy_specs(config, t_best):
        entry = policies[label]
        entry["poisson"] = summary_figures(timer.run(label, net.model, poisson, name, hardware, params))
        entry["trace"] = summary_figures(timer.run(label, net.model, trace, name, hardware, params))
        entry["overloaded"] = load > entry["offline"]["throughput_rps"]

    curve = []
    for fraction in config.curve_fractions:
        rate = fraction * saturation
        work = _workload(net, config, "poisson", rate)
        point = {"fraction": fraction, "rate_rps": rate}
        for label, name, params in policy_specs(config, t_best):
            s = timer.run(label, net.model, work, name, hardware, params)
            point[label] = {"latency_p50_s": s["latency_p50_s"], "latency_p99_s": s["latency_p99_s"],
                            "energy_per_request_j": s["energy_per_request_j"]}
        curve.append(point)

    ratios = {}
    e = policies["ebatch"]
    for base in ("cellular", "padding", "padding-sorted"):
        p = policies[base]
        ratios[f"throughput_vs_{base}"] = _ratio(e["offline"]["throughput_rps"], p["offline"]["throughput_rps"])
        ratios[f"energy_efficiency_vs_{base}"] = _ratio(e["offline"]["requests_per_j"], p["offline"]["requests_per_j"])
        ratios[f"p99_latency_vs_{base}"] = _ratio(e["poisson"]["latency_p99_s"], p["poisson"]["latency_p99_s"])
        ratios[f"p99_latency_trace_vs_{base}"] = _ratio(e["trace"]["latency_p99_s"], p["trace"]["latency_p99_s"])
    baselines = [label for label, _, _ in policy_specs(config)]
    best_thr = max(policies[b]["offline"]["throughput_rps"] for b in baselines)
    best_eff = max(policies[b]["offline"]["requests_per_j"] for b in baselines)
    ratios["throughput_vs_best_baseline"] = _ratio(e["offline"]["throughput_rps"], best_thr)
    ratios["energy_efficiency_vs_best_baseline"] = _ratio(e["offline"]["requests_per_j"], best_eff)
    return {
        "network": net.model, "dataset": net.dataset, "preset": hardware.name,
        "frame_rate_hz": net.frame_rate_hz if DATASETS[net.dataset].kind == "speech" else None,
        "requests": len(offline), "length_mean": float(offline.lengths.mean()),
        "length_max": int(offline.lengths.max()),
        "saturation_rps": saturation, "saturation_policy": saturation_label, "load_rps": load,
        "tuned_timesteps": t_best, "tune": {"objective": config.tune_objective, "load": tuned.settings["load"],
                                            "points": tuned.points.to_dict(orient="records")},
        "policies": policies, "ratios": ratios, "curve": curve,
    }


def headline(cases: list[dict], presets) -> dict:
    """Geometric means over networks of E-BATCH's ratios, per preset."""
    return {
        preset: {
            key: geomean([c["ratios"][key] for c in cases if c["preset"] == preset])
            for key in HEADLINE_KEYS + EXTRA_HEADLINE_KEYS
        }
        for preset in presets
    }


def run_reproduce(config: ReproduceConfig, log: Callable[[str], None] | None = None, command: str = "") -> dict:
    """Run every case, the sensitivity study and the auto-T study; return everything as one dict."""
    from ebatch.experiments.study.autostudy import run_auto_study
    from ebatch.experiments.study.sensitivity import run_sensitivity

    config.check()
    log = log or (lambda _msg: None)
    timer, start, cases = Timer(), time.perf_counter(), []
    for preset in config.presets:
        for net in config.networks:
            case = run_case(net, preset, config, timer)
            r = case["ratios"]
            log(f"{net.model} on {preset}: T={case['tuned_timesteps']}, E-BATCH vs cellular "
                f"throughput {r['throughput_vs_cellular']:.2f}x, requests/J {r['energy_efficiency_vs_cellular']:.2f}x")
            cases.append(case)
    result = {
        "command": command,
        "config": asdict(config),
        "cases": cases,
        "headline": headline(cases, [load_preset(p).name for p in config.presets]),
        "paper": PAPER_HEADLINE,
        "assumptions": {p: _assumptions(load_preset(p)) for p in config.presets},
    }
    phases = {"cases_s": time.perf_counter() - start}
    if config.sensitivity:
        log("sensitivity study ...")
        phase_start = time.perf_counter()
        result["sensitivity"] = run_sensitivity(cases, config, timer)
        phases["sensitivity_s"] = time.perf_counter() - phase_start
    if config.auto_study:
        log("auto-T study ...")
        phase_start = time.perf_counter()
        result["auto_study"] = run_auto_study(cases, config)
        phases["auto_study_s"] = time.perf_counter() - phase_start
    result["timing"] = {"wall_s": time.perf_counter() - start, "phases": phases, "per_policy": timer.table()}
    return result


def _assumptions(spec: HardwareSpec) -> list[dict]:
    return [{"parameter": k, "value": getattr(spec, k), "source": spec.sources[k]} for k in spec.assumptions]


def finite(values) -> bool:
    """True when every number in a nested dict/list is finite (used by tests and the report)."""
    if isinstance(values, dict):
        return all(finite(v) for v in values.values())
    if isinstance(values, (list, tuple)):
        return all(finite(v) for v in values)
    if isinstance(values, (float, np.floating)):
        return math.isfinite(values)
    return True
