"""``calibrate``: time this machine's executor on real steps and fit a :class:`~ebatch.hardware.host.HostSpec`.

Two kinds of steps are timed, each on every layer direction of the model (a warm-up pass first, then
``repeats`` passes; each step keeps the median of its passes, the time a step typically takes, which is
what a server's steps take: the fastest pass is 7-20 % under the median on a shared machine, and a preset
fitted to it predicted rates a server did not reach):

- **grid**: for every (rows, columns) of a small grid, ``rows`` requests of ``columns`` time-steps each
  as one fused step (the shapes of a full batch);
- **policies**: the steps that padding, cellular batching and E-BATCH (T=16) make on a short calibration
  workload (:data:`CALIBRATION_WORKLOAD`, lengths divided by :data:`LENGTH_DIVISOR`, all queued at 0,
  B = the grid's largest rows): ragged padded batches, runs of cellular invocations whose requests
  continue saved states, windows that concatenate sequences. None of these are the workloads the preset
  is later checked on;
- **online**: the steps the same three policies make when the requests arrive (Poisson) at
  :data:`ONLINE_LOAD` of the rate each sustained offline: the short runs of few requests, one column at a
  time, that a server under load makes. These schedules are drawn once, on a preliminary fit of the first
  pass, and every pass executes the same steps. Without them a preset fitted on full batches priced a
  served cellular probe's one-column steps at 1.2-1.5x their time (``benchmarks/replay_probe.py``).

The clock is the executor thread's CPU time with one CPU thread (a single-threaded executor runs on the
calling thread, so this is the time it takes on a core of its own, whatever else the machine runs), and
wall time otherwise (several threads, or a GPU). Each step records whether the executor built its plan
(its layout was not among the recent ones, :class:`~ebatch.step.RecentLayouts`). The host cost model's
seven coefficients (per step, per new layout, per segment, per column, per recurrent flop, per input flop,
per recurrent flop of a column's first ``narrow_rows`` rows) are fitted by non-negative least squares on
relative error, for every ``narrow_rows`` below the most rows measured; the best fit is kept. Each kind of
step (the grid, each policy, each policy online) weighs the same in the fit however many steps it has:
weighted by step, the hundreds of one-column online steps outweighed the few dozen long steps of an offline
policy, whose time a loaded server mostly spends, and the fit priced those 4-6 % under their time. The grid
measures every row count a step of a batch of 16 is likely to have often (1-4, 6, 8, 12, 16): a column's
cost is not linear in its rows. Bounded:
``(repeats + 1) x (len(rows) x len(columns) + 6 policy runs)`` passes over the model.
"""

from __future__ import annotations

import datetime
import platform
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ebatch.experiments.formatting import json_safe
from ebatch.hardware.cost import StepCost
from ebatch.hardware.energy import ASSUMED_POWER_W
from ebatch.hardware.host import HostSpec, cpu_name
from ebatch.model import RNNModel, get_model
from ebatch.step import BatchStep

__all__ = ["CALIBRATION_WORKLOAD", "Calibration", "GRID_ROWS", "LENGTH_DIVISOR", "StepTiming", "calibrate",
           "fit_host", "measure_steps"]

CALIBRATION_WORKLOAD = "librispeech-dev-clean"
LENGTH_DIVISOR = 8
GRID_ROWS = (1, 2, 3, 4, 6, 8, 12, 16)
POLICY_RUNS = (("padding", {}), ("cellular", {}), ("ebatch", {"timesteps": 16}))
ONLINE_LOAD = 0.5
_NAMES = ("step_overhead_s", "segment_overhead_s", "layout_overhead_s", "column_overhead_s", "recurrent_s_per_flop",
          "input_s_per_flop", "narrow_s_per_flop")


@dataclass(frozen=True)
class StepTiming:
    """One timed step: its layer, segments, columns, useful cells, time, and what made it (grid or a policy)."""

    layer: int
    segments: int
    columns: int
    cells: int
    time_s: float
    kind: str = "grid"
    #: how many of its columns hold 0, 1, 2, ... rows (what the narrow-column term needs)
    columns_by_rows: tuple[int, ...] = ()
    #: whether the executor built the step's plan (its layout was not among the recent ones)
    new_layout: bool = True

    @classmethod
    def of(cls, step: BatchStep, time_s: float, kind: str, new_layout: bool) -> StepTiming:
        by_rows = tuple(np.bincount(step.column_rows(), minlength=step.slots + 1).tolist())
        return cls(step.layer, int(step.seg_row.size), step.width, step.useful_cells, time_s, kind, by_rows,
                   new_layout)

    def narrow_cells(self, narrow_rows: int) -> int:
        """Cells among the first ``narrow_rows`` rows of each column."""
        return sum(count * min(rows, narrow_rows) for rows, count in enumerate(self.columns_by_rows))


