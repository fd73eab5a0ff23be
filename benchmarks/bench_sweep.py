"""Sweep scale: a 10,000-run spec of tiny runs on a dask LocalCluster, wall time and the client's peak memory.

The spec: tiny-lstm and tiny-gru x epur and tpu-v1 x 5 seeds of 4 WMT22 sentences x E-BATCH with
T = 1..10, B = 1..5 and 10 weight-buffer sizes (10,000 runs); a 1,000-run spec takes the first seed and
5 buffer sizes. Each size runs in a fresh child process into a fresh folder, so its peak resident memory
(``ru_maxrss``, which includes the scheduler, since a LocalCluster's scheduler lives in the client process)
is its own; with ``--serial`` the 1,000-run spec also runs serially in one process, for the speed-up.
Besides wall time it reports when the first chunk finished (cluster start-up), the share of workers x wall
time spent simulating, the simulations' CPU time per run and the client's CPU time: on a shared machine
those say whether the sweep or the machine's other load set the pace.
Bounded memory shows as the same peak for 1,000 and 10,000 runs: results go to Parquet as chunks finish,
and at most 4 chunks per worker are in flight.

Usage::

    python benchmarks/bench_sweep.py --out results/bench_sweep.json           # 1,000 and 10,000 runs
    python benchmarks/bench_sweep.py --sizes 1000 --workers 2 --serial --out x.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["document", "main", "measure"]

BUFFERS_BYTES = [2 ** k for k in range(10, 20)]


def document(runs: int) -> dict:
    """The spec of 1,000 or 10,000 runs (see the module docstring)."""
    if runs not in (1000, 10000):
        raise ValueError(f"runs: 1000 or 10000, got {runs}")
    large = runs == 10000
    return {
        "model": ["tiny-lstm", "tiny-gru"],
        "hardware": ["epur", "tpu-v1"],
        "workload": {"dataset": "wmt22-en-de", "requests": 4, "seed": list(range(5)) if large else 0},
        "policies": ["ebatch"],
        "grid": {
            "timesteps": list(range(1, 11)),
            "batch_size": list(range(1, 6)),
            "hardware.weight_buffer_bytes": BUFFERS_BYTES if large else BUFFERS_BYTES[:5],
        },
    }


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(runs: int, workers: int) -> dict:
    """Run the spec of ``runs`` into a temporary folder (in this process); wall time, memory, rows."""
    import pandas as pd

    from ebatch.sweep import parse_spec
    from ebatch.sweep.run import run_sweep

    base_rss = _rss_bytes()
    cpu_before_s = _cpu_s()
    first_chunk_s: list[float] = []

    def progress(done: int, total: int) -> None:
        if done and not first_chunk_s:
            first_chunk_s.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        report = run_sweep(parse_spec(document(runs), "bench"), folder, workers=workers, progress=progress)
        wall_s = time.perf_counter() - t0
        peak_rss = _rss_bytes()
        client_cpu_s = _cpu_s() - cpu_before_s
        parts = len(list(report.results.glob("part-*.parquet")))
        table = pd.read_parquet(report.results)
    return {"runs": runs, "workers": workers, "wall_s": wall_s, "runs_per_s": runs / wall_s, "parts": parts,
            "rows": len(table), "first_chunk_s": first_chunk_s[0], "sim_wall_s_total": float(table["sim_wall_s"].sum()),
            "sim_cpu_s_total": float(table["sim_cpu_s"].sum()),
            "client_cpu_s": client_cpu_s, "client_rss_before_bytes": base_rss, "client_peak_rss_bytes": peak_rss}


def _child(runs: int, workers: int) -> dict:
    command = [sys.executable, __file__, "--child", str(runs), "--workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {runs} runs failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="Comma-separated run counts (1000, 10000).")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers.")
    parser.add_argument("--serial", action="store_true", help="Also run 1,000 runs serially (workers=0).")
    parser.add_argument("--out", type=Path, help="Write the measurements here as JSON.")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.workers)))
        return 0
    cases = [(int(s), args.workers) for s in args.sizes.split(",")] + ([(1000, 0)] if args.serial else [])
    rows = []
    for runs, workers in cases:
        row = _child(runs, workers)
        rows.append(row)
        busy = row["sim_wall_s_total"] / (row["wall_s"] * max(1, workers))
        print(f"{runs:>6} runs, {workers} workers: {row['wall_s']:.1f} s ({row['runs_per_s']:.0f} runs/s; first chunk "
              f"after {row['first_chunk_s']:.1f} s; simulating {100 * busy:.0f} % of workers x wall; "
              f"{1e3 * row['sim_cpu_s_total'] / runs:.1f} ms CPU per run), "
              f"{row['parts']} parts, client CPU {row['client_cpu_s']:.1f} s, "
              f"peak RSS {row['client_peak_rss_bytes'] / 2**20:.0f} MiB "
              f"(after imports {row['client_rss_before_bytes'] / 2**20:.0f} MiB), "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        machine = f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": machine, "rows": rows},
                                       indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
