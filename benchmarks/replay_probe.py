"""One max-rate probe replayed in-process against the simulator, step by step (issue 11's search for what
the simulator misses under load).

Calibrates a host preset for ``--model`` (torch backend, 1 thread, ``ebatch calibrate``; or reads
``--hardware PRESET.yaml``), draws the capacity benchmark's schedule for ``--policy`` at ``--rate``
(``--arrival``, ``--probe-slos`` x the model's SLO, seed ``--seed``), and plays it in real time through
``ebatch serve``'s online engine in this process (no HTTP: the request's input goes straight to
``OnlineEngine.submit``), recording every step and its wall time. The same schedule is then simulated as
``benchmarks/capacity.py`` simulates a probe (steps run whole). It prints the latencies of both; the
steps each made (count, columns, mean rows a column); the served steps' measured time against the
preset's price of those very steps; and that comparison by step shape (rows, fused or a non-fused run,
layer), which says which steps the preset misprices. Writes nothing but ``--out`` (the ``replay``
section of that file).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import sys
import threading
import time
from pathlib import Path

import numpy as np
from capacity import SLO_S, TIMEOUT_PER_SLO, WORKLOAD, with_batch

from ebatch import policies
from ebatch.bench.runtime import bench_model
from ebatch.bench.schedule import make_schedule
from ebatch.experiments.report.sections import write_section
from ebatch.experiments.study.calibrate import calibrate
from ebatch.experiments.study.compare import parse_policy
from ebatch.hardware.host import HostCostModel, cpu_name, load_host_preset
from ebatch.serve.service import ModelService, ServeConfig
from ebatch.sim.engine import Simulator
from ebatch.step import BatchStep
from ebatch.workload import Workload

MIN_GROUP_S = 0.05  # step shapes whose measured time sums to less are left out of the table


class StepRecorder:
    """The online engine's step listener: every step and its wall seconds."""

    def __init__(self) -> None:
        self.steps: list[tuple[BatchStep, float]] = []
        self.lock = threading.Lock()

    def on_step(self, step: BatchStep, seconds: float) -> None:
        with self.lock:
            self.steps.append((step, seconds))


def served(model, policy: str, params: dict, schedule) -> tuple[np.ndarray, list[tuple[BatchStep, float]], float]:
    """Each request's latency from its scheduled send, the steps, and the engine's seconds between steps
    (admitting, the policy's choice of the next step, answering), with ``schedule`` played in real time."""
    recorder = StepRecorder()
    config = ServeConfig(model=model.name, policy=policy, policy_params=params, batch_size=params["batch_size"],
                         backend="torch", threads=1, max_queued_requests=10**6, max_queued_cells=10**9)
    service = ModelService(config, listener=recorder)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((int(n), model.layers[0].input_size), dtype=np.float32) for n in schedule.lengths]
    service.engine.submit(inputs[int(np.argmax(schedule.lengths))]).result()  # warm-up: the heap at its peak
    recorder.steps.clear()
    between_s = service.engine.schedule_s
    answered = np.full(len(schedule), np.nan)
    start = time.monotonic() + 0.1
    futures = []
    for i, (send_s, x) in enumerate(zip(schedule.send_s, inputs)):
        while (wait_s := start + send_s - time.monotonic()) > 0:
            time.sleep(min(wait_s, 0.002))
        future = service.engine.submit(x)
        future.add_done_callback(lambda _, i=i: answered.__setitem__(i, time.monotonic()))
        futures.append(future)
    for future in futures:
        future.result()
    between_s = service.engine.schedule_s - between_s
    service.close()
    return answered - (start + schedule.send_s), recorder.steps, between_s


