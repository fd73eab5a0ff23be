"""How E-BATCH's headline ratios move with the assumptions that drive them.

One parameter changes at a time, the others stay at the preset's values: DRAM energy per byte and the
weight-buffer size (multiples of the preset's value, as ``hardware_overrides`` of the runs), the batch
size B (the same B for every policy), and the number of requests queued offline (``requests``: fewer
requests means the last, partly filled batches weigh more). Each variant re-runs the four policies
offline on every network with ``config.sensitivity_requests`` requests (None: as many as the main runs)
and E-BATCH's T as tuned for the base preset; each row holds the geometric means over networks of
E-BATCH's throughput and requests-per-joule ratios to cellular and to padding (whole runs, as the
test-set figures of the cases).

Life cycle (the study's spec, in two phases, since E-BATCH's runs need the tuned T)::

    found = variants(config)
    baselines = sensitivity_configs(found, config)              # phase 1, with the cases' offline runs
    tuned_runs = sensitivity_configs(found, config, tuned)      # phase 3: tuned = {(network, preset): T}
    rows = sensitivity_rows(found, config, tuned, summaries)    # {RunConfig: summary} of both phases
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ebatch.experiments.formatting import geomean
from ebatch.experiments.study.headline import offline_ratios
from ebatch.experiments.study.reproduce_config import (
    ReproduceConfig,
    policy_configs,
    policy_specs,
    workload_config,
)
from ebatch.experiments.study.reproduce_results import SensitivityRow
from ebatch.hardware import load_preset
from ebatch.sweep import RunConfig

__all__ = ["BATCH_SIZES", "FACTORS", "SENSITIVITY_KEYS", "Variant", "sensitivity_configs", "sensitivity_rows",
           "variants"]

#: Multiples of the preset's value tried for each hardware parameter.
FACTORS = {
    "dram_energy_j_per_byte": (0.25, 0.5, 1.0, 2.0, 4.0),
    "weight_buffer_bytes": (0.25, 1.0, 4.0, 16.0, 64.0),
}
BATCH_SIZES = (16, 32, 64, 128)
SENSITIVITY_KEYS = (
    "throughput_vs_cellular", "energy_efficiency_vs_cellular", "throughput_vs_padding", "energy_efficiency_vs_padding",
)


@dataclass(frozen=True)
class Variant:
    """One row of the study: ``preset`` with ``parameter`` at ``shown`` (a factor for hardware parameters),
    as hardware overrides (none at factor 1) and changes to the study's configuration."""

    preset: str
    parameter: str
    shown: float
    overrides: Mapping[str, float] = field(default_factory=dict)
    changes: Mapping[str, int] = field(default_factory=dict)


def variants(config: ReproduceConfig) -> list[Variant]:
    """Every variant of every preset of ``config``."""
    found = []
    for preset in config.presets:
        base = load_preset(preset)
        for name, factors in FACTORS.items():
            for factor in factors:
                overrides = {} if factor == 1 else {name: getattr(base, name) * factor}
                found.append(Variant(preset, name, factor, overrides))
        found += [Variant(preset, "batch_size", b, changes={"batch_size": b}) for b in BATCH_SIZES]
        found += [Variant(preset, "requests", n, changes={"requests": n}) for n in config.sensitivity_request_counts]
    return found


def _runs(variant: Variant, config: ReproduceConfig, tuned: Mapping | None) -> dict[str, dict[str, RunConfig]]:
    run_config = replace(config, **{"requests": config.sensitivity_requests or config.requests, **variant.changes})
    name = load_preset(variant.preset).name
    runs = {}
    for net in config.networks:
        specs = policy_specs(run_config, None if tuned is None else tuned[(net.model, name)])
        work = workload_config(net, run_config)
        runs[net.model] = policy_configs(net, variant.preset, work, specs, variant.overrides)
    return runs


def sensitivity_configs(found: list[Variant], config: ReproduceConfig, tuned: Mapping | None = None) -> list[RunConfig]:
    """The runs of every variant: the baselines (``tuned`` None), or with E-BATCH at the tuned T as well."""
    return [c for v in found for per_net in _runs(v, config, tuned).values() for c in per_net.values()]


def sensitivity_rows(found: list[Variant], config: ReproduceConfig, tuned: Mapping,
                     summaries: Mapping[RunConfig, dict]) -> list[SensitivityRow]:
    """One row per variant: geometric means over networks of E-BATCH's ratios."""
    rows = []
    for variant in found:
        per_network = {key: [] for key in SENSITIVITY_KEYS}
        for per_net in _runs(variant, config, tuned).values():
            ratios = offline_ratios({label: summaries[c] for label, c in per_net.items()})
            for key in SENSITIVITY_KEYS:
                per_network[key].append(ratios[key])
        spec = load_preset(variant.preset)
        spec = spec.replace(**variant.overrides) if variant.overrides else spec
        hardware_parameter = variant.parameter in FACTORS
        rows.append(SensitivityRow(
            preset=spec.name, parameter=variant.parameter, factor=variant.shown if hardware_parameter else None,
            value=getattr(spec, variant.parameter) if hardware_parameter else variant.shown,
            **{k: geomean(v) for k, v in per_network.items()},
        ))
    return rows
