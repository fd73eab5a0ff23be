"""Figures of ``ebatch reproduce`` (PNG, matplotlib's Agg backend, no display needed).

Each function takes a :class:`~ebatch.experiments.study.reproduce_results.ReproduceResult`, writes one PNG and
returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ebatch.experiments.report.figures import pyplot, save
from ebatch.experiments.study.reproduce_config import POLICY_LABELS
from ebatch.experiments.study.reproduce_results import Case, ReproduceResult
from ebatch.experiments.study.sensitivity import SENSITIVITY_KEYS

__all__ = [
    "auto_study_chart", "energy_breakdown_chart", "latency_load_chart", "normalised_chart", "sensitivity_chart",
    "write_figures",
]

ENERGY_PARTS = ("dram", "sram", "mac", "static")


def _by_preset(result: ReproduceResult) -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = {}
    for case in result.cases:
        out.setdefault(case.preset, []).append(case)
    return out


def normalised_chart(result: ReproduceResult, path) -> Path:
    """Throughput and requests per joule of every policy, normalised to cellular, per preset and network."""
    plt = pyplot()
    presets = _by_preset(result)
    fig, axes = plt.subplots(2, len(presets), figsize=(5.5 * len(presets), 6.5), squeeze=False)
    metrics = (("throughput_rps", "throughput / cellular"), ("requests_per_j", "requests per J / cellular"))
    for col, (preset, cases) in enumerate(presets.items()):
        x = np.arange(len(cases))
        width = 0.8 / len(POLICY_LABELS)
        for row, (key, label) in enumerate(metrics):
            ax = axes[row][col]
            for i, policy in enumerate(POLICY_LABELS):
                values = [getattr(c.policies[policy].offline, key) / getattr(c.policies["cellular"].offline, key)
                          for c in cases]
                ax.bar(x + (i - 1.5) * width, values, width, label=policy)
            ax.axhline(1.0, color="black", lw=0.6)
            ax.set_xticks(x, [c.network for c in cases])
            ax.set_ylabel(label)
            ax.set_title(f"{preset}: offline {label.split(' /')[0]}")
    axes[0][0].legend(fontsize=8)
    return save(fig, path)


def energy_breakdown_chart(result: ReproduceResult, path) -> Path:
    """Stacked energy per request (DRAM, SRAM, MAC, static) of every policy, offline, relative to cellular's."""
    plt = pyplot()
    presets = _by_preset(result)
    fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4.5), squeeze=False)
    for col, (preset, cases) in enumerate(presets.items()):
        ax = axes[0][col]
        labels, bottoms = [], None
        parts = {part: [] for part in ENERGY_PARTS}
        for case in cases:
            reference = case.policies["cellular"].offline.energy_per_request_j
            for policy in POLICY_LABELS:
                off = case.policies[policy].offline
                labels.append(f"{case.network}\n{policy}")
                for part in ENERGY_PARTS:
                    parts[part].append(off.energy_breakdown_j[part] / off.completed / reference)
        x = np.arange(len(labels))
        bottoms = np.zeros(len(labels))
        for part in ENERGY_PARTS:
            ax.bar(x, parts[part], 0.7, bottom=bottoms, label=part)
            bottoms += np.array(parts[part])
        ax.set_xticks(x, labels, rotation=90, fontsize=7)
        ax.set_ylabel("energy per request / cellular's")
        ax.set_title(f"{preset}: energy breakdown, offline")
        ax.legend(fontsize=8)
    return save(fig, path)


def latency_load_chart(result: ReproduceResult, path) -> Path:
    """p99 latency versus offered load (fraction of saturation), Poisson arrivals, per network and preset."""
    plt = pyplot()
    presets = _by_preset(result)
    ncols = max(len(c) for c in presets.values())
    fig, axes = plt.subplots(len(presets), ncols, figsize=(4.2 * ncols, 3.4 * len(presets)), squeeze=False)
    for row, (preset, cases) in enumerate(presets.items()):
        for col, case in enumerate(cases):
            ax = axes[row][col]
            fractions = [p.fraction for p in case.curve]
            for policy in POLICY_LABELS:
                ax.plot(fractions, [p.policies[policy].latency_p99_s for p in case.curve], marker="o", label=policy)
            ax.set_yscale("log")
            ax.set_xlabel("offered load / saturation S")
            ax.set_ylabel("p99 latency (s)")
            ax.set_title(f"{case.network} on {preset} (S={case.saturation_rps:.3g}/s)", fontsize=9)
    axes[0][0].legend(fontsize=8)
    return save(fig, path)


