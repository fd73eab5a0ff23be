"""``ebatch reproduce`` serially and on 2 local dask workers, side by side: wall time and identical numbers.

    python benchmarks/bench_reproduce_workers.py --out results/bench_reproduce_workers.md [--full] [--repeats 2]

Runs alternate (serial, 2 workers, serial, 2 workers, ...) so that other load on a shared machine falls
on both; each run writes its files (JSON, CSVs, report) to a temporary folder, and every run's
``reproduction.json`` (less its wall times and command) and CSV files must equal the first serial run's.
Writes a Markdown section with every run's wall time and the speed-up of the medians to ``--out``.
Target (issue 12): identical numbers, at least 1.6x faster with 2 workers on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from ebatch.experiments.report.reproduce import write_outputs
from ebatch.experiments.study.reproduce import run_reproduce
from ebatch.experiments.study.reproduce_config import ReproduceConfig


def _numbers(folder: Path) -> dict:
    data = json.loads((folder / "reproduction.json").read_text())
    data.pop("timing", None)
    data.pop("command", None)
    files = {p.name: p.read_text() for p in sorted(folder.glob("*.csv"))}
    return {"json": data, "csv": files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="Markdown file to write the results to.")
    parser.add_argument("--full", action="store_true", help="The full reproduction (default: --quick).")
    parser.add_argument("--repeats", type=int, default=2, help="Pairs of runs (serial, 2 workers).")
    args = parser.parse_args()
    config = ReproduceConfig() if args.full else ReproduceConfig.quick()
    mode = "full" if args.full else "--quick"
    walls: dict[int, list[float]] = {0: [], 2: []}
    reference, identical = None, True
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for workers in (0, 2):
                start = time.perf_counter()
                result = run_reproduce(config, workers=workers)
                walls[workers].append(time.perf_counter() - start)
                folder = Path(tmp) / f"run{repeat}-w{workers}"
                write_outputs(result, folder)
                numbers = _numbers(folder)
                reference = reference or numbers
                identical = identical and numbers == reference
                print(f"repeat {repeat}, workers {workers}: {walls[workers][-1]:.1f} s, identical so far: {identical}",
                      flush=True)
    serial, parallel = statistics.median(walls[0]), statistics.median(walls[2])
    lines = [
        "## reproduce on 2 workers", "",
        f"Command: `python benchmarks/bench_reproduce_workers.py --out {args.out}"
        + (" --full" if args.full else "") + f" --repeats {args.repeats}`; `ebatch reproduce` {mode} "
        "(`run_reproduce`, the experiment without figures), alternating serial and 2 local dask workers "
        f"(`--workers 2`) on {os.cpu_count()} cores shared with other users (one-minute load average "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after).", "",
        "| run | serial wall s | 2 workers wall s |", "|---|---|---|",
        *(f"| {i + 1} | {s:.1f} | {p:.1f} |" for i, (s, p) in enumerate(zip(walls[0], walls[2]))), "",
        f"Median serial {serial:.1f} s, 2 workers {parallel:.1f} s: **{serial / parallel:.2f}x** (target >= 1.6x). "
        f"Every run's JSON (less wall times) and CSV files identical to the first: **{'yes' if identical else 'NO'}**.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
