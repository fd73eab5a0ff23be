"""Capacity benchmark (issue 11): the highest request rate each batching policy serves at a p99 SLO, measured
with ``ebatch loadgen``'s search against ``ebatch serve`` on 127.0.0.1, next to the simulator's prediction
from a host preset calibrated on this machine minutes before; prints a markdown section and, with ``--out``,
writes it as the ``capacity`` section of that file.

Per served model (torch backend, 1 thread, B=16, LibriSpeech test-clean lengths, random weights seed 0):

1. **Calibrate**: ``ebatch calibrate``'s measurement and fit (kept in memory, printed in the page).
2. **Predicted against measured throughput** (the 15 % check): every policy offline on the ``ebatch bench``
   workload (:mod:`ebatch.bench.throughput_check`); with ``--full``, gru-2x512 too (its own calibration).
3. **Server overhead**: an idle server, sequential requests; client latency minus the server's queue +
   compute (the per-request constant the prediction adds).
4. **Max rate at the SLO** (the 20 % check), per policy and arrival process: a server subprocess per policy;
   :func:`~ebatch.bench.maxrate.find_max_rate` with real probes (bounded: requests sent within
   ``--probe-slos x SLO`` seconds, each answered within ``TIMEOUT_PER_SLO x SLO``, at most
   ``--max-probes`` probes, starting from the simulated prediction, bisecting to ``TOLERANCE``); the share of
   a core the server's steps got during each probe, from its metrics (:mod:`ebatch.bench.server_process`);
   then the same search simulated
   (:mod:`ebatch.bench.predict`) with that share and overhead, on the same schedules; and again at
   :data:`SPEED_STUDY` x the speed, which says whether the answer can be checked to 20 % at all.

Bounded: ``--quick`` (lstm-2x512, Poisson, three policies, four probes each) runs in a few minutes; the
default runs both models, both arrival processes and six policies. Writes nothing but ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ebatch import policies
from ebatch.bench.loadgen import LoadResult, run_load
from ebatch.bench.maxrate import find_max_rate
from ebatch.bench.predict import ServerModel, simulate_load, simulated_load, simulated_max_rate
from ebatch.bench.runtime import bench_model
from ebatch.bench.schedule import Schedule, make_schedule
from ebatch.bench.server_process import ServerProcess, core_share
from ebatch.bench.throughput_check import check_throughput
from ebatch.experiments.report.sections import write_section
from ebatch.experiments.study.calibrate import calibrate, measure_steps
from ebatch.hardware.host import HostCostModel, HostSpec, cpu_name, host_preset_text
from ebatch.runtime.weights import RNNWeights
from ebatch.sim.engine import Simulator
from ebatch.workload import Workload

WORKLOAD = "librispeech-test-clean"
BATCH_SIZE = 16
#: the p99 SLO per model, and why (see the page)
SLO_S = {"lstm-2x512": 4.0, "eesen": 10.0}
PROBE_SLOS = 3.0  # a probe sends for 3 x SLO seconds by default (--probe-slos; why: --probe-study, the page)
PROBE_STUDY_SLOS = (1.5, 3.0, 6.0)  # the probe lengths --probe-study compares
PROBE_STUDY_SEEDS = 5  # ... each on this many schedules
GAUGE_ROWS, GAUGE_COLUMNS, GAUGE_REPEATS = 8, 256, 7  # SpeedGauge's reference step
JITTER_S, JITTER_DRAWS = 0.010, 5  # --timing-study: each send delayed by up to 10 ms, on 5 draws
#: --speed-study: the machine 5 % slower and faster than the preset says. Why 5 %: one probe's schedule played
#: minutes apart took up to 6 % more or less CPU time in steps (the eesen replay's --live table), and the gauge's
#: reading and the steps' speed differed by up to 7 % (the generated table)
SPEED_STUDY = (0.95, 1.05)
SLOW_FAST, SPEED_ERROR = f"{SPEED_STUDY[0]:g}x, {SPEED_STUDY[1]:g}x", f"{1 - SPEED_STUDY[0]:.0%}".replace("%", " %")
STUDY_RATE_STEP = 0.85  # the elasticity compares the p99 at the answer with the p99 at 0.85 x the answer
TIMEOUT_PER_SLO = 1.1  # a request unanswered after 1.1 x SLO has failed it anyway
MAX_PROBE_REQUESTS = 400
GROWTH = 1.25  # the search's bracketing factor: it starts near the prediction
START_FRACTION = 0.8  # ... a little under it, so that the first probe more likely passes
TOLERANCE = 0.06  # the measured search bisects until the bracket is this narrow (or runs out of probes)
FIXED_T = (16, 32, 64, 128)  # E-BATCH's fixed window: the simulator picks the best for each model
ARRIVALS = {"poisson": 1.0, "gamma": 2.0}  # arrival process: coefficient of variation of the gaps


@dataclass(frozen=True)
class CapacityRow:
    """One policy and arrival process: the measured search, its prediction, and the server's conditions."""

    model: str
    label: str
    arrival: str
    measured_rps: float
    failed_above_rps: float | None
    probes: int
    probes_agreeing: int
    predicted_rps: float
    predicted_calibrated_speed_rps: float  # ... the same at the speed the machine had when calibrated
    predicted_steps_speed_rps: float  # ... and at the steps' speed (see search)
    cpu_share: float
    speed: float  # the machine's speed during the deciding probes against at calibration (SpeedGauge)
    steps_speed: float  # the simulated steps' busy time at calibration over the server's step CPU time
    search_s: float
    p99_at_max_s: float = float("nan")  # the highest passing probe's p99: measured, ...
    p99_rerun_s: float = float("nan")  # ... measured again on the same schedule right after the search, ...
    p99_simulated_s: float = float("nan")  # ... and simulated (at that probe's share)
    #: the prediction at SPEED_STUDY x the speed: an answer that moves by more than 20 % there is ill-conditioned
    predicted_slow_fast_rps: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def well_conditioned(self) -> bool:
        """Whether the prediction moves by at most 20 % when the speed is off by :data:`SPEED_STUDY`."""
        return well_conditioned(self.predicted_rps, self.predicted_slow_fast_rps)


