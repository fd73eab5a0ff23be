"""The discrete-event simulator: arrivals, a free backend asks the policy for a step, the backend prices
it, completions are notified back to the policy.

Events sit on a heap keyed by ``(time_s, priority, sequence number)``: at equal times arrivals are seen
before the backend asks for its next step, and insertion order breaks the remaining ties, so a run is
fully deterministic. :meth:`Simulator.step`, :meth:`Simulator.peek` and :meth:`Simulator.run` are public
so a run can be stepped and inspected.
"""

from __future__ import annotations

import heapq
import math
from typing import Protocol

import numpy as np

from ebatch.hardware.cost import StepCost
from ebatch.model import RNNModel
from ebatch.policies.base import Policy
from ebatch.sim.results import SimulationResult, StepLog
from ebatch.step import BatchStep
from ebatch.workload import Workload

__all__ = ["Backend", "Simulator"]

_ARRIVAL, _STEP_DONE, _WAKE = 0, 1, 2


class Backend(Protocol):
    """What the simulator needs from a backend (a cost model or a timed real executor).

    A backend may also set ``notifies_mid_step = False`` (its completions are known only when a step
    ends, e.g. ebatch's own executor); without it, a step with ``notify`` finishes each request at its
    last cell.
    """

    notify_latency_s: float

    def reset(self) -> None: ...

    def cost(self, step: BatchStep, commit: bool = True) -> StepCost: ...


class Simulator:
    """One run of ``policy`` on ``backend`` over ``workload``. Life cycle: construct, ``run()``, ``result()``.

    ``keep_plan=True`` keeps every executed ``BatchStep`` with its start time in ``result().plan``.
    ``cut_runs=False`` runs every non-fused step whole, as ``ebatch serve``'s online engine does; by default
    a run of invocations is cut at the first invocation boundary after an arrival (the runtime's Engine).
    Raises ``RuntimeError`` if the policy stops while requests remain unfinished (a policy bug).
    """

    def __init__(
        self, model: RNNModel, workload: Workload, policy: Policy, backend: Backend, keep_plan: bool = False,
        cut_runs: bool = True,
    ) -> None:
        self.model, self.workload, self.policy, self.backend = model, workload, policy, backend
        self.cut_runs = cut_runs
        self._mid_step_notify = bool(getattr(backend, "notifies_mid_step", True))
        self.now_s = 0.0
        self._heap: list[tuple[float, int, int, int, object]] = []
        self._sequence = 0
        self._busy = False
        self._wake_pending: float | None = None
        n = len(workload)
        self.start_s = np.full(n, np.nan)
        self.finish_s = np.full(n, np.nan)
        self.energy_j = np.zeros(n)
        self._marked = np.zeros(n, dtype=bool)  # scratch: the requests a step completed
        self.log = StepLog(keep_plan=keep_plan)
        policy.start(model)
        backend.reset()
        times, first = np.unique(workload.arrivals_s, return_index=True)
        bounds = np.append(first, n)
        self._arrival_times = times
        for i, t in enumerate(times):
            self._push(float(t), _ARRIVAL, (int(bounds[i]), int(bounds[i + 1])))
        self._next_arrival = 0  # index into _arrival_times of the next arrival not yet processed

    # ---- event heap ---------------------------------------------------------------------------------

    def _push(self, time_s: float, kind: int, payload: object) -> None:
        heapq.heappush(self._heap, (time_s, kind, self._sequence, kind, payload))
        self._sequence += 1

    def peek(self) -> float:
        """Time of the next event, or ``inf`` when none is left."""
        return self._heap[0][0] if self._heap else math.inf

    def step(self) -> None:
        """Process the next event. Raises ``IndexError`` when there is none."""
        time_s, _, _, kind, payload = heapq.heappop(self._heap)
        self.now_s = time_s
        if kind == _ARRIVAL:
            lo, hi = payload
            self._next_arrival += 1
            self.policy.on_arrival(np.arange(lo, hi), self.workload.lengths[lo:hi], time_s)
        elif kind == _STEP_DONE:
            self._finish(*payload)
        elif kind == _WAKE:
            self._wake_pending = None
        if not self._busy:
            self._dispatch()

    def run(self, until: float = math.inf) -> Simulator:
        heap = self._heap
        while heap and heap[0][0] <= until:  # peek(), inline: this loop runs once per event
            self.step()
        if until == math.inf and np.isnan(self.finish_s).any():
            missing = np.flatnonzero(np.isnan(self.finish_s))
            raise RuntimeError(
                f"policy {self.policy.name} stopped with {missing.size} unfinished requests (first {missing[0]})"
            )
        return self

    # ---- backend ------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        step = self.policy.next_step(self.now_s)
        if step is None:
            wake = self.policy.wake_time_s()
            if wake is not None and wake > self.now_s and self._wake_pending != wake:
                self._wake_pending = wake
                self._push(wake, _WAKE, None)
            return
        if (self.cut_runs and not step.fused and step.width > 1
                and self._next_arrival < self._arrival_times.size):
            step = self._cut_at_arrival(step, self.backend.cost(step, commit=False))
        cost = self.backend.cost(step)
        self._busy = True
        self._push(self.now_s + cost.time_s, _STEP_DONE, (step, cost, self.now_s))

    def _cut_at_arrival(self, step: BatchStep, estimate: StepCost) -> BatchStep:
        """Cut a run of invocations at the first invocation boundary after the next arrival (one is due)."""
        arrival_s = self._arrival_times[self._next_arrival]
        end_s = self.now_s + estimate.time_s
        if arrival_s >= end_s:
            return step
        first_s = self.backend.cost(step.prefix(1), commit=False).time_s
        steady_s = (estimate.time_s - first_s) / (step.width - 1)
        wait_s = arrival_s - self.now_s - first_s
        extra = 0 if wait_s <= 0 or steady_s <= 0 else math.ceil(wait_s / steady_s - 1e-12)
        return step.prefix(min(step.width, 1 + extra))

    def _finish(self, step: BatchStep, cost: StepCost, start_s: float) -> None:
        self._busy = False
        ids = step.seg_request
        started = self.start_s[ids]
        if math.isnan(started[started.argmax()]):  # argmax finds a NaN if there is one: a request starts here
            self.start_s[ids[np.isnan(started)]] = start_s
        if step.useful_cells == ids.size * step.width:  # (no segment is longer) every one spans the step
            self.energy_j[ids] += cost.energy_j * step.width / step.useful_cells
        else:
            self.energy_j[ids] += cost.energy_j * step.seg_length / step.useful_cells
        done = self.policy.on_step_done(step)
        if done.size:
            if step.notify and self._mid_step_notify:
                marked = self._marked
                marked[done] = True
                where = marked[ids].nonzero()[0]  # the segments of completed requests (np.isin, faster)
                marked[done] = False
                end_col = step.seg_col[where] + step.seg_length[where]
                self.finish_s[ids[where]] = start_s + cost.time_s * end_col / step.width + self.backend.notify_latency_s
            else:
                self.finish_s[done] = self.now_s
        self.log.record(step, cost, start_s)

    def result(self) -> SimulationResult:
        return SimulationResult(
            policy=self.policy,
            model=self.model,
            workload=self.workload,
            start_s=self.start_s,
            finish_s=self.finish_s,
            energy_j=self.energy_j,
            log=self.log,
        )
