"""``ebatch reproduce`` serially and on 2 local dask workers, side by side: wall time and identical numbers.

    python benchmarks/bench_reproduce_workers.py --out docs/benchmarks.md [--full] [--repeats 2]

Three ways, alternating (serial, 2 workers, 2 workers in their own sessions, serial, ...) so that other
load on a shared machine falls on all of them:

- ``serial``: ``run_reproduce(config)`` in this process;
- ``2 workers``: ``run_reproduce(config, workers=2)``, what ``ebatch reproduce --workers 2`` does (a
  ``LocalCluster`` whose worker processes are this process's children);
- ``2 workers, own sessions``: the same cluster, but each worker process calls ``os.setsid()`` first, and
  the study runs on it through ``scheduler=``. Linux's autogroup scheduling (``/proc/sys/kernel/
  sched_autogroup_enabled``) shares the CPU fairly between sessions, not processes: on a machine busy with
  other sessions, a LocalCluster's workers share one session's slice with their parent, however many
  they are. Workers in their own sessions get a slice each, as workers started by a cluster launcher would.

Each run writes its files (JSON, CSVs, report) to a temporary folder, and every run's ``reproduction.json``
(less its wall times and command) and CSV files must equal the first serial run's. Writes a Markdown section
with every run's wall time and the speed-ups of the medians into ``--out`` (its ``reproduce-workers``
section). Target (issue 12): identical numbers, at least 1.6x faster with 2 workers on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from distributed import Client

from ebatch.experiments.report.reproduce import write_outputs
from ebatch.experiments.report.sections import write_section
from ebatch.experiments.study.reproduce import run_reproduce
from ebatch.experiments.study.reproduce_config import ReproduceConfig
from ebatch.sweep import local_cluster

WAYS = ("serial", "2 workers", "2 workers, own sessions")


def _run(config: ReproduceConfig, way: str):
    if way == "serial":
        return run_reproduce(config)
    if way == "2 workers":
        return run_reproduce(config, workers=2)
    with local_cluster(2) as cluster, Client(cluster) as client:
        client.run(os.setsid)  # each worker process its own session, hence its own autogroup
        return run_reproduce(config, scheduler=cluster.scheduler_address)


def _numbers(folder: Path) -> dict:
    data = json.loads((folder / "reproduction.json").read_text())
    data.pop("timing", None)
    data.pop("command", None)
    files = {p.name: p.read_text() for p in sorted(folder.glob("*.csv"))}
    return {"json": data, "csv": files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path,
                        help="Markdown file whose 'reproduce-workers' section gets the results (docs/benchmarks.md).")
    parser.add_argument("--full", action="store_true", help="The full reproduction (default: --quick).")
    parser.add_argument("--repeats", type=int, default=2, help="Pairs of runs (serial, 2 workers).")
    args = parser.parse_args()
    config = ReproduceConfig() if args.full else ReproduceConfig.quick()
    mode = "full" if args.full else "--quick"
    walls: dict[str, list[float]] = {way: [] for way in WAYS}
    reference, identical = None, True
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for way in WAYS:
                start = time.perf_counter()
                result = _run(config, way)
                walls[way].append(time.perf_counter() - start)
                folder = Path(tmp) / f"run{repeat}-{way.replace(' ', '_').replace(',', '')}"
                write_outputs(result, folder)
                numbers = _numbers(folder)
                reference = reference or numbers
                identical = identical and numbers == reference
                print(f"repeat {repeat}, {way}: {walls[way][-1]:.1f} s, identical so far: {identical}", flush=True)
    median = {way: statistics.median(w) for way, w in walls.items()}
    lines = [
        "## reproduce on 2 workers", "",
        f"Command: `python benchmarks/bench_reproduce_workers.py --out {args.out}"
        + (" --full" if args.full else "") + f" --repeats {args.repeats}`; `ebatch reproduce` {mode} "
        "(`run_reproduce`, the experiment without figures and files), alternating the three ways of the "
        f"script's docstring on {os.cpu_count()} cores shared with other users (one-minute load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after).", "",
        "| run | " + " | ".join(f"{way} wall s" for way in WAYS) + " |", "|---|---|---|---|",
        *(f"| {i + 1} | " + " | ".join(f"{walls[way][i]:.1f}" for way in WAYS) + " |" for i in range(args.repeats)),
        "",
        "Medians: " + ", ".join(f"{way} {median[way]:.1f} s" for way in WAYS) + "; speed-up over serial: "
        + ", ".join(f"{way} **{median['serial'] / median[way]:.2f}x**" for way in WAYS[1:]) + " (target >= 1.6x). "
        f"Every run's JSON (less wall times) and CSV files identical to the first: **{'yes' if identical else 'NO'}**.",
    ]
    write_section(args.out, "reproduce-workers", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