def well_conditioned(answer_rps: float, moved_rps) -> bool:
    """Whether an answer is known (> 0) and each of ``moved_rps`` (the same at another speed) is within 20 % of it."""
    return answer_rps > 0 and all(abs(r / answer_rps - 1) <= 0.2 for r in moved_rps)


def configs(slo_s: float, fixed_t: int, quick: bool) -> list[tuple[str, str, dict]]:
    """(label, policy, parameters) of the policies the issue names; B is added by the caller."""
    rows = [(f"E-BATCH T={fixed_t}", "ebatch", {"timesteps": fixed_t}),
            ("E-BATCH T=auto", "ebatch", {"timesteps": "auto", "latency_slo_s": slo_s}),
            ("padding, max_wait 10 ms", "padding", {"max_wait_s": 0.01}),
            ("sorted padding (window 4B), max_wait 10 ms", "padding",
             {"max_wait_s": 0.01, "sort_window": 4 * BATCH_SIZE}),
            ("cellular most-ready", "cellular", {"priority": "most-ready"}),
            ("cellular oldest", "cellular", {"priority": "oldest"})]
    return [rows[0], rows[2], rows[5]] if quick else rows


def policy_option(policy: str, params: dict) -> str:
    """``--policy`` for ``ebatch serve``: NAME:KEY=VALUE..."""
    return ":".join([policy] + [f"{k}={v}" for k, v in params.items()])


#: a probed server's queue limits: high enough that every request is admitted, so the p99 and not a 429
#: says whether a rate is served
MAX_QUEUED_REQUESTS, MAX_QUEUED_CELLS = 10**6, 10**9


def serve_options(policy: str, params: dict) -> list[str]:
    """``ebatch serve``'s options for a probed server: the policy at B=16, the queue limits above."""
    return ["--policy", policy_option(policy, with_batch(params)), "--batch-size", str(BATCH_SIZE),
            "--max-queued-requests", str(MAX_QUEUED_REQUESTS), "--max-queued-cells", str(MAX_QUEUED_CELLS)]


def with_batch(params: dict) -> dict:
    return {"batch_size": BATCH_SIZE} | params


class SpeedGauge:
    """How fast the machine runs now against right after calibration: ``ebatch calibrate``'s grid step of
    ``GAUGE_ROWS`` rows x ``GAUGE_COLUMNS`` columns (every layer), timed in this process's thread CPU time,
    median of ``GAUGE_REPEATS``. A virtual machine's core slows down and speeds up with other tenants' load,
    which the share of a core (CPU over wall time) does not see: a slower core takes more CPU time too."""

    def __init__(self, model) -> None:
        self.model = model
        self.calibrated_s = self.time_s()

    def time_s(self) -> float:
        return sum(t.time_s for t in measure_steps(self.model, "torch", 1, rows=(GAUGE_ROWS,), columns=(GAUGE_COLUMNS,),
                                                   repeats=GAUGE_REPEATS, policy_requests=0))

    def speed(self) -> float:
        """> 1: faster now than at calibration."""
        return self.calibrated_s / self.time_s()


def calibrated(model, repeats: int) -> tuple[HostSpec, float, float]:
    """The fitted spec, the fit's relative RMS error, and this thread's share of a core while calibrating."""
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    result = calibrate(model, "torch", 1, repeats)
    share = (time.thread_time() - cpu_start) / (time.perf_counter() - wall_start)
    return result.spec, result.rel_rms_error, min(1.0, share)


def request_overhead_s(server: ServerProcess, length: int, input_size: int, repeats: int = 5) -> float:
    """Median of client latency minus the server's queue + compute over sequential requests (after one warm-up)."""
    import httpx

    from ebatch.serve.codec import NPY, encode_npy

    body = encode_npy(np.random.default_rng(0).standard_normal((length, input_size), dtype=np.float32))
    added = []
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for i in range(repeats + 1):
            begin = time.perf_counter()
            response = client.post(f"/v1/models/{server.name}/infer", params={"outputs": "last"}, content=body,
                                   headers={"content-type": NPY, "accept": NPY})
            elapsed = time.perf_counter() - begin
            response.raise_for_status()
            if i:
                added.append(elapsed - float(response.headers["x-queue-seconds"])
                             - float(response.headers["x-compute-seconds"]))
    return float(np.median(added))


WARM_UP_BURSTS = 2


def warm_up_lengths(batch_size: int = BATCH_SIZE) -> np.ndarray:
    """The workload's ``batch_size`` longest requests: sent :data:`WARM_UP_BURSTS` times at once, they make
    the steps reach their largest size, so the server's heap has grown to its peak (the executor keeps freed
    memory for reuse) before the first probe, as a server's heap has after its first busy minutes."""
    return np.sort(Workload.from_dataset(WORKLOAD).lengths)[-batch_size:]


def warm_up(server: ServerProcess, slo_s: float) -> None:
    """:func:`warm_up_lengths`, in bursts."""
    longest = warm_up_lengths()
    burst = Schedule(longest, np.zeros(BATCH_SIZE), float("inf"), "burst", 0.0, WORKLOAD)
    for _ in range(WARM_UP_BURSTS):
        run_load(burst, server.url, server.name, slo_s, 20 * slo_s)


