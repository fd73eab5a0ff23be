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
layer), which says which steps the preset misprices. ``--rates`` replays more rates on the same seed and
tabulates the p99, served and simulated, against the rate: whether the SLO's pass set is an interval, which
the max-rate search assumes. ``--live N`` also plays the ``--rate`` schedule N times through ``ebatch serve``
in a subprocess over HTTP, as the capacity benchmark plays a probe, and N times in-process, alternately:
whether the server process is slower than its engine alone. Writes nothing but ``--out`` (its
``--section``, ``replay`` by default).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from capacity import (
    MAX_QUEUED_CELLS,
    MAX_QUEUED_REQUESTS,
    SLO_S,
    TIMEOUT_PER_SLO,
    WARM_UP_BURSTS,
    WORKLOAD,
    probe_bounds,
    serve_options,
    warm_up,
    warm_up_lengths,
    with_batch,
)

from ebatch import policies
from ebatch.bench.loadgen import run_load
from ebatch.bench.runtime import bench_model
from ebatch.bench.schedule import Schedule, make_schedule
from ebatch.bench.server_process import ServerProcess
from ebatch.experiments.report.sections import write_section
from ebatch.experiments.study.calibrate import calibrate
from ebatch.experiments.study.compare import parse_policy
from ebatch.hardware.host import HostCostModel, cpu_name, load_host_preset
from ebatch.serve.service import ModelService, ServeConfig
from ebatch.sim.engine import Simulator
from ebatch.sim.results import SimulationResult
from ebatch.step import LAYOUTS_KEPT, BatchStep, RecentLayouts
from ebatch.workload import Workload

MIN_GROUP_S = 0.05  # step shapes whose measured time sums to less are left out of the table
#: --live waits this many SLOs for an answer: a client that gives up makes the server cancel the request and
#: cut its work short, and the in-process engine (no timeout) would then do more work than the server
LIVE_TIMEOUT_SLOS = 6.0


class StepRecorder:
    """The online engine's step listener: every step and its wall seconds."""

    def __init__(self) -> None:
        self.steps: list[tuple[BatchStep, float]] = []
        self.lock = threading.Lock()

    def on_step(self, step: BatchStep, seconds: float) -> None:
        with self.lock:
            self.steps.append((step, seconds))


@dataclass
class Served:
    """``schedule`` played in real time through the online engine in this process."""

    latency_s: np.ndarray  # each request's, from its scheduled send
    steps: list[tuple[BatchStep, float]]  # each with its wall seconds
    between_s: float  # the engine's seconds between steps (admitting, the policy's choice, answering)
    step_cpu_s: float  # the CPU seconds of the engine's thread in steps

    @property
    def p99_s(self) -> float:
        return float(np.nanpercentile(self.latency_s, 99))

    @property
    def answered(self) -> int:
        return int(np.isfinite(self.latency_s).sum())


def served(model, policy: str, params: dict, schedule) -> Served:
    """``schedule`` served in-process, after the capacity benchmark's warm-up."""
    recorder = StepRecorder()
    config = ServeConfig(model=model.name, policy=policy, policy_params=params, batch_size=params["batch_size"],
                         backend="torch", threads=1, max_queued_requests=MAX_QUEUED_REQUESTS,
                         max_queued_cells=MAX_QUEUED_CELLS)
    service = ModelService(config, listener=recorder)
    rng = np.random.default_rng(0)

    def sequences(lengths) -> list[np.ndarray]:
        return [rng.standard_normal((int(n), model.layers[0].input_size), dtype=np.float32) for n in lengths]

    inputs = sequences(schedule.lengths)
    for _ in range(WARM_UP_BURSTS):  # the capacity benchmark's warm-up: the heap at its peak
        for future in [service.engine.submit(x) for x in sequences(warm_up_lengths(params["batch_size"]))]:
            future.result()
    recorder.steps.clear()
    between_s, step_cpu_s = service.engine.schedule_s, service.engine.step_cpu_s
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
    step_cpu_s = service.engine.step_cpu_s - step_cpu_s
    service.close()
    return Served(answered - (start + schedule.send_s), recorder.steps, between_s, step_cpu_s)


@dataclass
class Replay:
    """One schedule served in-process and simulated."""

    rate_rps: float
    schedule: Schedule
    served: Served
    priced_steps_s: np.ndarray  # the preset's price of each served step, in order
    simulated: SimulationResult  # plan kept

    @property
    def measured_s(self) -> float:
        """The served steps' wall seconds."""
        return sum(seconds for _, seconds in self.served.steps)

    @property
    def priced_s(self) -> float:
        return float(self.priced_steps_s.sum())

    @property
    def priced_ratio(self) -> float:
        """The preset's price of the served steps over their time with what lies between them."""
        return self.priced_s / (self.measured_s + self.served.between_s)

    @property
    def simulated_latency_s(self) -> np.ndarray:
        return self.simulated.finish_s - self.schedule.send_s

    @property
    def simulated_p99_s(self) -> float:
        return float(np.percentile(self.simulated_latency_s, 99))


