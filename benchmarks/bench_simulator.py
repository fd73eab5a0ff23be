"""Simulator speed: wall time of whole-split simulations, per policy configuration and preset.

For each policy configuration (sequential; padding, also with ``sort_window=256``; cellular with both
priorities; ebatch with T = 16, 1 and 64, and streaming bidirectional layers at T = 16; B = 64
throughout) and each preset, simulates every request of a real data set and
reports the best wall time of ``--repeat`` runs (``ebatch.simulate`` plus ``summary()``; loading the
workload is not timed), simulated requests and computed cells per wall second, and steps. The target
(issue 2) is under 5 s per run on the project's 2-core machine.

Usage::

    python benchmarks/bench_simulator.py                                  # print the table
    python benchmarks/bench_simulator.py --out docs/benchmarks.md         # also write the docs section
    python benchmarks/bench_simulator.py --json rows.json --repeat 1 --cases eesen

``--out`` regenerates only the ``simulator`` section of the file
(:func:`ebatch.experiments.report.sections.write_section`), so other benchmarks can share the page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import ebatch
from ebatch.experiments.report.sections import write_section
from ebatch.hardware.host import cpu_name
from ebatch.workload import Workload

__all__ = ["CASES", "POLICIES", "PRESETS", "TARGET_S", "bench", "main", "markdown"]

TARGET_S = 5.0
PRESETS = ("epur", "tpu-v1")
#: (label, policy name, parameters)
POLICIES = (
    ("sequential", "sequential", {}),
    ("padding", "padding", {"batch_size": 64}),
    ("padding sort_window=256", "padding", {"batch_size": 64, "sort_window": 256}),
    ("cellular", "cellular", {"batch_size": 64}),
    ("cellular priority=oldest", "cellular", {"batch_size": 64, "priority": "oldest"}),
    ("ebatch T=16", "ebatch", {"batch_size": 64, "timesteps": 16}),
    ("ebatch stream T=16", "ebatch", {"batch_size": 64, "timesteps": 16, "bidirectional": "stream"}),
    ("ebatch T=1", "ebatch", {"batch_size": 64, "timesteps": 1}),
    ("ebatch T=64", "ebatch", {"batch_size": 64, "timesteps": 64}),
)
#: case name -> (model, data set); the first is the issue's headline case.
CASES = {
    "eesen": ("eesen", "librispeech-test-clean"),
    "gnmt-enc": ("gnmt-enc", "wmt22-en-de"),
    "lstm-2x512": ("lstm-2x512", "librispeech-test-clean"),
}


def bench(cases: list[str], repeat: int, progress=None) -> list[dict]:
    """One row per (case, preset, policy configuration): best wall time of ``repeat`` runs and rates."""
    rows = []
    for case in cases:
        model, dataset = CASES[case]
        workload = Workload.from_dataset(dataset)  # every request, offline
        for preset in PRESETS:
            for label, name, params in POLICIES:
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    summary = ebatch.simulate(model, workload, name, preset, **params).summary()
                    times.append(time.perf_counter() - t0)
                wall_s = min(times)
                row = {
                    "model": model,
                    "workload": dataset,
                    "hardware": preset,
                    "policy": label,
                    "requests": summary["requests"],
                    "wall_s": wall_s,
                    "wall_runs_s": times,
                    "requests_per_wall_s": summary["requests"] / wall_s,
                    "computed_cells": summary["computed_cells"],
                    "cells_per_wall_s": summary["computed_cells"] / wall_s,
                    "steps": summary["steps"],
                    "invocations": summary["invocations"],
                    "meets_target": wall_s < TARGET_S,
                }
                rows.append(row)
                if progress:
                    progress(row)
    return rows


def machine() -> str:
    """Cores, processor, Python and numpy versions of this machine, in one line."""
    return (
        f"{os.cpu_count()} CPU cores ({platform.machine()}, {cpu_name()}), Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}, ebatch {ebatch.__version__}"
    )


def _table(rows: list[dict]) -> list[str]:
    lines = [
        "| model x workload | hardware | policy | requests | wall s (best) | requests / wall s "
        "| cells / wall s | steps | < 5 s |",
        "|---|---|---|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} x {r['workload']} | {r['hardware']} | {r['policy']} | {r['requests']} "
            f"| {r['wall_s']:.2f} | {r['requests_per_wall_s']:,.0f} | {r['cells_per_wall_s']:,.0f} "
            f"| {r['steps']:,} | {'yes' if r['meets_target'] else '**no**'} |"
        )
    return lines


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def markdown(rows: list[dict], command: str, repeat: int, load: tuple[str, str] = ("unknown", "unknown")) -> str:
    missed = [r for r in rows if not r["meets_target"]]
    slowest = max(rows, key=lambda r: r["wall_s"])
    verdict = (
        f"All {len(rows)} runs meet the target of < {TARGET_S:g} s (slowest: {slowest['policy']} on "
        f"{slowest['model']} / {slowest['hardware']}, {slowest['wall_s']:.2f} s)."
        if not missed
        else f"{len(missed)} of {len(rows)} runs miss the target of < {TARGET_S:g} s: "
        + "; ".join(f"{r['policy']} on {r['model']} / {r['hardware']} ({r['wall_s']:.2f} s)" for r in missed)
        + "."
    )
    return "\n".join([
        "## Simulator speed",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}. One-minute load average {load[0]} before the runs and {load[1]} after "
        "(the machine is shared; wall times grow with the load).",
        "",
        f"Each row simulates every request of the data set (offline arrivals) with B = 64; wall time is the "
        f"best of {repeat} runs of `ebatch.simulate(...).summary()` (loading the workload is not timed). "
        "Cells are computed cells (padding included) of the simulated plan. "
        f"Target (issue 2): each policy simulates the whole split in under {TARGET_S:g} s.",
        "",
        verdict,
        "",
        *_table(rows),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="Markdown file whose 'simulator' section to (re)write")
    parser.add_argument("--json", type=Path, help="write the rows as JSON to this path")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the best is kept")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of: {', '.join(CASES)}"
    )
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser.error(f"--cases: unknown {unknown}; choose from {', '.join(CASES)}")
    if args.repeat < 1:
        parser.error("--repeat: must be >= 1")

    def progress(r: dict) -> None:
        print(
            f"{r['model']:>10} {r['hardware']:>6} {r['policy']:<24} {r['wall_s']:6.2f} s "
            f"{r['requests_per_wall_s']:9,.0f} req/s {r['cells_per_wall_s']:12,.0f} cells/s {r['steps']:8,} steps",
            file=sys.stderr,
            flush=True,
        )

    load_before = _load()
    rows = bench(cases, args.repeat, progress)
    load = (load_before, _load())
    command = "python benchmarks/bench_simulator.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(rows, command.strip(), args.repeat, load)
    print(text)
    if args.out:
        write_section(args.out, "simulator", text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "load_average_1min": load, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
