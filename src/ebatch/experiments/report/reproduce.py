"""Tables, files and the Markdown report of ``ebatch reproduce``.

Life cycle: ``write_outputs(result, out_dir, doc=...)`` after :func:`~ebatch.experiments.study.reproduce.run_reproduce`
writes ``reproduction.json`` (every figure, ``result.to_json()``), CSV tables, PNG figures and the Markdown report
(into ``out_dir`` and, when ``doc`` is given, there too). ``table_rows`` and ``headline_rows`` feed the
terminal table. The prose of the report is in :mod:`ebatch.experiments.report.reproduce_text`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ebatch.experiments.formatting import ratio
from ebatch.experiments.report.reproduce_plots import write_figures
from ebatch.experiments.report.reproduce_text import report
from ebatch.experiments.study.reproduce_config import POLICY_LABELS
from ebatch.experiments.study.reproduce_results import ReproduceResult

__all__ = ["headline_rows", "table_rows", "write_outputs"]


def table_rows(result: ReproduceResult) -> list[dict]:
    """One row per network x preset x policy with its figures and E-BATCH's ratios to it."""
    rows = []
    for case in result.cases:
        e = case.policies["ebatch"]
        for policy in POLICY_LABELS:
            p = case.policies[policy]
            rows.append({
                "network": case.network, "preset": case.preset, "policy": policy,
                "T": case.tuned_timesteps if policy == "ebatch" else None,
                "throughput_rps": p.offline.throughput_rps,
                "requests_per_j": p.offline.requests_per_j,
                "energy_per_request_j": p.offline.energy_per_request_j,
                "padding_fraction": p.offline.padding_fraction,
                "latency_p50_s": p.poisson.latency_p50_s,
                "latency_p99_s": p.poisson.latency_p99_s,
                "trace_latency_p99_s": p.trace.latency_p99_s,
                "overloaded": p.overloaded,
                "ebatch_throughput_ratio": ratio(e.offline.throughput_rps, p.offline.throughput_rps),
                "ebatch_energy_efficiency_ratio": ratio(e.offline.requests_per_j, p.offline.requests_per_j),
                "ebatch_p99_ratio": ratio(e.poisson.latency_p99_s, p.poisson.latency_p99_s),
            })
    return rows


def headline_rows(result: ReproduceResult) -> list[dict]:
    """Per preset: the geometric means next to the paper's figures."""
    rows = []
    for preset, h in result.headline.items():
        paper = result.paper.get(preset, {})
        rows.append({
            "preset": preset,
            "throughput_vs_cellular": h["throughput_vs_cellular"], "paper_throughput": paper.get("throughput"),
            "energy_efficiency_vs_cellular": h["energy_efficiency_vs_cellular"],
            "paper_energy_efficiency": paper.get("energy_efficiency"),
            "throughput_vs_padding": h["throughput_vs_padding"],
            "energy_efficiency_vs_padding": h["energy_efficiency_vs_padding"],
            "p99_latency_vs_cellular": h["p99_latency_vs_cellular"],
            "energy_efficiency_under_load_vs_cellular": h["energy_efficiency_under_load_vs_cellular"],
            "basis": result.headline_basis,
        })
    return rows


def _curve_rows(result: ReproduceResult) -> list[dict]:
    rows = []
    for case in result.cases:
        for point in case.curve:
            for policy in POLICY_LABELS:
                rows.append({"network": case.network, "preset": case.preset, "fraction": point.fraction,
                             "rate_rps": point.rate_rps, "policy": policy, **asdict(point.policies[policy])})
    return rows


def _auto_rows(result: ReproduceResult) -> list[dict]:
    keep = ("network", "preset", "streaming", "rate_rps", "latency_slo_s", "best_fixed_timesteps",
            "best_fixed_latency_p99_s", "best_fixed_energy_per_request_j", "auto_latency_p99_s",
            "auto_energy_per_request_j", "auto_meets_slo", "auto_energy_vs_best_fixed", "auto_held", "auto_windows")
    return [{k: getattr(r, k) for k in keep} for r in result.auto_study or ()]


def write_outputs(result: ReproduceResult, out_dir, doc=None) -> list[Path]:
    """Write JSON, CSVs, figures and the Markdown report; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "reproduction.json"]
    paths[0].write_text(json.dumps(result.to_json(), indent=1))
    tables = {
        "reproduction.csv": table_rows(result), "headline.csv": headline_rows(result),
        "latency_vs_load.csv": _curve_rows(result),
        "sensitivity.csv": [asdict(r) for r in result.sensitivity or ()],
        "auto_study.csv": _auto_rows(result),
        "convergence.csv": [{"preset": r.preset, "backlog_factor": r.backlog_factor, "window": r.window, **r.ratios}
                            for r in result.convergence],
    }
    for name, rows in tables.items():
        if rows:
            pd.DataFrame(rows).to_csv(out / name, index=False)
            paths.append(out / name)
    paths += write_figures(result, out)
    text = report(result)
    (out / "reproduction.md").write_text(text)
    paths.append(out / "reproduction.md")
    if doc is not None:
        Path(doc).parent.mkdir(parents=True, exist_ok=True)
        Path(doc).write_text(text)
        paths.append(Path(doc))
    return paths