def describe(steps: list[BatchStep]) -> str:
    widths = np.array([s.width for s in steps])
    rows = np.array([s.seg_row.size for s in steps])
    return (f"{len(steps)} steps, {widths.sum()} columns, {np.average(rows, weights=widths):.2f} requests a "
            "column")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lstm-2x512", choices=sorted(SLO_S))
    parser.add_argument("--policy", default="cellular:priority=most-ready", help="NAME[:KEY=VALUE...] as for "
                        "ebatch serve (B=16 unless given)")
    parser.add_argument("--rate", type=float, default=2.57, help="requests/s")
    parser.add_argument("--arrival", default="gamma", choices=("poisson", "gamma"))
    parser.add_argument("--probe-slos", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hardware", type=Path, help="a host preset (default: calibrate one now)")
    parser.add_argument("--out", type=Path, help="Markdown file whose 'replay' section to (re)write")
    args = parser.parse_args()
    name, params = parse_policy(args.policy, "replay")
    params = with_batch(params)
    import torch

    torch.set_num_threads(1)
    model = bench_model(args.model)
    spec = load_host_preset(args.hardware) if args.hardware else calibrate(model, "torch", 1, 2).spec
    slo_s = SLO_S[args.model]
    cv = 1.0 if args.arrival == "poisson" else 2.0
    schedule = make_schedule(WORKLOAD, args.arrival, args.rate, 400, args.probe_slos * slo_s, cv, args.seed)
    latency_s, steps, between_s = served(model, name, params, schedule)
    prices = HostCostModel(spec, model)
    simulated = Simulator(model, Workload.from_lengths(schedule.lengths, schedule.send_s),
                          policies.get(name, **params), prices, cut_runs=False, keep_plan=True).run().result()
    simulated_s = simulated.finish_s - schedule.send_s
    measured_s = sum(seconds for _, seconds in steps)
    priced_s = sum(prices.cost(step).time_s for step, _ in steps)
    command = " ".join(["python benchmarks/replay_probe.py", *sys.argv[1:]])
    lines = ["## One probe replayed (generated)", "",
             f"`{command}` on {cpu_name()}, {datetime.date.today().isoformat()}: {args.model}, {args.policy}, "
             f"{args.arrival} at {args.rate:g} req/s for {args.probe_slos:g} x SLO ({len(schedule)} requests), "
             "served in-process and simulated.", "",
             f"- Latency, served: p99 {np.nanpercentile(latency_s, 99):.2f} s, max {np.nanmax(latency_s):.2f} s; "
             f"simulated: p99 {np.percentile(simulated_s, 99):.2f} s, max {simulated_s.max():.2f} s "
             f"(timeout {TIMEOUT_PER_SLO * slo_s:g} s).",
             f"- Steps, served: {describe([s for s, _ in steps])}; simulated: "
             f"{describe([s for _, s in simulated.plan])}.",
             f"- The served steps took {measured_s:.2f} s (wall) and the engine {between_s:.2f} s between them "
             "(admitting, the policy's choice of the next step, answering: calibration times a step from the "
             "end of the one before, so the preset's price includes this); the preset prices the same steps at "
             f"{priced_s:.2f} s (**{priced_s / (measured_s + between_s):.2f}x** their time with what lies "
             f"between them, {priced_s / measured_s:.2f}x without); the simulated steps were busy "
             f"{simulated.summary()['busy_s']:.2f} s.", "",
             "| requests | kind | layer | steps | columns | measured s (steps only) | priced / measured "
             "| measured us a column |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    groups = collections.defaultdict(lambda: np.zeros(4))
    for step, seconds in steps:
        groups[(step.seg_row.size, step.fused, step.layer)] += (1, step.width, seconds, prices.cost(step).time_s)
    for (rows, fused, layer), (count, columns, seconds, priced) in sorted(groups.items()):
        if seconds >= MIN_GROUP_S:
            lines.append(f"| {rows} | {'fused' if fused else 'run'} | {layer} | {count:.0f} | {columns:.0f} | "
                         f"{seconds:.2f} | {priced / seconds:.2f} | {seconds / columns * 1e6:.0f} |")
    text = "\n".join(lines)
    if args.out:
        write_section(args.out, "replay", text, title="# Serving capacity")
    print(text)


if __name__ == "__main__":
    main()
