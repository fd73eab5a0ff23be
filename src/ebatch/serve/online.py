"""``OnlineEngine``: a batching policy serving requests as they arrive, on the wall clock.

The engine owns one policy and one executor and runs the simulator's life cycle on a clock: take new
arrivals and cancellations into the policy, ``next_step(now)``, execute it, ``on_step_done``, hand the
finished outputs to their futures, then wait until the next arrival or the policy's ``wake_time_s``. The
policy objects and ``BatchStep``s are the simulator's; no policy code is forked.

Life cycle::

    engine = OnlineEngine(executor, policy)        # a worker thread starts (start=False: drive poll())
    future = engine.submit(x, deadline_s=0.5)       # any thread; x is [length, features]
    result = future.result()                        # InferenceResult(output, queue_s, compute_s)
    engine.cancel(future)                           # the request leaves its slot at the next step boundary
    engine.close(drain_timeout_s=10.0)              # stop admitting, finish what was admitted, stop

Every submitted request gets exactly one outcome on its future: an :class:`InferenceResult`, or one of
:class:`Rejected` (bad input, queue full, engine closed), :class:`DeadlineExceeded` (still queued when
its deadline passed), :class:`Cancelled`, or the executor's error. With an
:class:`~ebatch.serve.energy.EnergyLedger` (``energy=``) every step's energy is booked and a result carries
its request's share (``energy_j``). The clock is injectable
(``clock=`` a function returning seconds): with ``start=False`` a test calls :meth:`OnlineEngine.poll`
itself and every decision is deterministic. Memory: the engine and the policy keep only requests in
flight.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ebatch.policies.base import Policy
from ebatch.runtime.engine import SequenceError, validate_sequence
from ebatch.runtime.executor import Executor
from ebatch.serve.energy import EnergyLedger
from ebatch.serve.outcomes import (
    Cancelled,
    DeadlineExceeded,
    InferenceResult,
    Rejected,
    RequestFuture,
    StepListener,
)

__all__ = ["OnlineEngine"]

#: weight of the newest step in the measured rate (an exponential average over about 1/RATE_DECAY steps)
RATE_DECAY = 0.05


@dataclass
class _Request:
    future: RequestFuture
    length: int
    admitted_s: float
    deadline_s: float  # absolute, on the engine's clock; inf without one
    keep_state: bool = False
    started_s: float = math.nan


class OnlineEngine:
    """One policy and one executor serving requests on a clock (see the module docstring).

    ``max_queued_requests`` / ``max_queued_cells`` bound the requests admitted but not yet started, by
    count and by time-steps of work; over either bound :meth:`submit` rejects at once, and so it does a
    request with a deadline that the queue ahead of it cannot clear in time at the measured rate
    (:attr:`timesteps_per_s`). ``listener``: a :class:`StepListener` told about every step. ``energy``: the
    ledger that books each step's energy (read at its start and end) to its requests. Raises
    ``ValueError`` for a bound below 1.
    """

    def __init__(self, executor: Executor, policy: Policy, clock: Callable[[], float] = time.monotonic,
                 max_queued_requests: int | None = None, max_queued_cells: int | None = None,
                 start: bool = True, listener: StepListener | None = None,
                 energy: EnergyLedger | None = None) -> None:
        for name, bound in (("max_queued_requests", max_queued_requests), ("max_queued_cells", max_queued_cells)):
            if bound is not None and bound < 1:
                raise ValueError(f"{name}: must be >= 1 or None, got {bound}")
        self.executor, self.policy, self.clock = executor, policy, clock
        self.model = executor.model
        self.max_queued_requests, self.max_queued_cells = max_queued_requests, max_queued_cells
        self.listener, self.energy = listener, energy
        self._timesteps_per_step = 1.0 / self.model.cells_per_timestep
        self._rate_timesteps = 0.0  # decayed sums of request time-steps computed and of busy seconds
        self._rate_s = 0.0
        executor.reset()
        policy.start(self.model)
        self._lock = threading.Condition()
        self._inbox: deque[tuple] = deque()  # (id, input, initial state, keep state): not yet given to the policy
        self._cancels: set[int] = set()
        self._requests: dict[int, _Request] = {}  # every request admitted and not yet answered
        self._queued: dict[int, _Request] = {}  # those of them no step has held yet
        self._queued_cells = 0  # their time-steps
        self._next_id = 0
        self._closing = False
        self._closed = False
        self.steps = 0
        #: seconds the worker spent in steps (executing and the policy's ``on_step_done``), on the engine's
        #: clock and in the worker thread's CPU time: their ratio is the share of a core the steps got
        #: (below 1 where other processes, or other threads holding the GIL, delay the worker)
        self.step_s = 0.0
        self.step_cpu_s = 0.0
        #: seconds spent in :meth:`poll` outside steps (admitting, expiring, the policy's ``next_step``,
        #: answering), wall clock and CPU; the simulator counts this time as zero
        self.schedule_s = 0.0
        self.schedule_cpu_s = 0.0
        #: seconds the worker thread waited for work or for the policy's wake time
        self.idle_s = 0.0
        self._thread: threading.Thread | None = None
        if start:
            self._thread = threading.Thread(target=self._serve, name="ebatch-online-engine", daemon=True)
            self._thread.start()

    # ---- any thread ---------------------------------------------------------------------------------

    def submit(self, x, deadline_s: float | None = None, initial_state: tuple | None = None,
               keep_state: bool = False) -> RequestFuture:
        """Queue one sequence; its future resolves to an :class:`InferenceResult` or an error.

        ``deadline_s``: seconds from now by which the request must have started (else
        :class:`DeadlineExceeded`); refused at once when the work queued ahead of it and its own cannot
        be done by then at the measured rate. Bad input or a full queue resolve the future at once with
        :class:`Rejected`. Streams (unidirectional models): ``initial_state`` is the ``final_state`` of
        the stream's previous chunk; ``keep_state=True`` puts this chunk's in :attr:`InferenceResult.final_state`.
        """
        future = RequestFuture()
        future.set_running_or_notify_cancel()
        try:
            array = validate_sequence(0, x, self.executor.input_size)
        except SequenceError as exc:
            future.set_exception(Rejected(f"input: {str(exc).removeprefix('sequence 0: ')}", reason="input"))
            return future
        if (initial_state is not None or keep_state) and self.model.bidirectional:
            future.set_exception(Rejected(f"stream: model {self.model.name!r} has a bidirectional layer, which needs "
                                          "the whole sequence; send it in one request", reason="input"))
            return future
        if deadline_s is not None and not deadline_s > 0:
            future.set_exception(Rejected(f"deadline_s: must be a number of seconds > 0, got {deadline_s!r}",
                                          reason="input"))
            return future
        length = len(array)
        with self._lock:
            reason = self._refusal(length, deadline_s)
            if reason is not None:
                future.set_exception(reason)
                return future
            now = self.clock()
            request = self._next_id
            self._next_id += 1
            deadline = math.inf if deadline_s is None else now + deadline_s
            self._requests[request] = self._queued[request] = _Request(future, length, now, deadline, keep_state)
            self._queued_cells += length
            self._inbox.append((request, array, initial_state, keep_state))
            future.request_id = request
            self._lock.notify()
        return future

    def cancel(self, future: Future) -> bool:
        """Ask to drop a submitted request; it leaves its slot at the next step boundary. Returns whether
        it was still unanswered."""
        request = getattr(future, "request_id", -1)
        with self._lock:
            if request not in self._requests:
                return False
            self._cancels.add(request)
            self._lock.notify()
            return True

    def close(self, drain_timeout_s: float = 10.0) -> None:
        """Stop admitting; let admitted requests finish for up to ``drain_timeout_s``; cancel the rest."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(drain_timeout_s)
        with self._lock:
            self._closed = True
            self._cancels.update(self._requests)
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
        else:
            self.poll()

    @property
    def queued_requests(self) -> int:
        with self._lock:
            return len(self._queued)

    @property
    def queued_cells(self) -> int:
        with self._lock:
            return self._queued_cells

    @property
    def in_flight(self) -> int:
        """Requests admitted and not yet answered."""
        with self._lock:
            return len(self._requests)

    @property
    def timesteps_per_s(self) -> float | None:
        """Measured rate: request time-steps (all layers) per second of steps, an exponential average over
        recent steps; ``None`` before the first step."""
        with self._lock:
            return self._rate_timesteps / self._rate_s if self._rate_s > 0 else None

    def _refusal(self, length: int, deadline_s: float | None = None) -> Rejected | None:
        if self._closing:
            return Rejected("engine: closed; not admitting new requests", reason="closed")
        queued = len(self._queued)
        if self.max_queued_requests is not None and queued >= self.max_queued_requests:
            return Rejected(f"queue: {queued} requests queued (max_queued_requests)", self._retry_after_s())
        if self.max_queued_cells is not None and self._queued_cells + length > self.max_queued_cells:
            return Rejected(f"queue: {self._queued_cells} time-steps queued, {length} more exceed "
                            f"max_queued_cells={self.max_queued_cells}", self._retry_after_s())
        if deadline_s is not None and self._rate_s > 0:
            needed_s = (self._queued_cells + length) * self._rate_s / self._rate_timesteps
            if needed_s > deadline_s:
                return Rejected(f"deadline: {self._queued_cells + length} time-steps queued with this request "
                                f"need about {needed_s:.3g} s at the measured rate, over deadline_s={deadline_s:.3g}",
                                self._retry_after_s())
        return None

    def _retry_after_s(self) -> float:
        """Seconds until the queued work is done at the measured rate (1 s before the first step)."""
        if self._rate_s <= 0:
            return 1.0
        return max(0.001, self._queued_cells * self._rate_s / self._rate_timesteps)

    # ---- the worker ---------------------------------------------------------------------------------

    def poll(self) -> float | None:
        """One round: admit, cancel and expire, run at most one step. Returns the clock time at which to
        poll again when idle (``math.inf``: only new work can wake it), or ``None`` right after a step."""
        begin, begin_cpu = self.clock(), time.thread_time()
        step_s, step_cpu_s = self.step_s, self.step_cpu_s
        try:
            return self._round()
        finally:
            self.schedule_s += self.clock() - begin - (self.step_s - step_s)
            self.schedule_cpu_s += time.thread_time() - begin_cpu - (self.step_cpu_s - step_cpu_s)

    def _round(self) -> float | None:
        with self._lock:
            arrivals = list(self._inbox)
            self._inbox.clear()
            cancels = set(self._cancels)
            self._cancels.clear()
        now = self.clock()
        if arrivals:
            ids = np.array([a[0] for a in arrivals], dtype=np.int64)
            for request, array, initial_state, keep_state in arrivals:
                self.executor.add(request, array, initial_state=initial_state, keep_state=keep_state)
            self.policy.on_arrival(ids, np.array([len(a[1]) for a in arrivals], dtype=np.int64), now)
        expired = self._expired(now)
        if cancels or expired:
            self._drop(cancels, Cancelled("request: cancelled"))
            self._drop(expired, DeadlineExceeded("request: its deadline passed while it was queued"))
        step = self.policy.next_step(now)
        if step is None:
            wake = self.policy.wake_time_s()
            with self._lock:
                deadlines = [r.deadline_s for r in self._queued.values()]
            return min([math.inf] + ([wake] if wake is not None else []) + deadlines)
        begin, begin_cpu = self.clock(), time.thread_time()
        if self.energy is not None:
            self.energy.begin_step()
        try:
            self.executor.execute(step)
        except Exception as exc:  # an executor fault: its requests get the error, the others go on
            if self.energy is not None:
                self.energy.end_step(step, self.clock() - begin)
            held = set(step.seg_request.tolist())
            self.policy.cancel(np.array(sorted(held), dtype=np.int64))
            self._answer(held, exc)
            return None
        done = self.policy.on_step_done(step)
        end = self.clock()
        if self.energy is not None:
            self.energy.end_step(step, end - begin)
        self.steps += 1
        self.step_s += end - begin
        self.step_cpu_s += time.thread_time() - begin_cpu
        if self.listener is not None:
            self.listener.on_step(step, end - begin)
        with self._lock:
            self._rate_timesteps = (1 - RATE_DECAY) * self._rate_timesteps + RATE_DECAY * (
                step.useful_cells * self._timesteps_per_step)
            self._rate_s = (1 - RATE_DECAY) * self._rate_s + RATE_DECAY * (end - begin)
            for request in set(step.seg_request.tolist()):
                state = self._queued.pop(request, None)
                if state is not None:
                    state.started_s = begin
                    self._queued_cells -= state.length
            answers = [(self._requests.pop(r), r) for r in done.tolist()]
        for state, request in answers:
            final = self.executor.final_state(request) if state.keep_state else None
            energy_j = self.energy.pop(request) if self.energy is not None else None
            result = InferenceResult(self.executor.pop_result(request), state.started_s - state.admitted_s,
                                     end - state.started_s, final, energy_j)
            state.future.set_result(result)
        return None

    def _expired(self, now: float) -> set[int]:
        with self._lock:
            return {r for r, s in self._queued.items() if s.deadline_s <= now}

    def _drop(self, ids: set[int], error: Exception) -> None:
        if not ids:
            return
        dropped = self.policy.cancel(np.array(sorted(ids), dtype=np.int64))
        for request in dropped.tolist():
            self.executor.forget(request)
        self._answer(set(dropped.tolist()), error)

    def _answer(self, ids: set[int], error: Exception) -> None:
        if self.energy is not None:
            for request in ids:
                self.energy.pop(request)
        with self._lock:
            states = [self._requests.pop(r) for r in ids if r in self._requests]
            for request in ids:
                state = self._queued.pop(request, None)
                if state is not None:
                    self._queued_cells -= state.length
        for state in states:
            state.future.set_exception(error)

    def _serve(self) -> None:
        while True:
            wake = self.poll()
            with self._lock:
                if self._closed and not self._requests and not self._inbox:
                    return
                if self._closing and not self._requests and not self._inbox:
                    return
                if wake is None or self._inbox or self._cancels:
                    continue
                begin = self.clock()
                self._lock.wait(None if wake == math.inf else max(0.0, wake - begin))
                self.idle_s += self.clock() - begin
