"""Simulator speed: wall time of whole-split simulations, per policy configuration and preset.

For each policy configuration (sequential; padding, also with ``sort_window=256``; cellular with both
priorities; ebatch with T = 16, 1 and 64, and streaming bidirectional layers at T = 16; B = 64
throughout) and each preset, simulates every request of a real data set and
reports the best wall time of ``--repeat`` runs (``ebatch.simulate`` plus ``summary()``; loading the
workload is not timed), simulated requests and computed cells per wall second, and steps. The target
(issue 2) is under 5 s per run on the project's 2-core machine.

``--baseline REV`` also times git revision ``REV`` of this repository (its ``src/`` unpacked to a
temporary folder) on the same configurations, side by side: for each configuration the baseline and the
working tree run alternately, ``--repeat`` times each, every run in a fresh process of its own; the rows
add the baseline's best wall time, the speed-up and whether the two summaries are identical.

Usage::

    python benchmarks/bench_simulator.py                                  # print the table
    python benchmarks/bench_simulator.py --out docs/benchmarks.md         # also write the docs section
    python benchmarks/bench_simulator.py --json rows.json --repeat 1 --cases eesen
    python benchmarks/bench_simulator.py --cases eesen --policies cellular,"ebatch T=16" --baseline HEAD~3

``--out`` regenerates only the ``simulator`` section of the file (``simulator-baseline`` with
``--baseline``; :func:`ebatch.experiments.report.sections.write_section`), so other benchmarks can share
the page.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import ebatch
from ebatch.workload import Workload

# (only ebatch.simulate and Workload are used by a --worker run, which may import an older ebatch)

__all__ = ["CASES", "POLICIES", "PRESETS", "TARGET_S", "bench", "bench_against", "main", "markdown"]

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


def bench(cases: list[str], repeat: int, progress=None, policies=POLICIES) -> list[dict]:
    """One row per (case, preset, policy configuration): best wall time of ``repeat`` runs and rates."""
    rows = []
    for case in cases:
        model, dataset = CASES[case]
        workload = Workload.from_dataset(dataset)  # every request, offline
        for preset in PRESETS:
            for label, name, params in policies:
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


def _worker(model: str, dataset: str, preset: str, name: str, params: dict) -> tuple[float, float, dict]:
    """What a ``--worker`` run times: wall and CPU seconds of ``ebatch.simulate(...).summary()`` on every
    request of ``dataset`` (loading the workload is not timed), and the summary."""
    workload = Workload.from_dataset(dataset)  # every request, offline
    t0, c0 = time.perf_counter(), time.process_time()
    summary = ebatch.simulate(model, workload, name, preset, **params).summary()
    return time.perf_counter() - t0, time.process_time() - c0, summary


def _in_process(python_path: Path | None, config: tuple) -> tuple[float, float, dict]:
    """:func:`_worker` in a fresh Python process, with ``python_path`` (a ``src/`` folder) first on its path."""
    env = dict(os.environ)
    if python_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(python_path), *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(config)], env=env, check=True,
                          capture_output=True, text=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["wall_s"], answer["cpu_s"], answer["summary"]


def _unpack_source(revision: str, folder: Path) -> Path:
    """``src/`` of git revision ``revision`` of this repository, unpacked under ``folder``; returns its path."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", "--format=tar", revision, "src"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(folder, filter="data")
        else:  # Python releases before the extraction filters
            tar.extractall(folder)  # noqa: S202 (our own repository's archive)
    return folder / "src"


