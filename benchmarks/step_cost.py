"""What one step costs on this machine against what the calibrated preset says, by rows (issue 11's search
for the latency the simulator missed).

Calibrates a host preset for ``--model`` (torch backend, 1 thread: ``ebatch calibrate``), then on a worker
thread, as a server runs its steps, times one fused step of every row count 1-16 at ``--width`` columns,
``--repeats`` times each, in the thread's CPU time, counting the thread's minor page faults. For each row
count it prints the median time, the fastest against the median (what a "fastest of the repeats"
calibration sees), the preset's price against the median, and the page faults per step.

``--system-malloc`` runs the same in a subprocess with glibc's malloc left as it is
(``EBATCH_SYSTEM_MALLOC=1``, :mod:`ebatch.runtime.allocator`), side by side. Writes nothing but ``--out``
(the ``step-cost`` section of that file).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np

from ebatch.bench.runtime import bench_model
from ebatch.experiments.report.sections import write_section
from ebatch.experiments.study.calibrate import calibrate
from ebatch.hardware.host import HostCostModel, cpu_name
from ebatch.runtime.allocator import SYSTEM_MALLOC_ENV
from ebatch.runtime.engine import make_executor
from ebatch.runtime.weights import RNNWeights
from ebatch.step import BatchStep

ROWS = (1, 2, 3, 4, 6, 8, 12, 16)


def _step(rows: int, width: int) -> BatchStep:
    return BatchStep.one_per_row(0, 0, width, max(ROWS), range(rows), [0] * rows, [True] * rows, fused=True)


def measure(model_name: str, width: int, repeats: int) -> list[tuple[int, float, float, float, float]]:
    """Per row count: (rows, median s, fastest / median, priced / median, minor faults per step)."""
    model = bench_model(model_name)
    spec = calibrate(model, "torch", 1, repeats=2).spec
    prices = HostCostModel(spec, model)
    executor = make_executor(RNNWeights.random(model, seed=0), "torch", threads=1)
    x = np.random.default_rng(0).standard_normal((width, model.layers[0].input_size), dtype=np.float32)
    rows_out = []

    def run() -> None:  # on a worker thread, as the server's engine runs its steps
        for rows in ROWS:
            step, times, faults = _step(rows, width), [], []
            for _ in range(repeats + 1):  # the first is a warm-up
                executor.reset()
                for request in range(rows):
                    executor.add(request, x)
                before, begin = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt, time.thread_time()
                executor.execute(step)
                times.append(time.thread_time() - begin)
                faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
            median = float(np.median(times[1:]))
            rows_out.append((rows, median, min(times[1:]) / median, prices.cost(step).time_s / median,
                             float(np.median(faults[1:]))))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return rows_out


def table(rows_kept, rows_system=None) -> list[str]:
    head = "| rows | median ms | fastest / median | priced / median | page faults a step |"
    rule = "| ---: | ---: | ---: | ---: | ---: |"
    if rows_system:
        head += " system malloc: median ms | page faults a step |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for k, (rows, median, fastest, priced, faults) in enumerate(rows_kept):
        line = f"| {rows} | {median * 1e3:.1f} | {fastest:.2f} | **{priced:.2f}** | {faults:.0f} |"
        if rows_system:
            line += f" {rows_system[k][1] * 1e3:.1f} | {rows_system[k][4]:.0f} |"
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lstm-2x512")
    parser.add_argument("--width", type=int, default=1000, help="columns of each step")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each step (median kept)")
    parser.add_argument("--system-malloc", action="store_true", help="also run with glibc's malloc as it is")
    parser.add_argument("--rows-json", action="store_true", help=argparse.SUPPRESS)  # the subprocess's output
    parser.add_argument("--out", help="write the step-cost section of this markdown file")
    args = parser.parse_args()
    kept = measure(args.model, args.width, args.repeats)
    if args.rows_json:
        print(json.dumps(kept))
        return
    system = None
    if args.system_malloc:
        command = [sys.executable, __file__, "--model", args.model, "--width", str(args.width), "--repeats",
                   str(args.repeats), "--rows-json"]
        output = subprocess.run(command, env=os.environ | {SYSTEM_MALLOC_ENV: "1"}, capture_output=True,
                                text=True, check=True).stdout
        system = json.loads(output.strip().splitlines()[-1])
    argv = " ".join(["python benchmarks/step_cost.py", *sys.argv[1:]])
    lines = ["## One step, measured and priced (generated)", "",
             f"`{argv}` on {cpu_name()}, {datetime.date.today().isoformat()}: {args.model}, one fused step of "
             f"layer 0 at {args.width} columns on a worker thread, {args.repeats} timed runs each (thread CPU "
             "time), priced by a preset calibrated just before.", "", *table(kept, system)]
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_section(args.out, "step-cost", text)


if __name__ == "__main__":
    main()
