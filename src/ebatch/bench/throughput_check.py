"""Predicted against measured throughput: a calibrated host preset's simulation next to ``Engine.run``.

For each policy, the same requests (lengths from a data set, random features, seed fixed) run offline
(all queued at 0):

- **measured**: ``Engine.run`` on the real executor, ``repeats`` times; the median run is kept (as
  ``ebatch calibrate`` keeps each step's median).
  ``measured_rps`` = requests / the run's CPU seconds on the calling thread (a single-threaded executor
  runs there, so this is the throughput of a core of its own, whatever else the machine runs);
  ``measured_wall_rps`` = requests / wall seconds (what a shared machine gave);
- **predicted**: the simulator with :class:`~ebatch.hardware.host.HostCostModel` of the preset, on the
  same lengths; ``ratio`` = predicted / measured (CPU).

Needs the backend's extra (``torch`` for ``torch``/``compiled``). Bounded: ``len(configs) x repeats``
runs of ``len(lengths)`` requests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ebatch import policies
from ebatch.hardware.host import HostCostModel, HostSpec
from ebatch.runtime.engine import Engine
from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import RNNWeights
from ebatch.sim.engine import Simulator
from ebatch.workload import Workload

__all__ = ["ThroughputCheck", "check_throughput"]


@dataclass(frozen=True)
class ThroughputCheck:
    """One policy's offline throughput: predicted by the preset, measured on the executor."""

    model: str
    label: str
    policy: str
    requests: int
    predicted_rps: float
    measured_rps: float
    measured_wall_rps: float
    params: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Predicted over measured (CPU-time) throughput: 1.0 is exact."""
        return self.predicted_rps / self.measured_rps


def check_throughput(weights: RNNWeights | ModelStages, spec: HostSpec, configs: list[tuple[str, str, dict]],
                     lengths: np.ndarray, backend: str = "torch", repeats: int = 1, seed: int = 0,
                     progress=None) -> list[ThroughputCheck]:
    """One :class:`ThroughputCheck` per ``(label, policy, params)`` of ``configs`` (see the module docstring)."""
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    model = weights.model
    lengths = np.asarray(lengths, dtype=np.int64)
    rng = np.random.default_rng(seed)
    sequences = [rng.standard_normal((int(n), weights.input_size), dtype=np.float32) for n in lengths]
    workload = Workload.from_lengths(lengths, np.zeros(lengths.size), name="offline")
    rows = []
    for label, name, params in configs:
        if progress:
            progress(f"{model.name}: {label}")
        engine = Engine(weights, policy=name, backend=backend, threads=1, **params)
        engine.run(sequences[:2])  # warm-up
        cpu, wall = [], []
        for _ in range(repeats):
            cpu_start, wall_start = time.thread_time(), time.perf_counter()
            engine.run(sequences)
            cpu.append(time.thread_time() - cpu_start)
            wall.append(time.perf_counter() - wall_start)
        cpu_s, wall_s = float(np.median(cpu)), float(np.median(wall))
        simulator = Simulator(model, workload, policies.get(name, **params), HostCostModel(spec, model))
        predicted = simulator.run().result().summary()["throughput_rps"]
        rows.append(ThroughputCheck(model.name, label, name, lengths.size, float(predicted), lengths.size / cpu_s,
                                    lengths.size / wall_s, dict(params)))
    return rows
