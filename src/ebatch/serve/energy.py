"""``EnergyLedger``: a served model's energy, per request and idle, from an energy meter.

The online engine reads the meter at the start and at the end of every step. What it counted in between
is the step's energy ``E_k``, shared by the requests the step held in proportion to their cells (the
simulator's rule, docs/metrics.md)::

    energy_j(request r) = sum over steps k holding r of  E_k x cells_k(r) / useful_cells_k

so the padded cells' share goes to the requests beside them, and the shares of a step add up to ``E_k``.
What the meter counted between steps (waiting for arrivals, admission, answering) is **idle** energy,
kept apart and attributed to no request. Identity: ``steps_j`` (every step's energy) equals the sum of
every request's energy, whether it was answered, failed, cancelled or is still in flight; ``steps_j +
idle_j`` is all the meter counted since the engine started. With an estimate (``power_w x busy time``)
idle energy is 0 by construction.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

from ebatch.hardware.energy import EnergyMeter
from ebatch.step import BatchStep

__all__ = ["EnergyLedger", "EnergyTotals"]


@dataclass(frozen=True)
class EnergyTotals:
    """Joules since the engine started: during steps (all attributed to requests) and between them."""

    steps_j: float
    idle_j: float


class EnergyLedger:
    """Books a meter's joules to steps, requests and idle time. The engine's worker calls :meth:`begin_step`,
    :meth:`end_step` and :meth:`pop`; :meth:`totals` may be called from any thread (a metrics scrape)."""

    def __init__(self, meter: EnergyMeter) -> None:
        self.meter = meter
        self._lock = threading.Lock()
        self._requests: defaultdict[int, float] = defaultdict(float)
        self._steps_j = 0.0
        self._idle_j = 0.0
        self._in_step = False
        self._mark_j = meter.read_j()  # the meter at the last step boundary

    @property
    def kind(self) -> str:
        return self.meter.kind

    @property
    def source(self) -> str:
        return self.meter.source

    def begin_step(self) -> None:
        """A step starts: the energy since the last one ended was idle."""
        with self._lock:
            now_j = self.meter.read_j()
            self._idle_j += now_j - self._mark_j
            self._mark_j, self._in_step = now_j, True

    def end_step(self, step: BatchStep, duration_s: float) -> float:
        """The step ended after ``duration_s`` seconds: share its energy among its requests; returns it."""
        self.meter.on_busy(duration_s)
        with self._lock:
            now_j = self.meter.read_j()
            energy_j = now_j - self._mark_j
            self._mark_j, self._in_step = now_j, False
            self._steps_j += energy_j
            if step.useful_cells:
                shares = energy_j * step.seg_length / step.useful_cells
                for request, share in zip(step.seg_request.tolist(), shares.tolist()):
                    self._requests[request] += share
        return energy_j

    def pop(self, request: int) -> float:
        """The request's energy so far (0 if no step held it), forgetting it."""
        with self._lock:
            return self._requests.pop(request, 0.0)

    def totals(self) -> EnergyTotals:
        """Energy of the steps so far, and idle energy up to now (an idle period in progress included)."""
        with self._lock:
            idle_j = self._idle_j
            if not self._in_step:
                idle_j += self.meter.read_j() - self._mark_j
            return EnergyTotals(self._steps_j, idle_j)