def bench_against(revision: str, cases: list[str], repeat: int, policies=POLICIES, progress=None) -> list[dict]:
    """One row per (case, preset, policy configuration): this working tree's and ``revision``'s best wall
    time of ``repeat`` runs each, alternating, every run in its own process; and whether the summaries match."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        baseline_src = _unpack_source(revision, Path(folder))
        for case in cases:
            model, dataset = CASES[case]
            for preset in PRESETS:
                for label, name, params in policies:
                    config = (model, dataset, preset, name, params)
                    base_times, times, base_cpu, cpu = [], [], [], []
                    for _ in range(repeat):
                        base_s, base_cpu_s, base_summary = _in_process(baseline_src, config)
                        wall_s, cpu_s, summary = _in_process(None, config)
                        base_times.append(base_s)
                        times.append(wall_s)
                        base_cpu.append(base_cpu_s)
                        cpu.append(cpu_s)
                    best, base_best = min(times), min(base_times)
                    row = {
                        "model": model, "workload": dataset, "hardware": preset, "policy": label,
                        "requests": summary["requests"], "baseline": revision,
                        "baseline_wall_s": base_best, "baseline_runs_s": base_times,
                        "wall_s": best, "wall_runs_s": times,
                        "baseline_requests_per_wall_s": summary["requests"] / base_best,
                        "requests_per_wall_s": summary["requests"] / best,
                        "speedup": base_best / best,
                        "baseline_cpu_s": min(base_cpu), "cpu_s": min(cpu), "cpu_speedup": min(base_cpu) / min(cpu),
                        "summary_identical": json.dumps(base_summary, sort_keys=True)
                        == json.dumps(summary, sort_keys=True),
                    }
                    rows.append(row)
                    if progress:
                        progress(row)
    return rows


def machine() -> str:
    """Cores, processor, Python and numpy versions of this machine, in one line."""
    from ebatch.hardware.host import cpu_name

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


def markdown_against(rows: list[dict], command: str, repeat: int, load: tuple[str, str]) -> str:
    """The ``simulator-baseline`` section: this working tree against a baseline revision, side by side."""
    lines = [
        "## Simulator speed against an earlier revision",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}. One-minute load average {load[0]} before the runs and {load[1]} after "
        "(the machine is shared; wall times grow with the load, so compare the two columns of a row).",
        "",
        f"Each configuration ran {repeat} times on revision `{rows[0]['baseline']}` and {repeat} times on this "
        "working tree, alternately, every run in a fresh process (wall time of `ebatch.simulate(...).summary()`, "
        "loading the workload not timed); the best of each is shown, and the least CPU time of each (the "
        "process's own, which other users of the machine disturb far less). *Identical*: the two summaries are "
        "equal key by key, floats bit for bit.",
        "",
        "| model x workload | hardware | policy | requests | baseline wall s | wall s | speed-up "
        "| baseline requests / wall s | requests / wall s | CPU s: baseline, now | CPU speed-up | identical |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} x {r['workload']} | {r['hardware']} | {r['policy']} | {r['requests']} "
            f"| {r['baseline_wall_s']:.2f} | {r['wall_s']:.2f} | {r['speedup']:.1f}x "
            f"| {r['baseline_requests_per_wall_s']:,.0f} | {r['requests_per_wall_s']:,.0f} "
            f"| {r['baseline_cpu_s']:.2f}, {r['cpu_s']:.2f} | {r['cpu_speedup']:.1f}x "
            f"| {'yes' if r['summary_identical'] else '**no**'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="Markdown file whose 'simulator' section to (re)write")
    parser.add_argument("--json", type=Path, help="write the rows as JSON to this path")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the best is kept")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of: {', '.join(CASES)}"
    )
    labels = [label for label, _, _ in POLICIES]
    parser.add_argument("--policies", default=",".join(labels),
                        help=f"comma-separated subset of the policy configurations: {', '.join(labels)}")
    parser.add_argument("--baseline", metavar="REV",
                        help="also time this git revision of the repository, side by side (see above)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one timed run, for --baseline
    args = parser.parse_args(argv)
    if args.worker:
        wall_s, cpu_s, summary = _worker(*json.loads(args.worker))
        print(json.dumps({"wall_s": wall_s, "cpu_s": cpu_s, "summary": summary}))
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser.error(f"--cases: unknown {unknown}; choose from {', '.join(CASES)}")
    chosen = [c.strip() for c in args.policies.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in labels]
    if unknown or not chosen:
        parser.error(f"--policies: unknown {unknown}; choose from {', '.join(labels)}")
    policies = [p for p in POLICIES if p[0] in chosen]
    if args.repeat < 1:
        parser.error("--repeat: must be >= 1")
    command = "python benchmarks/bench_simulator.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.baseline:
        return _main_against(args, cases, policies, command.strip())

    def progress(r: dict) -> None:
        print(
            f"{r['model']:>10} {r['hardware']:>6} {r['policy']:<24} {r['wall_s']:6.2f} s "
            f"{r['requests_per_wall_s']:9,.0f} req/s {r['cells_per_wall_s']:12,.0f} cells/s {r['steps']:8,} steps",
            file=sys.stderr,
            flush=True,
        )

    load_before = _load()
    rows = bench(cases, args.repeat, progress, policies)
    load = (load_before, _load())
    _write(args, "simulator", markdown(rows, command, args.repeat, load), rows, load)
    return 0


def _main_against(args, cases: list[str], policies, command: str) -> int:
    def progress(r: dict) -> None:
        print(
            f"{r['model']:>10} {r['hardware']:>6} {r['policy']:<24} baseline {r['baseline_wall_s']:6.2f} s, "
            f"now {r['wall_s']:6.2f} s: {r['speedup']:4.1f}x (CPU {r['cpu_speedup']:4.1f}x), "
            f"summaries {'identical' if r['summary_identical'] else 'DIFFER'}",
            file=sys.stderr,
            flush=True,
        )

    load_before = _load()
    try:
        rows = bench_against(args.baseline, cases, args.repeat, policies, progress)
    except subprocess.CalledProcessError as exc:
        last = str(exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr).strip().splitlines()[-1:]
        print(f"--baseline: {args.baseline!r} could not be timed ({' '.join(last) or exc}); give a revision of "
              "this repository whose ebatch has these models and policies", file=sys.stderr)
        return 2
    load = (load_before, _load())
    _write(args, "simulator-baseline", markdown_against(rows, command, args.repeat, load), rows, load)
    return 0


def _write(args, section: str, text: str, rows: list[dict], load: tuple[str, str]) -> None:
    """Print ``text``; write it as ``section`` of ``--out`` and the rows to ``--json`` when asked."""
    from ebatch.experiments.report.sections import write_section

    print(text)
    if args.out:
        write_section(args.out, section, text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "load_average_1min": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