def replay(model, name: str, params: dict, prices: HostCostModel, args, rate_rps: float) -> Replay:
    """The capacity benchmark's schedule at ``rate_rps``, served in-process and simulated."""
    schedule = make_schedule(WORKLOAD, args.arrival, rate_rps,
                             **probe_bounds(SLO_S[args.model], args.probe_slos, args.arrival, args.seed))
    played = served(model, name, params, schedule)
    prices.reset()
    simulated = Simulator(model, Workload.from_lengths(schedule.lengths, schedule.send_s),
                          policies.get(name, **params), prices, cut_runs=False, keep_plan=True).run().result()
    prices.reset()
    priced_steps_s = np.array([prices.cost(step).time_s for step, _ in played.steps])
    return Replay(rate_rps, schedule, played, priced_steps_s, simulated)


@dataclass(frozen=True)
class Round:
    """One play of a schedule: by the server process over HTTP or by the engine in-process."""

    served_by: str
    p99_s: float
    answered: int
    step_cpu_s: float  # the engine thread's CPU seconds in steps


def server_and_engine(model, name: str, params: dict, schedule: Schedule, rounds: int) -> list[Round]:
    """``schedule`` played ``rounds`` times by ``ebatch serve`` in a subprocess over HTTP, as the capacity
    benchmark plays a probe (its server options, warm-up and load generator), and as many times in-process,
    alternately, so that both meet the machine at about the same speed: is the server process slower than
    its engine alone?"""
    slo_s = SLO_S[model.name]
    plays = []
    with ServerProcess(model.name, serve_options(name, params)) as server:
        warm_up(server, slo_s)
        for _ in range(rounds):
            before = server.engine_time()
            result = run_load(schedule, server.url, server.name, slo_s, LIVE_TIMEOUT_SLOS * slo_s, 0).result
            plays.append(Round("server process", result.p99_s, result.ok, server.engine_time().cpu_s - before.cpu_s))
            engine = served(model, name, params, schedule)
            plays.append(Round("in-process", engine.p99_s, engine.answered, engine.step_cpu_s))
    return plays


def rounds_table(plays: list[Round], requests: int) -> list[str]:
    lines = ["| round | served by | p99 | answered | steps' CPU s |", "| ---: | --- | ---: | ---: | ---: |"]
    for i, play in enumerate(plays):
        lines.append(f"| {i // 2 + 1} | {play.served_by} | {play.p99_s:.2f} s | {play.answered}/{requests} | "
                     f"{play.step_cpu_s:.2f} |")

    def median(served_by: str, field: str) -> float:
        return float(np.median([getattr(p, field) for p in plays if p.served_by == served_by]))

    server_p99, engine_p99 = median("server process", "p99_s"), median("in-process", "p99_s")
    server_cpu, engine_cpu = median("server process", "step_cpu_s"), median("in-process", "step_cpu_s")
    return lines + ["", f"Median p99: server process {server_p99:.2f} s, in-process {engine_p99:.2f} s "
                    f"({server_p99 / engine_p99:.2f}x); steps' CPU seconds {server_cpu:.2f} against {engine_cpu:.2f} "
                    f"({server_cpu / engine_cpu:.2f}x)."]


def requests_a_column(steps: list[BatchStep]) -> float:
    return float(np.average([s.seg_row.size for s in steps], weights=[s.width for s in steps]))


def new_layouts(steps: list[BatchStep]) -> int:
    """How many of ``steps`` had a layout that was not among the last :data:`LAYOUTS_KEPT` (the executor built
    their plan)."""
    recent = RecentLayouts()
    return sum(recent.fetch(step)[1] for step in steps)