def probe_bounds(slo_s: float, probe_slos: float, arrival: str, seed: int) -> dict:
    """A probe's bounds and draw (``make_schedule``'s options): requests sent within ``probe_slos`` SLOs."""
    return {"requests": MAX_PROBE_REQUESTS, "duration_s": probe_slos * slo_s, "cv": ARRIVALS[arrival], "seed": seed}


@dataclass(frozen=True)
class ProbeRun:
    """One real probe: its rate, schedule and result; the share of a core the server's steps got; the CPU
    seconds they took; and the machine's speed around it (the gauge's readings before and after, averaged)."""

    rate_rps: float
    schedule: Schedule
    result: LoadResult
    share: float
    step_cpu_s: float
    speed: float


def at_speed(sim: ServerModel, speed: float, share: float | None = None) -> ServerModel:
    """``sim`` on a machine ``speed`` times as fast as calibrated (and at ``share`` of a core, if given)."""
    spec = sim.spec if speed == 1 else sim.spec.at_speed(speed, f"{speed:.2f}x the calibrated speed")
    return replace(sim, spec=spec, cpu_share=sim.cpu_share if share is None else share)


def search(server: ServerProcess, calibrated_sim: ServerModel, arrival: str, slo_s: float, max_probes: int,
           probe_slos: float, seed: int, gauge: SpeedGauge) -> CapacityRow:
    """The real search from (a little under) the simulated prediction, then the prediction again at the share of
    a core and the machine's speed during the probes that decided the answer. The gauge is read before the
    search and after each probe (the server idle), and each probe is simulated at its own share and speed
    (does the simulator agree that it passed or failed?). Beside it: the prediction at the calibrated speed,
    and at the *steps' speed* (the simulated steps' busy time at the calibrated speed over the CPU time the
    server's steps took: the gauge's reading plus whatever the preset misprices in this policy's steps)."""
    bounds = probe_bounds(slo_s, probe_slos, arrival, seed)
    timeout_s = TIMEOUT_PER_SLO * slo_s

    def predicted(server_model: ServerModel, start_rps: float) -> float:
        return simulated_max_rate(server_model, WORKLOAD, arrival, slo_s, start_rps, rel_tolerance=0.02,
                                  max_probes=24, timeout_s=timeout_s, **bounds).max_rate_rps

    readings = [gauge.speed()]
    guess = START_FRACTION * predicted(at_speed(calibrated_sim, readings[0]), 1.0) or 0.5
    runs: list[ProbeRun] = []

    def probe(rate_rps: float):
        schedule = make_schedule(WORKLOAD, arrival, rate_rps, **bounds)
        before = server.engine_time()
        result = run_load(schedule, server.url, server.name, slo_s, timeout_s, seed).result
        after = server.engine_time()
        readings.append(gauge.speed())
        runs.append(ProbeRun(rate_rps, schedule, result, core_share(before, after), after.cpu_s - before.cpu_s,
                             (readings[-2] + readings[-1]) / 2))
        print(f"    {rate_rps:.3g}/s: p99 {result.p99_s:.3g} s, {result.ok}/{result.requests} ok, share "
              f"{runs[-1].share:.2f}, speed {runs[-1].speed:.2f}", file=sys.stderr)
        return result

    begin = time.perf_counter()
    found = find_max_rate(probe, guess, TOLERANCE, max_probes, GROWTH)
    elapsed = time.perf_counter() - begin
    passing = [r for r in runs if r.rate_rps == found.max_rate_rps]
    rerun = run_load(make_schedule(WORKLOAD, arrival, found.max_rate_rps, **bounds), server.url, server.name, slo_s,
                     timeout_s, seed).result.p99_s if passing else float("nan")  # is the answer repeatable?
    simulated_p99, steps_speeds, agree = {}, {}, 0
    for run in runs:
        expected = simulate_load(at_speed(calibrated_sim, run.speed, run.share), run.schedule, slo_s, timeout_s)
        agree += expected.result.slo_met == run.result.slo_met
        simulated_p99[run.rate_rps] = expected.result.p99_s
        at_calibration_s = simulate_load(at_speed(calibrated_sim, 1.0, 1.0), run.schedule, slo_s, timeout_s).busy_s
        whole = run.result.ok == run.result.requests and run.step_cpu_s > 0  # else the server's work was cut short
        steps_speeds[run.rate_rps] = at_calibration_s / run.step_cpu_s if whole else float("nan")
        print(f"    {run.rate_rps:.3g}/s simulated: p99 {expected.result.p99_s:.3g} s; steps' speed "
              f"{steps_speeds[run.rate_rps]:.2f}", file=sys.stderr)
    failed = [r.rate_rps for r in runs if not r.result.slo_met and r.rate_rps > found.max_rate_rps]
    deciding = [r for r in runs if r.rate_rps in (found.max_rate_rps, min(failed, default=None))]
    share = float(np.mean([r.share for r in deciding]))
    speed = float(np.mean([r.speed for r in deciding]))
    known = [steps_speeds[r.rate_rps] for r in deciding if np.isfinite(steps_speeds[r.rate_rps])]
    steps_speed = float(np.mean(known)) if known else float("nan")  # NaN: no deciding probe ran whole
    slow_fast = tuple(predicted(at_speed(calibrated_sim, speed * factor, share), guess) for factor in SPEED_STUDY)
    return CapacityRow(calibrated_sim.model.name, "", arrival, found.max_rate_rps, min(failed) if failed else None,
                       len(runs), agree, predicted(at_speed(calibrated_sim, speed, share), guess),
                       predicted(at_speed(calibrated_sim, 1.0, share), guess),
                       predicted(at_speed(calibrated_sim, steps_speed, share), guess) if known else float("nan"),
                       share, speed, steps_speed,
                       elapsed, passing[0].result.p99_s if passing else float("nan"), rerun,
                       simulated_p99.get(found.max_rate_rps, float("nan")), slow_fast)