def sensitivity_chart(result: ReproduceResult, path) -> Path:
    """E-BATCH's geometric-mean ratios as one parameter varies, per preset."""
    plt = pyplot()
    rows = result.sensitivity or ()
    parameters = list(dict.fromkeys(r.parameter for r in rows))
    presets = list(dict.fromkeys(r.preset for r in rows))
    fig, axes = plt.subplots(len(presets), len(parameters), figsize=(4.5 * len(parameters), 3.5 * len(presets)),
                             squeeze=False)
    for i, preset in enumerate(presets):
        for j, parameter in enumerate(parameters):
            ax = axes[i][j]
            sub = [r for r in rows if r.preset == preset and r.parameter == parameter]
            x = [r.factor if r.factor is not None else r.value for r in sub]
            for key in SENSITIVITY_KEYS:
                ax.plot(x, [getattr(r, key) for r in sub], marker="o", label=key.replace("_", " "))
            ax.set_xscale("log", base=2)
            ax.axhline(1.0, color="black", lw=0.6)
            ax.set_xlabel(f"{parameter} (x preset)" if sub and sub[0].factor is not None else parameter)
            ax.set_ylabel("E-BATCH ratio (geo. mean)")
            ax.set_title(preset, fontsize=9)
    if rows:
        axes[0][0].legend(fontsize=7)
    return save(fig, path)


def auto_study_chart(result: ReproduceResult, path) -> Path:
    """Left: the controller's T over time against the arrival rate; right: energy, auto vs best fixed T."""
    plt = pyplot()
    rows = result.auto_study or ()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    traj = next((r for r in rows if r.trajectory is not None), None)
    if traj is not None:
        ax = axes[0]
        t = traj.trajectory
        ax.step(t.time_s, t.timesteps, where="post", lw=0.8, label="T chosen")
        ax.set_yscale("log", base=2)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("T (time-steps)")
        twin = ax.twinx()
        arrivals = np.asarray(t.arrivals_s)
        bins = np.linspace(0, arrivals[-1], 40)
        counts, edges = np.histogram(arrivals, bins=bins)
        twin.plot((edges[:-1] + edges[1:]) / 2, counts / np.diff(edges), color="gray", label="arrival rate")
        twin.set_ylabel("arrivals per s")
        ax.set_title(f"{traj.network} on {traj.preset}: T over time (SLO {traj.latency_slo_s:.3g} s)",
                     fontsize=9)
    ax = axes[1]
    labels = [f"{r.network}\n{r.preset}" for r in rows]
    x = np.arange(len(rows))
    bars = ax.bar(x, [r.auto_energy_vs_best_fixed for r in rows], 0.6, color="tab:orange")
    for bar, r in zip(bars, rows):
        if not r.auto_meets_slo:
            bar.set_hatch("//")
            bar.set_edgecolor("red")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("auto energy / best fixed T's (hatched: SLO missed)")
    ax.set_title("energy per request, auto vs the best fixed T meeting the SLO", fontsize=9)
    return save(fig, path)


def write_figures(result: ReproduceResult, out_dir) -> list[Path]:
    out = Path(out_dir)
    paths = [
        normalised_chart(result, out / "normalised.png"),
        energy_breakdown_chart(result, out / "energy_breakdown.png"),
        latency_load_chart(result, out / "latency_vs_load.png"),
    ]
    if result.sensitivity:
        paths.append(sensitivity_chart(result, out / "sensitivity.png"))
    if result.auto_study:
        paths.append(auto_study_chart(result, out / "auto_study.png"))
    return paths