@dataclass(frozen=True)
class Calibration:
    """The fitted spec, the timings it was fitted on, the fit's relative RMS error, and per kind of step
    the fitted total time over the measured total (1.0: the fit adds up)."""

    spec: HostSpec
    timings: tuple[StepTiming, ...]
    rel_rms_error: float
    total_ratio_by_kind: dict

    def to_json(self) -> dict:
        """The spec's name and fitted parameters, the fit's error (overall and per kind of step) and every
        timing."""
        return json_safe({
            "name": self.spec.name,
            "parameters": {name: getattr(self.spec, name) for name in HostSpec.parameter_names()},
            "rel_rms_error": self.rel_rms_error,
            "total_ratio_by_kind": self.total_ratio_by_kind,
            "timings": [asdict(t) for t in self.timings],
        })


def _features(model: RNNModel, t: StepTiming) -> list[float]:
    """The terms of every coefficient but the narrow-column one (:func:`_recurrent_flops` times narrow cells)."""
    layer = model.layers[t.layer]
    return [1.0, float(t.segments), float(t.new_layout), float(t.columns), t.cells * _recurrent_flops(model, t),
            t.cells * 2.0 * layer.gate_rows * layer.input_size]


def _recurrent_flops(model: RNNModel, t: StepTiming) -> float:
    layer = model.layers[t.layer]
    return 2.0 * layer.gate_rows * layer.output_size


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0: drop the most negative coefficient and refit until none is."""
    keep = list(range(a.shape[1]))
    while True:
        coef = np.zeros(a.shape[1])
        coef[keep] = np.linalg.lstsq(a[:, keep], b, rcond=None)[0]
        if coef.min() >= 0 or len(keep) == 1:
            return np.maximum(coef, 0.0)
        keep.remove(int(np.argmin(coef)))


class _TimedExecutor:
    """A simulator backend that runs each step on the executor and records, on ``clock``, the time from the
    end of the previous step to the end of this one: the policy's choice of the step and its bookkeeping
    of the previous one are part of what a step costs a serving loop."""

    notify_latency_s = 0.0
    notifies_mid_step = False

    def __init__(self, executor, clock, inputs, kind: str) -> None:
        self.executor, self.clock, self.inputs, self.kind = executor, clock, inputs, kind
        self.timings: list[StepTiming] = []
        self._last_end: float | None = None

    def reset(self) -> None:
        self.executor.reset()
        self.executor.source = self.inputs.__getitem__
        self._last_end = None

    def cost(self, step: BatchStep, commit: bool = True) -> StepCost:
        start, built = self.clock(), self.executor.plans_built
        self.executor.execute(step)
        self.executor.synchronize()
        end = self.clock()
        elapsed = end - (start if self._last_end is None else self._last_end)
        self._last_end = end
        self.timings.append(StepTiming.of(step, elapsed, self.kind, self.executor.plans_built > built))
        return StepCost(elapsed, 0.0, {})


def _grid_pass(executor, model: RNNModel, clock, rows, columns, rng) -> list[StepTiming]:
    executor.reset()
    timings, request = [], 0
    for r in rows:
        for c in columns:
            ids = list(range(request, request + r))
            request += r
            for i in ids:
                executor.add(i, rng.standard_normal((c, model.layers[0].input_size), dtype=np.float32))
            for layer_index, layer in enumerate(model.layers):
                for direction in range(layer.directions):
                    first = 0 if direction == 0 else c - 1
                    step = BatchStep(layer_index, direction, c, r, range(r), [0] * r, ids, [first] * r, [c] * r,
                                     [True] * r)
                    start, built = clock(), executor.plans_built
                    executor.execute(step)
                    executor.synchronize()
                    timings.append(StepTiming.of(step, clock() - start, "grid", executor.plans_built > built))
            for i in ids:
                executor.pop_result(i)
    return timings


def _policy_pass(executor, model: RNNModel, clock, batch_size: int, inputs) -> list[StepTiming]:
    """Each of :data:`POLICY_RUNS` on ``inputs``, all queued at 0."""
    from ebatch import policies
    from ebatch.sim.engine import Simulator
    from ebatch.workload import Workload

    workload = Workload.from_lengths([len(x) for x in inputs], np.zeros(len(inputs)), name="calibration")
    timings = []
    for name, params in POLICY_RUNS:
        backend = _TimedExecutor(executor, clock, inputs, name)
        policy = policies.get(name, batch_size=batch_size, **params)
        Simulator(model, workload, policy, backend, cut_runs=False).run()
        timings += backend.timings
    return timings


def _online_plans(model: RNNModel, batch_size: int, inputs, offline: list[StepTiming],
                  seed: int) -> list[tuple[str, list[BatchStep]]]:
    """Per policy of :data:`POLICY_RUNS`, the steps it makes when ``inputs`` arrive (Poisson) at
    :data:`ONLINE_LOAD` of the rate it sustained offline: the short runs of few requests a server under
    load makes. Drawn once, on a preliminary fit of the ``offline`` timings, so every pass times the same
    steps."""
    from ebatch import policies
    from ebatch.hardware.host import HostCostModel
    from ebatch.sim.engine import Simulator
    from ebatch.workload import Workload

    prices = HostCostModel(fit_host(model, offline, "preliminary", "preliminary", 0.0).spec, model)
    rng, lengths, plans = np.random.default_rng(seed), [len(x) for x in inputs], []
    for name, params in POLICY_RUNS:
        busy_s = sum(t.time_s for t in offline if t.kind == name)
        arrival_s = np.cumsum(rng.exponential(busy_s / len(inputs) / ONLINE_LOAD, len(inputs)))
        workload = Workload.from_lengths(lengths, arrival_s, name="calibration")
        result = Simulator(model, workload, policies.get(name, batch_size=batch_size, **params), prices,
                           cut_runs=False, keep_plan=True).run().result()
        plans.append((f"{name} online", [step for _, step in result.plan]))
    return plans


def _plan_pass(executor, clock, inputs, plans: list[tuple[str, list[BatchStep]]]) -> list[StepTiming]:
    """Every step of ``plans`` executed in order and timed as :class:`_TimedExecutor` times it."""
    timings = []
    for kind, steps in plans:
        backend = _TimedExecutor(executor, clock, inputs, kind)
        backend.reset()
        for step in steps:
            backend.cost(step)
        timings += backend.timings
    return timings


def measure_steps(model: str | RNNModel, backend: str = "torch", threads: int | None = 1,
                  rows: tuple[int, ...] = GRID_ROWS, columns: tuple[int, ...] = (4, 16, 64, 512), repeats: int = 2,
                  seed: int = 0, policy_requests: int = 48, device: str | None = None) -> list[StepTiming]:
    """The median of ``repeats`` timings of every grid and policy step (``policy_requests=0``: grid only);
    the first pass is not kept (on CUDA it captures the step shapes' graphs; its policy steps give the
    preliminary fit the online plans are drawn on). ``device``: ``"cuda"`` for the torch backend on a GPU
    (timed in wall time)."""
    from ebatch.runtime.engine import make_executor
    from ebatch.runtime.weights import RNNWeights
    from ebatch.workload import Workload

    model = get_model(model) if isinstance(model, str) else model
    executor = make_executor(RNNWeights.random(model, seed=seed), backend, device=device, threads=threads)
    clock = time.thread_time if _cpu_clock(threads, device) else time.perf_counter
    lengths = Workload.from_dataset(CALIBRATION_WORKLOAD, n=policy_requests, seed=seed).lengths if policy_requests \
        else np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal((max(1, int(n) // LENGTH_DIVISOR), model.layers[0].input_size), dtype=np.float32)
              for n in lengths]
    passes, plans = [], None
    for _ in range(repeats + 1):  # the first pass warms up and is not kept
        timings = _grid_pass(executor, model, clock, rows, columns, np.random.default_rng(seed))
        if inputs:
            timings += _policy_pass(executor, model, clock, max(rows), inputs)
            if plans is None:
                plans = _online_plans(model, max(rows), inputs, timings, seed)
            timings += _plan_pass(executor, clock, inputs, plans)
        passes.append(timings)
    return [replace(same[0], time_s=float(np.median([t.time_s for t in same]))) for same in zip(*passes[1:])]


def fit_host(model: str | RNNModel, timings: list[StepTiming], name: str, source: str,
             power_w: float, machine: str | None = None) -> Calibration:
    """The non-negative least-squares fit of the host cost model to ``timings`` (relative error; ``machine``:
    what ran them, for the description; this CPU by default)."""
    model = get_model(model) if isinstance(model, str) else model
    b = np.array([t.time_s for t in timings])
    kinds = np.array([t.kind for t in timings])
    weights = 1.0 / b  # relative error: short steps count as much as long ones
    for kind in set(kinds.tolist()):  # ... and every kind of step as much as any other, however many it has
        weights[kinds == kind] /= np.sqrt(np.count_nonzero(kinds == kind))
    most_rows = max((len(t.columns_by_rows) - 1 for t in timings), default=0)
    base = np.array([_features(model, t) for t in timings])
    recurrent_flops = np.array([_recurrent_flops(model, t) for t in timings])
    fits = []
    for narrow_rows in range(1, most_rows) or [0]:  # k = the most rows measured would only rescale the cells
        narrow = np.array([t.narrow_cells(narrow_rows) for t in timings]) * recurrent_flops
        a = np.column_stack([base, narrow])
        coef = _nnls(a * weights[:, None], b * weights)
        fitted = a @ coef
        fits.append((float(np.sum(weights**2 * (fitted - b) ** 2)), narrow_rows, coef, fitted))
    _, narrow_rows, coef, fitted = min(fits, key=lambda f: f[0])
    rel = float(np.sqrt(np.mean((fitted - b) ** 2 / b**2)))
    if coef[-1] == 0:
        narrow_rows = 0  # the term is off: no row count to report
    ratios = {k: float(fitted[kinds == k].sum() / b[kinds == k].sum()) for k in dict.fromkeys(kinds.tolist())}
    sources = {n: f"{source}; fit of {len(timings)} steps, relative RMS error {rel:.1%}"
               for n in (*_NAMES, "narrow_rows")}
    sources["narrow_rows"] += f" (the best of 1..{max(1, most_rows - 1)} rows)"
    sources["power_w"] = "assumption: estimated energy only (power x time), not measured; set with --power-w"
    sources["weight_bandwidth_bytes_per_s"] = "not fitted: 0 leaves the weight-read roofline out"
    spec = HostSpec(**dict(zip(_NAMES, map(float, coef))), narrow_rows=float(narrow_rows), power_w=float(power_w),
                    name=name, description=f"ebatch executor on {machine or cpu_name()}, fitted by ebatch calibrate",
                    sources=sources)
    return Calibration(spec, tuple(timings), rel, ratios)


def _cpu_clock(threads: int | None, device: str | None) -> bool:
    """Whether steps are timed in the thread's CPU time: one CPU thread (then it is the calling thread)."""
    return threads == 1 and (device is None or str(device) == "cpu")


