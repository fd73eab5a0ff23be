"""``ExecutorBackend``: a real executor as the simulator's backend, pricing each step by its measured time.

With it, :func:`ebatch.simulate` (and :class:`~ebatch.sim.Simulator`) runs the policy against real
arithmetic: the event loop's clock advances by the wall time each step took on this machine (idle gaps
between arrivals are skipped, not slept). :func:`ebatch.bench.measured.measured_vs_simulated` runs the same
policies on a cost model and on the executor and puts the figures side by side::

    import ebatch
    from ebatch.runtime import ExecutorBackend, NumpyExecutor, RNNWeights
    model = ebatch.get_model("lstm-2x512")
    workload = ebatch.Workload.from_dataset("librispeech-test-clean", n=32, seed=0)
    backend = ExecutorBackend(NumpyExecutor(RNNWeights.random(model)), lengths=workload.lengths)
    result = ebatch.simulate(model, workload, "ebatch", hardware=backend, batch_size=16, timesteps=16)

Time: ``time_s`` of a committed step is its measured execution time plus, by default, the host time spent
since the previous step ended (the policy's scheduling, the event loop): what a serving loop would see.
Energy: with a ``meter`` (:mod:`ebatch.hardware.energy`), ``energy_j`` of a step is what the meter counted
over the same window as ``time_s`` (the end of the previous step to the end of this one; an estimate is
told the step's seconds first), and the simulator shares it among the step's requests by their cells.
Without one ``energy_j`` is 0 and the breakdown says so (``energy_measured: 0.0``).
``cost(step, commit=False)`` executes nothing and changes nothing the results depend on: it estimates
from the measured seconds per column of earlier steps of the same (layer, direction), or, before any,
from the step's multiply-accumulates at an assumed 20 GFLOP/s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ebatch.hardware.cost import StepCost
from ebatch.hardware.energy import EnergyMeter
from ebatch.runtime.executor import Executor
from ebatch.step import BatchStep

__all__ = ["ExecutorBackend"]

_ASSUMED_FLOP_PER_S = 20e9


class ExecutorBackend:
    """Simulator backend executing steps on ``executor``; see the module docstring.

    Inputs: ``inputs`` (a sequence or a callable, request id -> array ``[length, input_size]``), or random
    normal features drawn per request from ``seed`` for requests of ``lengths`` (e.g. a workload's).
    ``keep_outputs=False`` (the default) drops results as requests finish, so memory stays bounded.
    Life cycle: the simulator calls ``reset()`` once, then ``cost(step)`` per step.
    """

    notify_latency_s = 0.0

    def __init__(
        self,
        executor: Executor,
        lengths: Sequence[int] | np.ndarray | None = None,
        inputs: Sequence[np.ndarray] | Callable[[int], np.ndarray] | None = None,
        seed: int = 0,
        keep_outputs: bool = False,
        charge_overhead: bool = True,
        meter: EnergyMeter | None = None,
    ) -> None:
        if inputs is None and lengths is None:
            raise ValueError("ExecutorBackend: give the requests' inputs or their lengths (random inputs)")
        self.executor = executor
        self.charge_overhead = charge_overhead
        self.meter = meter
        executor.keep_outputs = keep_outputs
        if inputs is None:
            lengths = np.asarray(lengths, dtype=np.int64)
            size = executor.input_size

            def draw(request: int) -> np.ndarray:
                rng = np.random.default_rng([seed, request])
                return rng.standard_normal((int(lengths[request]), size), dtype=np.float32)

            self._source = draw
        else:
            self._source = inputs if callable(inputs) else inputs.__getitem__
        self.reset()

    def reset(self) -> None:
        self.executor.reset()
        self.executor.source = self._source
        self._last_end_s: float | None = None
        self._last_j: float | None = None
        self._seconds_per_column: dict[tuple[int, int], float] = {}
        self.measured_s = 0.0
        self.overhead_s = 0.0
        self.completed: list[int] = []

    def cost(self, step: BatchStep, commit: bool = True) -> StepCost:
        if not commit:
            return StepCost(time_s=self._estimate(step), energy_j=0.0, breakdown={"estimated": 1.0})
        if self.meter is not None and (self._last_j is None or not self.charge_overhead):
            self._last_j = self.meter.read_j()
        start = time.perf_counter()
        overhead = start - self._last_end_s if self.charge_overhead and self._last_end_s is not None else 0.0
        self.completed.extend(self.executor.execute(step))
        self.executor.synchronize()
        end = time.perf_counter()
        self._last_end_s = end
        measured = end - start
        energy_j = self._energy_j(measured + overhead)
        self.measured_s += measured
        self.overhead_s += overhead
        key = (step.layer, step.direction)
        per_column = measured / step.width
        old = self._seconds_per_column.get(key)
        self._seconds_per_column[key] = per_column if old is None else 0.8 * old + 0.2 * per_column
        layer = self.executor.model.layers[step.layer]
        return StepCost(
            time_s=measured + overhead,
            energy_j=energy_j,
            breakdown={
                "measured_s": measured,
                "overhead_s": overhead,
                "macs": float(step.useful_cells * layer.macs_per_cell),
                "energy_measured": float(self.meter is not None and self.meter.measured),
            },
        )

    def _energy_j(self, busy_s: float) -> float:
        """Joules the meter counted since the last reading (0 without a meter)."""
        if self.meter is None:
            return 0.0
        self.meter.on_busy(busy_s)
        now_j = self.meter.read_j()
        energy_j, self._last_j = now_j - self._last_j, now_j
        return energy_j

    def _estimate(self, step: BatchStep) -> float:
        per_column = self._seconds_per_column.get((step.layer, step.direction))
        if per_column is not None:
            return per_column * step.width
        layer = self.executor.model.layers[step.layer]
        return 2.0 * step.useful_cells * layer.macs_per_cell / _ASSUMED_FLOP_PER_S

