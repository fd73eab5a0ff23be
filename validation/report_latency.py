"""The latency part of docs/validation.md: ebatch's GEMM time next to ZigZag's (double buffering, overlap).

ZigZag's latency = ideal temporal cycles (M x folds, the array never waiting) + stalls (a memory level
that cannot deliver a loop's data within the loop) + on-loading (filling the first tiles before the first
MAC) + off-loading + the systolic array's drain. ebatch's = ``gemm_cycles`` (with or without double
buffering), and ``max(gemm_cycles, DRAM cycles)`` where the weights come from DRAM.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from report_cycles import pct, rel, table

__all__ = ["joined_latency", "latency_section"]

VARIANTS = {
    "dram": "weights from DRAM, double-buffered: ebatch max(compute, DRAM), perfect overlap",
    "buffer": "weights resident in the weight buffer, double-buffered (two weight registers per PE)",
    "buffer-sb": "weights resident, single-buffered (one weight register per PE)",
}


def joined_latency(cases: list[dict], zigzag: dict) -> list[dict]:
    """The latency cases with ZigZag's figures (cases whose job failed or was skipped carry ``error``)."""
    out = []
    for case in cases:
        run = zigzag["runs"].get(case["job"], {"error": "not run"})
        if "error" in run:
            out.append({**case, "error": run["error"]})
            continue
        parts = run["latency_parts"]
        out.append({**case, "zigzag_cycles": run["latency_cycles"], "ideal": parts["ideal_temporal_cycles"],
                    "stall": parts["stall_slack_cycles"], "onload": parts["onloading_cycles"],
                    "drain": parts["systolic_drain_cycles"], "spatial": run["spatial_unrolling"],
                    "diff": rel(case["ebatch_cycles"], run["latency_cycles"])})
    return out


def _summary_rows(rows: list[dict]) -> list[list]:
    groups = defaultdict(list)
    for r in rows:
        if "error" not in r:
            groups[(r["preset"], r["variant"])].append(r)
    summary = []
    for (preset, variant), rs in groups.items():
        diffs = [r["diff"] for r in rs]
        worst = max(rs, key=lambda r: abs(r["diff"]))
        bound = sum(r["ebatch_cycles"] <= r["zigzag_cycles"] for r in rs)
        summary.append([f"`{preset}`", variant, len(rs), pct(statistics.median(diffs)),
                      f"{pct(min(diffs))} .. {pct(max(diffs))}", f"{bound} of {len(rs)}",
                      f"M={worst['m']} K={worst['k']} N={worst['n']}: {worst['ebatch_cycles']:.0f} vs "
                      f"{worst['zigzag_cycles']:.0f}"])
    return summary


def latency_section(cases: list[dict], zigzag: dict, notes: list[str]) -> str:
    rows = joined_latency(cases, zigzag)
    failed = [r for r in rows if "error" in r]
    out = [
        "## Latency: double buffering and compute/DRAM overlap vs ZigZag",
        "",
        "Every distinct zoo layer shape (both products) at B in {1, 8, 64} on both presets; ZigZag (minimum-"
        "latency mapping) on an accelerator built from the preset, as for the energy below. Cases: "
        + "; ".join(f"**{k}**: {v}" for k, v in VARIANTS.items())
        + " (the last two only where the matrix fits the weight buffer). ZigZag's latency = ideal cycles "
        "(M x folds) + stalls where a memory cannot deliver a loop's data in time + on-loading of the first "
        "tiles + off-loading + the array's drain.",
        "",
        table(["preset", "case", "GEMMs", "median rel. diff", "range", "ebatch <= ZigZag", "largest (ebatch vs "
                "ZigZag cycles)"], _summary_rows(rows)),
        "",
    ]
    out += [f"- {note}" for note in notes]
    if failed:
        out.append(f"- {len(failed)} cases have no ZigZag figure: " + "; ".join(
            sorted({r['error'] for r in failed}))[:600])
    out += ["", "<details><summary>every case</summary>", ""]
    out.append(table(
        ["preset", "case", "shape (first in the zoo)", "M", "K", "N", "folds", "ebatch compute", "ebatch DRAM",
         "ebatch", "ZigZag", "ideal", "stall", "on-load", "drain", "rel. diff"],
        [[r["preset"], r["variant"], r["where"], r["m"], r["k"], r["n"], r["folds"], r["ebatch_compute_cycles"],
          f"{r['ebatch_dram_cycles']:.0f}", f"{r['ebatch_cycles']:.0f}"]
         + ([f"{r['zigzag_cycles']:.0f}", f"{r['ideal']:.0f}", f"{r['stall']:.0f}", f"{r['onload']:.0f}",
             f"{r['drain']:.0f}", pct(r["diff"])] if "error" not in r else ["failed", "", "", "", "", ""])
         for r in rows]))
    out += ["", "</details>"]
    return "\n".join(out)