def calibrate(model: str | RNNModel, backend: str = "torch", threads: int | None = 1, repeats: int = 2,
              power_w: float = ASSUMED_POWER_W, rows: tuple[int, ...] = GRID_ROWS,
              columns: tuple[int, ...] = (4, 16, 64, 512), policy_requests: int = 48,
              device: str | None = None) -> Calibration:
    """Measure and fit; the preset's sources name the CPU (or GPU), backend, threads, clock and date."""
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    if not power_w >= 0:
        raise ValueError(f"power-w: must be >= 0 watts, got {power_w}")
    timings = measure_steps(model, backend, threads, rows, columns, repeats, policy_requests=policy_requests,
                            device=device)
    machine = cpu_name()
    if device is not None and str(device).startswith("cuda"):
        import torch

        machine = f"{torch.cuda.get_device_name(torch.device(device))} (host CPU {machine})"
    today = datetime.date.today().isoformat()
    name = model if isinstance(model, str) else model.name
    clock = "thread CPU time" if _cpu_clock(threads, device) else "wall time"
    source = f"measured by ebatch calibrate on {machine} ({backend} backend, {threads or 'default'} threads, " \
             f"{name}, {clock}), {today}"
    preset = f"{platform.node() or 'host'}-{backend}{'-' + str(device) if device else ''}-{threads or 0}t"
    return fit_host(model, timings, preset, source, power_w, machine)