def fixed_timesteps(sim: ServerModel, slo_s: float, probe_slos: float) -> int:
    """The fixed T of :data:`FIXED_T` with the highest simulated max rate (Poisson) on this host."""
    bounds = probe_bounds(slo_s, probe_slos, "poisson", 0)
    rates = {t: simulated_max_rate(replace(sim, params=with_batch({"timesteps": t})), WORKLOAD, "poisson", slo_s,
                                   1.0, rel_tolerance=0.02, max_probes=24, timeout_s=TIMEOUT_PER_SLO * slo_s,
                                   **bounds).max_rate_rps for t in FIXED_T}
    return max(rates, key=rates.get)


def run_model(name: str, args, page: dict) -> None:
    model = bench_model(name)
    slo_s = SLO_S[name]
    print(f"{name}: calibrating ...", file=sys.stderr)
    spec, fit_error, share = calibrated(model, args.calibration_repeats)
    gauge = SpeedGauge(model)
    if args.presets:
        args.presets.mkdir(parents=True, exist_ok=True)
        (args.presets / f"{name}.yaml").write_text(host_preset_text(spec))
    page["presets"].append((name, spec, fit_error, share))
    sim = ServerModel(model, spec, "ebatch", with_batch({"timesteps": 16}), 0.0, share)
    fixed_t = fixed_timesteps(sim, slo_s, args.probe_slos)
    chosen = configs(slo_s, fixed_t, args.quick)
    n = args.requests if name != "eesen" else max(BATCH_SIZE + 1, args.requests // 2)
    lengths = Workload.from_dataset(WORKLOAD, n=n, seed=args.seed).lengths
    weights = RNNWeights.random(model, seed=0)
    checks = [(label, policy, with_batch({k: v for k, v in params.items() if k != "max_wait_s"}))
              for label, policy, params in chosen]
    page["throughput"] += check_throughput(weights, spec, checks, lengths, "torch", args.repeats, args.seed,
                                           progress=lambda s: print(f"  throughput: {s}", file=sys.stderr))
    overhead_s = None
    for label, policy, params in chosen:
        with ServerProcess(name, serve_options(policy, params)) as server:
            warm_up(server, slo_s)
            if overhead_s is None:
                overhead_s = request_overhead_s(server, int(np.median(lengths)), weights.input_size)
                page["overheads"].append((name, overhead_s))
            for arrival in args.arrivals:
                print(f"  {label}, {arrival}:", file=sys.stderr)
                model_of_server = replace(sim, policy=policy, params=with_batch(params), request_overhead_s=overhead_s)
                row = search(server, model_of_server, arrival, slo_s, args.max_probes, args.probe_slos, args.seed,
                             gauge)
                page["capacity"].append(replace(row, label=label))
                sim = replace(sim, cpu_share=row.cpu_share)


def throughput_only(name: str, args, page: dict) -> None:
    """The 15 % check of a model that is not served here (gru-2x512): calibrate, then every policy offline."""
    model = bench_model(name)
    spec, fit_error, share = calibrated(model, args.calibration_repeats)
    page["presets"].append((name, spec, fit_error, share))
    lengths = Workload.from_dataset(WORKLOAD, n=args.requests, seed=args.seed).lengths
    checks = [(label, policy, with_batch({k: v for k, v in params.items() if k != "max_wait_s"}))
              for label, policy, params in configs(SLO_S["lstm-2x512"], 64, args.quick)
              if params.get("timesteps") != "auto"]
    page["throughput"] += check_throughput(RNNWeights.random(model, seed=0), spec, checks, lengths, "torch",
                                           args.repeats, args.seed)


def profile(names: list[str], args) -> str:
    """Where each policy's time goes on a freshly calibrated preset (offline, the throughput workload, 64
    requests): the cost model's terms summed over the steps each policy makes."""
    lines = ["## Where the time goes (generated)", "",
             f"`{' '.join(['python benchmarks/capacity.py', *sys.argv[1:]])}`: each policy's steps, offline, "
             f"64 {WORKLOAD} requests, priced by a preset calibrated just before; the share of the busy time in "
             "each term of the host cost model (src/ebatch/hardware/host.py).", "",
             "| model | policy | busy s | per step (and plan) | per segment | per column | per cell "
             "| cells per column |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        model = bench_model(name)
        spec = calibrated(model, args.calibration_repeats)[0]
        lengths = Workload.from_dataset(WORKLOAD, n=64, seed=args.seed).lengths
        for label, policy, params in configs(SLO_S.get(name, 4.0), 64 if name != "eesen" else 16, quick=True):
            split = time_split(model, spec, policy, with_batch(params), lengths)
            terms = ("step", "segment", "column", "cell")
            total = sum(split[k] for k in terms)
            lines.append(f"| {name} | {label} | {total:.1f} | " + " | ".join(f"{split[k] / total:.0%}" for k in terms)
                         + f" | {split['cells_per_column']:.1f} |")
    return "\n".join(lines)


def probe_study(names: list[str], args) -> str:
    """How the probe's length shapes the max-rate search's answer, simulated on a preset calibrated just
    before (no servers): per policy, arrival process and probe length, the answer's median and spread over
    schedules drawn with different seeds, and the p99's elasticity to the rate near the answer. A p99 off
    by a fraction e moves the answer by about e / elasticity: where the elasticity is well under 1, a few
    per cent of error in the p99 (the simulator's, or the machine's run-to-run noise) is a large error in
    the rate, and the 20 % check is ill-conditioned."""
    lines = ["## Probe length, simulated (generated)", "",
             f"`{' '.join(['python benchmarks/capacity.py', *sys.argv[1:]])}` on {cpu_name()}, "
             f"{datetime.date.today().isoformat()}: the max-rate search simulated on a preset calibrated just "
             f"before, on {PROBE_STUDY_SEEDS} schedules (seeds 0-{PROBE_STUDY_SEEDS - 1}) per probe length; "
             f"elasticity: d log p99 / d log rate between {STUDY_RATE_STEP:g}x the answer and the answer, "
             "median over the schedules.", "",
             "| model | policy | arrival | probe | max rate: median | spread (cv over schedules) | p99 elasticity |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for name, label, arrival, slo_s, server in studied_servers(names, args):
        for probe_slos in PROBE_STUDY_SLOS:
            rates, elasticity = searched_rates(server, arrival, slo_s, probe_slos)
            lines.append(f"| {name} | {label} | {arrival} | {probe_slos:g} x SLO | {np.median(rates):.3g} "
                         f"| {np.std(rates) / np.mean(rates):.0%} | {elasticity:.2f} |")
            print(lines[-1], file=sys.stderr)
    return "\n".join(lines)


def studied_servers(names: list[str], args):
    """``(model, label, arrival, SLO, server model)`` for every policy the benchmark searches and every
    ``--arrivals``, each model on a preset calibrated just before (the simulated studies' loop)."""
    for name in names:
        model = bench_model(name)
        slo_s = SLO_S[name]
        sim = ServerModel(model, calibrated(model, args.calibration_repeats)[0], "ebatch", with_batch({}))
        for label, policy, params in configs(slo_s, fixed_timesteps(sim, slo_s, args.probe_slos), quick=False):
            for arrival in args.arrivals:
                yield name, label, arrival, slo_s, replace(sim, policy=policy, params=with_batch(params))


def timing_study(names: list[str], args) -> str:
    """How much the simulated answer moves when each request reaches the server a few milliseconds later
    than it was sent, as the HTTP layer makes it do (the request overhead measured on an idle server is
    5-13 ms): per policy and arrival process, the simulated search on the benchmark's schedules (seed 0,
    ``--probe-slos``) as sent, and on ``JITTER_DRAWS`` copies with every send delayed by a uniform draw in
    [0, ``JITTER_S``]. A policy whose answer moves far under such jitter cannot be predicted to 20 % from
    one schedule by any model of it, however exact its step costs."""
    lines = ["## Timing sensitivity, simulated (generated)", "",
             f"`{' '.join(['python benchmarks/capacity.py', *sys.argv[1:]])}` on {cpu_name()}, "
             f"{datetime.date.today().isoformat()}: the max-rate search simulated on a preset calibrated just "
             f"before, on the benchmark's schedules ({args.probe_slos:g} x SLO, seed 0), as sent and with each "
             f"send delayed by a uniform 0-{JITTER_S * 1e3:.0f} ms ({JITTER_DRAWS} draws).", "",
             "| model | policy | arrival | max rate as sent | delayed: median | delayed: lowest - highest "
             "| highest / lowest |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for name, label, arrival, slo_s, server in studied_servers(names, args):
        plain = jittered_rate(server, arrival, slo_s, args.probe_slos, None, 1.0)
        delayed = np.array([jittered_rate(server, arrival, slo_s, args.probe_slos, draw, plain or 1.0)
                            for draw in range(JITTER_DRAWS)])
        lines.append(f"| {name} | {label} | {arrival} | {plain:.3g} | {np.median(delayed):.3g} | "
                     f"{delayed.min():.3g} - {delayed.max():.3g} | {_ratio(delayed.max(), delayed.min())} |")
        print(lines[-1], file=sys.stderr)
    return "\n".join(lines)


def speed_study(names: list[str], args) -> str:
    """How much the simulated answer moves when the machine runs :data:`SPEED_STUDY` times as fast as the
    preset says, on the benchmark's schedules (seed 0, ``--probe-slos``): the speed is the one input of the
    prediction measured with an error of this size (the gauge, or the run-to-run noise of one schedule's
    steps), so an answer that moves by more than 20 % under it cannot be predicted to 20 % by the benchmark,
    however exact the preset's step costs."""
    slow, fast = SPEED_STUDY
    lines = ["## Speed sensitivity, simulated (generated)", "",
             f"`{' '.join(['python benchmarks/capacity.py', *sys.argv[1:]])}` on {cpu_name()}, "
             f"{datetime.date.today().isoformat()}: the max-rate search simulated on a preset calibrated just "
             f"before, on the benchmark's schedules ({args.probe_slos:g} x SLO, seed 0), at the preset's speed and "
             f"at {slow:g}x and {fast:g}x it (`HostSpec.at_speed`).", "",
             f"| model | policy | arrival | max rate at {slow:g}x | at the preset's speed | at {fast:g}x "
             f"| {slow:g}x / preset | {fast:g}x / preset |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    moved = []
    for name, label, arrival, slo_s, server in studied_servers(names, args):
        rates = [jittered_rate(at_speed(server, speed), arrival, slo_s, args.probe_slos, draw=None, start_rps=1.0)
                 for speed in (slow, 1.0, fast)]
        ratios = [_ratio(rates[0], rates[1]), _ratio(rates[2], rates[1])]
        moved.append(rates[1] > 0 and not well_conditioned(rates[1], (rates[0], rates[2])))
        lines.append(f"| {name} | {label} | {arrival} | " + " | ".join(f"{r:.3g}" for r in rates)
                     + f" | {ratios[0]} | {ratios[1]} |")
        print(lines[-1], file=sys.stderr)
    lines += ["", f"Answers that move by more than 20 % at {slow:g}x or {fast:g}x the speed: {sum(moved)} of "
              f"{len(moved)}."]
    return "\n".join(lines)


def jittered_rate(sim: ServerModel, arrival: str, slo_s: float, probe_slos: float, draw: int | None,
                  start_rps: float) -> float:
    """The simulated search's answer (from ``start_rps``) on the benchmark's schedules, each send delayed by a
    uniform draw in [0, ``JITTER_S``] from generator ``draw`` (``None``: as sent)."""
    bounds = probe_bounds(slo_s, probe_slos, arrival, 0)
    timeout_s = TIMEOUT_PER_SLO * slo_s

    def probe(rate_rps: float):
        schedule = make_schedule(WORKLOAD, arrival, rate_rps, **bounds)
        if draw is not None:
            delay_s = np.random.default_rng(draw).uniform(0.0, JITTER_S, len(schedule))
            schedule = replace(schedule, send_s=schedule.send_s + delay_s)
        return simulated_load(sim, schedule, slo_s, timeout_s)

    return find_max_rate(probe, start_rps, 0.02, 24).max_rate_rps


def searched_rates(sim: ServerModel, arrival: str, slo_s: float, probe_slos: float) -> tuple[np.ndarray, float]:
    """The simulated search's answer on each of the study's schedules, and the median elasticity (NaN if no
    schedule gives a finite one)."""
    timeout_s = TIMEOUT_PER_SLO * slo_s
    rates, elasticities = [], []
    for seed in range(PROBE_STUDY_SEEDS):
        bounds = probe_bounds(slo_s, probe_slos, arrival, seed)
        rate = simulated_max_rate(sim, WORKLOAD, arrival, slo_s, 1.0, rel_tolerance=0.02, max_probes=24,
                                  timeout_s=timeout_s, **bounds).max_rate_rps
        rates.append(rate)
        if rate > 0:
            low, high = (simulated_load(sim, make_schedule(WORKLOAD, arrival, r, **bounds), slo_s, timeout_s).p99_s
                         for r in (STUDY_RATE_STEP * rate, rate))
            if low > 0 and np.isfinite(high):
                elasticities.append(np.log(high / low) / -np.log(STUDY_RATE_STEP))
    return np.array(rates), float(np.median(elasticities)) if elasticities else float("nan")


def time_split(model, spec: HostSpec, policy: str, params: dict, lengths) -> dict:
    """Seconds per term of the host cost model over the steps ``policy`` makes for ``lengths`` (offline)."""
    workload = Workload.from_lengths(lengths, np.zeros(len(lengths)))
    result = Simulator(model, workload, policies.get(policy, **params), HostCostModel(spec, model),
                       keep_plan=True).run().result()
    steps = [step for _, step in result.plan]
    prices = HostCostModel(spec, model)
    costs = [prices.cost(step).breakdown for step in steps]
    columns = sum(step.width for step in steps)
    return {"step": len(steps) * spec.step_overhead_s + sum(c["layout_s"] for c in costs),
            "segment": sum(step.seg_row.size for step in steps) * spec.segment_overhead_s,
            "column": columns * spec.column_overhead_s,
            "cell": sum(c["recurrent_s"] + c["input_s"] for c in costs),
            "cells_per_column": sum(step.useful_cells for step in steps) / columns}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "-"


def markdown(page: dict, command: str, elapsed_s: float, load: tuple[str, str]) -> str:
    lines = ["## Measured (generated)", "",
             f"`{command}` on {cpu_name()} ({os.cpu_count()} logical CPUs shared with other work: load average "
             f"{load[0]} before, {load[1]} after), {datetime.date.today().isoformat()}, {elapsed_s / 60:.1f} min. "
             f"torch backend, 1 thread, B={BATCH_SIZE}, {WORKLOAD} lengths, random weights (seed 0).", "",
             "**Calibrated presets** (``ebatch calibrate``'s fit, in seconds of one core; share = this process's "
             "CPU / wall time while calibrating):", "",
             "| model | step | new layout | segment | column | recurrent / flop | input / flop | narrow rows "
             "| narrow / flop | fit error | share |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, spec, error, share in page["presets"]:
        lines.append(f"| {name} | {spec.step_overhead_s * 1e3:.3f} ms | {spec.layout_overhead_s * 1e3:.3f} ms | "
                     f"{spec.segment_overhead_s * 1e6:.1f} us | "
                     f"{spec.column_overhead_s * 1e6:.1f} us | {spec.recurrent_s_per_flop:.3g} s | "
                     f"{spec.input_s_per_flop:.3g} s | {spec.narrow_rows:g} | {spec.narrow_s_per_flop:.3g} s | "
                     f"{error:.1%} | {share:.2f} |")
    lines += ["", "**Predicted against measured throughput** (offline, all queued at 0; measured = requests per "
              "CPU second of the executor's thread, median of the repeats; wall = requests per wall second on "
              "this shared machine):", "",
              "| model | policy | requests | predicted req/s | measured req/s | predicted / measured | wall req/s |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in page["throughput"]:
        lines.append(f"| {c.model} | {c.label} | {c.requests} | {c.predicted_rps:.2f} | {c.measured_rps:.2f} | "
                     f"**{c.ratio:.2f}** | {c.measured_wall_rps:.2f} |")
    lines += ["", f"Within 15 %: {throughput_within(page['throughput'])} of {len(page['throughput'])}.", "",
              f"**Highest rate at the p99 SLO** (each probe sends for {page['probe_slos']:g} x the SLO, at most "
              f"{MAX_PROBE_REQUESTS} requests; measured: the highest passing probe, and the lowest failing "
              "one above it; probes: how many the search ran, and for how many of them the simulator, at the "
              "share of a core the server's steps got during that probe, agrees that it passed or failed; "
              "predicted: the same search simulated on the same schedules at the share of a core and the machine's "
              "speed during the two probes that decided the answer (speed: a fixed reference step timed before and "
              "after each probe, with the server idle, against right after calibration); at calibrated speed: the "
              "same at speed 1; steps' speed: the simulated steps' busy time at the calibrated speed over the CPU "
              "time the server's steps took in those probes, and the prediction at that speed (a diagnostic: it "
              f"uses the measurement); at {SLOW_FAST}: the prediction with the speed {SPEED_ERROR} lower and higher "
              "(an answer that moves by more than 20 % there cannot be checked to 20 %: section \"Speed "
              "sensitivity\"); p99 at the max: the highest passing probe's p99, measured, measured again on "
              "the same schedule after the search, and simulated):", "",
              "| model | SLO | arrival | policy | measured req/s | failed at | probes (simulated alike) | predicted | "
              f"predicted / measured | at {SLOW_FAST} speed | share | speed | at calibrated speed | steps' speed "
              "| at steps' speed | p99 at the max: measured, rerun, simulated | search |",
              "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: | ---: |"]
    for r in page["capacity"]:
        failed = f"{r.failed_above_rps:.3g}" if r.failed_above_rps else "-"
        lines.append(f"| {r.model} | {SLO_S[r.model]:g} s | {r.arrival} | {r.label} | {r.measured_rps:.3g} | "
                     f"{failed} | {r.probes} ({r.probes_agreeing}) | {r.predicted_rps:.3g} | "
                     f"**{_ratio(r.predicted_rps, r.measured_rps)}** | "
                     + ", ".join(f"{x:.3g}" for x in r.predicted_slow_fast_rps)
                     + f"{' (ill-conditioned)' * (not r.well_conditioned)} | {r.cpu_share:.2f} | {r.speed:.2f} | "
                     f"{r.predicted_calibrated_speed_rps:.3g} | {r.steps_speed:.2f} | "
                     f"{r.predicted_steps_speed_rps:.3g} ({_ratio(r.predicted_steps_speed_rps, r.measured_rps)}) | "
                     f"{r.p99_at_max_s:.3g}, {r.p99_rerun_s:.3g}, {r.p99_simulated_s:.3g} s | {r.search_s:.0f} s |")
    conditioned, conditioned_ok = conditioned_rate_within(page["capacity"])
    lines += ["", f"Within 20 %: {rate_within(page['capacity'])} of {len(page['capacity'])}; of the "
              f"{conditioned} searches whose prediction moves by at most 20 % at "
              f"{SLOW_FAST.replace(', ', ' and ')} the speed, {conditioned_ok}. "
              "Request overhead added to every predicted latency: "
              + ", ".join(f"{m} {s * 1e3:.1f} ms" for m, s in page["overheads"]) + ".", ""]
    lines += [repeatability(page["capacity"]), ""]
    lines += targets(page["capacity"])
    return "\n".join(lines)


def throughput_within(checks) -> int:
    """The 15 % check: offline throughput pairs whose prediction is within 15 % of the measurement."""
    return sum(abs(c.ratio - 1) <= 0.15 for c in checks)


def rate_within(rows: list[CapacityRow]) -> int:
    """The 20 % check: searches whose predicted max rate is within 20 % of the measured one."""
    return sum(r.measured_rps > 0 and abs(r.predicted_rps / r.measured_rps - 1) <= 0.2 for r in rows)


def conditioned_rate_within(rows: list[CapacityRow]) -> tuple[int, int]:
    """The 20 % check over the well-conditioned searches only: how many there are, and how many pass."""
    conditioned = [r for r in rows if r.well_conditioned]
    return len(conditioned), rate_within(conditioned)


def repeatability(rows: list[CapacityRow]) -> str:
    """How repeatable the measured answer is: the highest passing probe run again on the same schedule."""
    reruns = [r for r in rows if np.isfinite(r.p99_at_max_s)]
    if not reruns:
        return "No search found a passing rate, so none was rerun."
    again = sum(r.p99_rerun_s <= SLO_S[r.model] for r in reruns)
    moved = np.array([abs(r.p99_rerun_s / r.p99_at_max_s - 1) for r in reruns])  # inf: a request unanswered
    finite = moved[np.isfinite(moved)]
    unanswered = int(moved.size - finite.size)
    spread = f", up to {finite.max():.0%}" if finite.size else ""
    return (f"Repeatability: the highest passing probe, run again on the same schedule right after its search, "
            f"met the SLO again in {again} of {len(reruns)} searches; its p99 moved by a median of "
            f"{np.median(moved):.0%}{spread}" + (f", and {unanswered} rerun{'s' * (unanswered > 1)} left a request "
                                                 "unanswered within the timeout." if unanswered else "."))


def targets(rows: list[CapacityRow]) -> list[str]:
    """E-BATCH's best measured rate over padding's and cellular's best, per model and arrival."""
    out = ["**Against the targets** (E-BATCH: the better of fixed T and auto; padding: the better of plain and "
           "sorted; cellular: the better rule):", ""]
    for model in dict.fromkeys(r.model for r in rows):
        for arrival in dict.fromkeys(r.arrival for r in rows):
            group = [r for r in rows if r.model == model and r.arrival == arrival]

            def best(prefix: str, group=group) -> float:
                return max([r.measured_rps for r in group if r.label.startswith(prefix)], default=0.0)

            eb = best("E-BATCH")
            pad = max(best("padding"), best("sorted padding"))
            cell = best("cellular")
            out.append(f"- {model}, {arrival}: E-BATCH {eb:.3g} req/s = {_ratio(eb, pad)}x padding ({pad:.3g}), "
                       f"{_ratio(eb, cell)}x cellular ({cell:.3g}).")
    return out


def summary(page: dict, command: str) -> str:
    """The short version for docs/serving.md: both checks per policy, and the targets."""
    throughput_ok, rate_ok = throughput_within(page["throughput"]), rate_within(page["capacity"])
    conditioned, conditioned_ok = conditioned_rate_within(page["capacity"])
    lines = ["### Predicted against measured (generated)", "",
             f"`{command}`, {datetime.date.today().isoformat()}; the method, the SLOs, the calibrated presets and "
             "every probe are in [serving-capacity.md](serving-capacity.md).", "",
             f"Offline throughput, simulated within 15 % of measured: **{throughput_ok} of "
             f"{len(page['throughput'])}** policy x model pairs. Highest rate at the p99 SLO, simulated within 20 % "
             f"of `loadgen`'s search on the live server: **{rate_ok} of {len(page['capacity'])}**; of the "
             f"{conditioned} whose prediction moves by at most 20 % with the machine's speed {SPEED_ERROR} "
             f"lower or higher, {conditioned_ok}. "
             + repeatability(page["capacity"]), "",
             "| model | SLO | arrival | policy | measured req/s | predicted req/s | predicted / measured |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: |"]
    for r in page["capacity"]:
        lines.append(f"| {r.model} | {SLO_S[r.model]:g} s | {r.arrival} | {r.label} | {r.measured_rps:.3g} | "
                     f"{r.predicted_rps:.3g} | {_ratio(r.predicted_rps, r.measured_rps)} |")
    return "\n".join(lines + [""] + targets(page["capacity"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="lstm-2x512, Poisson, 3 policies, 4 probes each")
    parser.add_argument("--models", default=None, help="served models (default: lstm-2x512,eesen; quick: lstm-2x512)")
    parser.add_argument("--arrivals", default=None, help="poisson,gamma (quick: poisson)")
    parser.add_argument("--max-probes", type=int, default=None, help="per search (default 6; quick 4)")
    parser.add_argument("--requests", type=int, default=None, help="throughput check: requests (eesen: half); "
                        "default 32")
    parser.add_argument("--repeats", type=int, default=1, help="throughput check: runs per policy (median kept)")
    parser.add_argument("--calibration-repeats", type=int, default=None, help="default 2 (quick 1)")
    parser.add_argument("--profile", action="store_true", help="only calibrate and show where each policy's "
                        "time goes (no servers); writes the 'capacity-profile' section")
    parser.add_argument("--probe-slos", type=float, default=PROBE_SLOS, help="a probe sends for this many SLOs "
                        f"(default {PROBE_SLOS:g}; see --probe-study)")
    parser.add_argument("--probe-study", action="store_true", help="only calibrate and simulate the search "
                        "with probes of 1.5-6 SLOs (no servers); writes the 'capacity-probes' section")
    parser.add_argument("--timing-study", action="store_true", help="only calibrate and simulate the search "
                        "with each send delayed by up to 10 ms (no servers); writes the 'capacity-timing' section")
    parser.add_argument("--speed-study", action="store_true", help="only calibrate and simulate the search "
                        "with the machine 5 %% slower and faster (no servers); writes the 'capacity-speed' section")
    parser.add_argument("--summary", type=Path, help="Markdown file whose 'capacity-summary' section to (re)write "
                        "with the targets and the checks' counts, e.g. docs/serving.md")
    parser.add_argument("--presets", type=Path, help="folder to write each served model's calibrated preset "
                        "into (MODEL.yaml), to replay the probes with ebatch loadgen --hardware")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="Markdown file whose 'capacity' section to (re)write, e.g. "
                        "docs/serving-capacity.md (without it, the section is only printed)")
    args = parser.parse_args()
    args.models = (args.models or ("lstm-2x512" if args.quick else "lstm-2x512,eesen")).split(",")
    args.arrivals = (args.arrivals or ("poisson" if args.quick else "poisson,gamma")).split(",")
    args.max_probes = args.max_probes or (4 if args.quick else 6)
    args.requests = args.requests or 32
    args.calibration_repeats = args.calibration_repeats or (1 if args.quick else 2)
    for name in args.models:
        if name not in SLO_S:
            parser.error(f"--models: {name!r} has no SLO here; choose from {', '.join(SLO_S)}")
    for arrival in args.arrivals:
        if arrival not in ARRIVALS:
            parser.error(f"--arrivals: {arrival!r}; choose from {', '.join(ARRIVALS)}")
    import torch

    torch.set_num_threads(1)
    if not args.probe_slos > 0:
        parser.error(f"--probe-slos: must be > 0, got {args.probe_slos}")
    for flag, section, study in ((args.profile, "capacity-profile", profile),
                                 (args.probe_study, "capacity-probes", probe_study),
                                 (args.timing_study, "capacity-timing", timing_study),
                                 (args.speed_study, "capacity-speed", speed_study)):
        if flag:
            text = study(args.models, args)
            if args.out:
                write_section(args.out, section, text, title="# Serving capacity")
            print(text)
            return
    load_before = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    begin = time.perf_counter()
    page = {"presets": [], "throughput": [], "capacity": [], "overheads": [], "probe_slos": args.probe_slos}
    for name in args.models:
        run_model(name, args, page)
    if not args.quick:
        throughput_only("gru-2x512", args, page)
    load_after = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    command = " ".join(["python benchmarks/capacity.py", *sys.argv[1:]])
    text = markdown(page, command, time.perf_counter() - begin, (load_before, load_after))
    if args.out:
        write_section(args.out, "capacity", text, title="# Serving capacity")
    if args.summary:
        write_section(args.summary, "capacity-summary", summary(page, command), title="# Serving")
    print(text)


if __name__ == "__main__":
    main()