def describe(steps: list[BatchStep]) -> str:
    columns = sum(s.width for s in steps)
    return (f"{len(steps)} steps, {columns} columns, {requests_a_column(steps):.2f} requests a column, "
            f"{new_layouts(steps) / len(steps):.0%} with a new layout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="lstm-2x512", choices=sorted(SLO_S))
    parser.add_argument("--policy", default="cellular:priority=most-ready", help="NAME[:KEY=VALUE...] as for "
                        "ebatch serve (B=16 unless given)")
    parser.add_argument("--rate", type=float, default=2.57, help="requests/s")
    parser.add_argument("--rates", default="", help="more req/s to replay on the same seed, comma-separated: "
                        "a table of the p99 against the rate")
    parser.add_argument("--arrival", default="gamma", choices=("poisson", "gamma"))
    parser.add_argument("--probe-slos", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live", type=int, default=0, metavar="N", help="also play the --rate schedule N times "
                        "through ebatch serve in a subprocess over HTTP and N times in-process, alternately")
    parser.add_argument("--hardware", type=Path, help="a host preset (default: calibrate one now)")
    parser.add_argument("--out", type=Path, help="Markdown file whose --section to (re)write")
    parser.add_argument("--section", default="replay", help="the section of --out (default: replay)")
    args = parser.parse_args()
    name, params = parse_policy(args.policy, "replay")
    params = with_batch(params)
    try:
        rates = [args.rate] + [float(r) for r in args.rates.split(",") if r]
    except ValueError:
        parser.error(f"--rates: comma-separated requests/s, e.g. 3,6,12; got {args.rates!r}")
    if args.live < 0:
        parser.error(f"--live: the number of rounds must be >= 0, got {args.live}")
    if min(rates) <= 0:
        parser.error(f"--rate/--rates: every rate must be > 0 requests/s, got {min(rates):g}")
    import torch

    torch.set_num_threads(1)
    model = bench_model(args.model)
    spec = load_host_preset(args.hardware) if args.hardware else calibrate(model, "torch", 1, 2).spec
    prices = HostCostModel(spec, model)
    slo_s = SLO_S[args.model]
    replays = [replay(model, name, params, prices, args, rate) for rate in rates]
    first = replays[0]
    measured_s = first.measured_s
    command = " ".join(["python benchmarks/replay_probe.py", *sys.argv[1:]])
    lines = [f"## One probe replayed: {args.model}, {args.policy} (generated)", "",
             f"`{command}` on {cpu_name()}, {datetime.date.today().isoformat()}: {args.model}, {args.policy}, "
             f"{args.arrival} at {args.rate:g} req/s for {args.probe_slos:g} x SLO ({len(first.schedule)} requests), "
             "served in-process and simulated.", "",
             f"- Latency, served: p99 {first.served.p99_s:.2f} s, max {np.nanmax(first.served.latency_s):.2f} s; "
             f"simulated: p99 {first.simulated_p99_s:.2f} s, max {first.simulated_latency_s.max():.2f} s "
             f"(timeout {TIMEOUT_PER_SLO * slo_s:g} s).",
             f"- Steps, served: {describe([s for s, _ in first.served.steps])}; simulated: "
             f"{describe([s for _, s in first.simulated.plan])} (a new layout: not among the last {LAYOUTS_KEPT}, "
             "so the executor builds its plan).",
             f"- The served steps took {measured_s:.2f} s (wall) and the engine {first.served.between_s:.2f} s between "
             "them (admitting, the policy's choice of the next step, answering: calibration times a step from the "
             "end of the one before, so the preset's price includes this); the preset prices the same steps at "
             f"{first.priced_s:.2f} s (**{first.priced_ratio:.2f}x** their time with "
             f"what lies between them, {first.priced_s / measured_s:.2f}x without); the simulated steps were busy "
             f"{first.simulated.summary()['busy_s']:.2f} s.", "",
             "| requests | kind | layer | steps | columns | measured s (steps only) | priced / measured "
             "| measured us a column |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    groups = collections.defaultdict(lambda: np.zeros(4))
    for (step, seconds), priced_s in zip(first.served.steps, first.priced_steps_s):
        groups[(step.seg_row.size, step.fused, step.layer)] += (1, step.width, seconds, priced_s)
    for (rows, fused, layer), (count, columns, seconds, priced) in sorted(groups.items()):
        if seconds >= MIN_GROUP_S:
            lines.append(f"| {rows} | {'fused' if fused else 'run'} | {layer} | {count:.0f} | {columns:.0f} | "
                         f"{seconds:.2f} | {priced / seconds:.2f} | {seconds / columns * 1e6:.0f} |")
    if len(replays) > 1:
        lines += ["", f"**p99 against the rate** (seed {args.seed}, SLO {slo_s:g} s; priced / measured: the preset's "
                  "price of the served steps over their time with what lies between them):", "",
                  "| req/s | requests | p99 served | p99 simulated | simulated / served | SLO met: served, "
                  "simulated | requests a column, served | priced / measured |",
                  "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
        for r in sorted(replays, key=lambda r: r.rate_rps):
            lines.append(f"| {r.rate_rps:g} | {len(r.schedule)} | {r.served.p99_s:.2f} s | {r.simulated_p99_s:.2f} s | "
                         f"{r.simulated_p99_s / r.served.p99_s:.2f} | "
                         f"{'yes' if r.served.p99_s <= slo_s else 'no'}, "
                         f"{'yes' if r.simulated_p99_s <= slo_s else 'no'} | "
                         f"{requests_a_column([s for s, _ in r.served.steps]):.2f} | "
                         f"{r.priced_ratio:.2f} |")
    if args.live:
        plays = server_and_engine(model, name, params, first.schedule, args.live)
        lines += ["", f"**The server process against its engine alone** (the {args.rate:g} req/s schedule played "
                  f"{args.live} times by `ebatch serve` in a subprocess over HTTP, as the capacity benchmark plays a "
                  f"probe but waiting up to {LIVE_TIMEOUT_SLOS:g} x SLO for an answer, and as many times in-process, "
                  "alternately; steps' CPU s: the engine thread's CPU seconds in steps):", "",
                  *rounds_table(plays, len(first.schedule))]
    text = "\n".join(lines)
    if args.out:
        write_section(args.out, args.section, text, title="# Serving capacity")
    print(text)


if __name__ == "__main__":
    main()
