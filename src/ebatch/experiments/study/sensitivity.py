"""How E-BATCH's headline ratios move with the assumptions that drive them.

One parameter changes at a time, the others stay at the preset's values: DRAM energy per byte and the
weight-buffer size (multiples of the preset's value, through ``HardwareSpec.replace``), the batch size B
(the same B for every policy), and the number of requests queued offline (``requests``: fewer requests
means the last, partly filled batches weigh more). Each variant re-runs the four policies offline on every
network with ``config.sensitivity_requests`` requests (None: as many as the main runs) and E-BATCH's T as
tuned for the base preset; each row holds the geometric means over networks of E-BATCH's throughput and
requests-per-joule ratios to cellular and to padding. Life cycle: ``run_sensitivity(cases, config, timer)``
after the main cases; returns rows.
"""

from __future__ import annotations

from dataclasses import replace

from ebatch.experiments.formatting import geomean, ratio
from ebatch.experiments.study.reproduce_config import ReproduceConfig, case_workload, policy_specs
from ebatch.experiments.study.reproduce_results import Case, SensitivityRow
from ebatch.hardware import load_preset

__all__ = ["BATCH_SIZES", "FACTORS", "SENSITIVITY_KEYS", "run_sensitivity", "variants"]

#: Multiples of the preset's value tried for each hardware parameter.
FACTORS = {
    "dram_energy_j_per_byte": (0.25, 0.5, 1.0, 2.0, 4.0),
    "weight_buffer_bytes": (0.25, 1.0, 4.0, 16.0, 64.0),
}
BATCH_SIZES = (16, 32, 64, 128)
SENSITIVITY_KEYS = (
    "throughput_vs_cellular", "energy_efficiency_vs_cellular", "throughput_vs_padding", "energy_efficiency_vs_padding",
)


def variants(preset: str, request_counts=()):
    """(parameter, value shown, HardwareSpec, config changes) for every variant of ``preset``."""
    base = load_preset(preset)
    for name, factors in FACTORS.items():
        for factor in factors:
            value = getattr(base, name) * factor
            yield name, factor, base.replace(**{name: value}), {}
    for b in BATCH_SIZES:
        yield "batch_size", b, base, {"batch_size": b}
    for n in request_counts:
        yield "requests", n, base, {"requests": n}


def run_sensitivity(cases: list[Case], config: ReproduceConfig, timer) -> list[SensitivityRow]:
    """One row per (preset, parameter, value): geometric means over networks of E-BATCH's ratios."""
    base_config = replace(config, requests=config.sensitivity_requests or config.requests)
    rows = []
    for preset in config.presets:
        tuned = {c.network: c.tuned_timesteps for c in cases if c.preset == load_preset(preset).name}
        for parameter, shown, spec, changes in variants(preset, config.sensitivity_request_counts):
            per_network = {key: [] for key in SENSITIVITY_KEYS}
            run_config = replace(base_config, **changes)
            for net in config.networks:
                figures = {}
                work = case_workload(net, run_config)
                for label, name, params in policy_specs(run_config, tuned[net.model]):
                    s = timer.run(label, net.model, work, name, spec, params)
                    figures[label] = (s["throughput_rps"], s["requests_per_j"])
                e = figures["ebatch"]
                for base in ("cellular", "padding"):
                    per_network[f"throughput_vs_{base}"].append(ratio(e[0], figures[base][0]))
                    per_network[f"energy_efficiency_vs_{base}"].append(ratio(e[1], figures[base][1]))
            hardware_parameter = parameter in FACTORS
            rows.append(SensitivityRow(
                preset=spec.name, parameter=parameter, factor=shown if hardware_parameter else None,
                value=getattr(spec, parameter) if hardware_parameter else shown,
                **{k: geomean(v) for k, v in per_network.items()},
            ))
    return rows
