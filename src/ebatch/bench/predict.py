"""The load generator's runs, simulated: what ``ebatch loadgen`` would measure, predicted from a host preset.

:func:`simulated_load` plays a :class:`~ebatch.bench.schedule.Schedule` (the same lengths and send times
``loadgen`` sends) through the simulator with the calibrated host cost model, as ``ebatch serve``'s online
engine runs it: every step whole (a run of cellular invocations is not cut when a request arrives),
completions answered when their step ends. :func:`simulated_max_rate` runs the loadgen's own
:func:`~ebatch.bench.maxrate.find_max_rate` search on it, so the prediction and the measurement differ
only in where each probe runs.

Modelling assumptions, stated:

- **Server overhead per request** (``request_overhead_s``): HTTP, encoding and decoding add a constant
  to each latency, outside the engine. ``benchmarks/capacity.py`` measures it on an idle server as the
  client's latency minus the server's own queue + compute time (docs/serving.md reports 4-5 ms).
- **A shared machine** (``cpu_share``): the preset's costs are those of a core of its own
  (``ebatch calibrate`` times the thread's CPU); when the engine's thread gets only a share of a core
  while it runs, each step takes ``1 / cpu_share`` times longer (:meth:`HostSpec.on_shared_core`).
- Policy bookkeeping between steps takes no time (measured at 1-2 % of ``Engine.run``'s wall time).
- A request over ``timeout_s`` counts as an error (infinite latency), as loadgen counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebatch import policies
from ebatch.bench.loadgen import LoadResult, RequestRecord, summarize
from ebatch.bench.maxrate import MaxRateSearch, find_max_rate
from ebatch.bench.schedule import Schedule, make_schedule
from ebatch.hardware.host import HostCostModel, HostSpec
from ebatch.model import RNNModel
from ebatch.sim.engine import Simulator
from ebatch.sim.results import SimulationResult
from ebatch.workload import Workload

__all__ = ["ServerModel", "SimulatedLoad", "capacity_rps", "simulate_load", "simulated_load", "simulated_max_rate"]


@dataclass(frozen=True)
class ServerModel:
    """What the simulation of ``ebatch serve`` needs: the model, its host preset, the policy and the
    server's fixed costs (see the module docstring)."""

    model: RNNModel
    spec: HostSpec
    policy: str
    params: dict
    request_overhead_s: float = 0.0
    cpu_share: float = 1.0

    def __post_init__(self) -> None:
        if not self.request_overhead_s >= 0:
            raise ValueError(f"request_overhead_s: must be >= 0 seconds, got {self.request_overhead_s}")
        if not 0 < self.cpu_share <= 1:
            raise ValueError(f"cpu_share: must be in (0, 1], got {self.cpu_share}")
        policies.get(self.policy, **self.params)  # an unknown policy or parameter fails here, named


def _simulate(server: ServerModel, workload: Workload) -> SimulationResult:
    spec = server.spec if server.cpu_share == 1 else server.spec.on_shared_core(server.cpu_share)
    policy = policies.get(server.policy, **server.params)
    return Simulator(server.model, workload, policy, HostCostModel(spec, server.model), cut_runs=False).run().result()


@dataclass(frozen=True)
class SimulatedLoad:
    """A simulated loadgen run: what loadgen would report, and the seconds the server's steps were busy
    (the sum of the steps' prices at the server model's speed and share)."""

    result: LoadResult
    busy_s: float


def simulate_load(server: ServerModel, schedule: Schedule, slo_p99_s: float, timeout_s: float = 30.0,
                  label: str = "") -> SimulatedLoad:
    """``schedule`` played against ``server``, simulated: the :class:`LoadResult` loadgen would report and the
    steps' busy time."""
    if not slo_p99_s > 0:
        raise ValueError(f"slo-p99-s: must be > 0 seconds, got {slo_p99_s}")
    result = _simulate(server, Workload.from_lengths(schedule.lengths, schedule.send_s, name=schedule.workload))
    queue_s = result.start_s - schedule.send_s
    compute_s = result.finish_s - result.start_s
    latency_s = result.finish_s - schedule.send_s + server.request_overhead_s
    records = [RequestRecord(float(send), int(length), 200 if lat <= timeout_s else 0,
                             float(lat) if lat <= timeout_s else float("nan"), float(q), float(c), 0.0)
               for send, length, lat, q, c in zip(schedule.send_s, schedule.lengths, latency_s, queue_s, compute_s)]
    summary = summarize(records, schedule, slo_p99_s, server.model.name, label or f"{server.policy} (simulated)")
    return SimulatedLoad(summary, float(result.summary()["busy_s"]))


def simulated_load(server: ServerModel, schedule: Schedule, slo_p99_s: float, timeout_s: float = 30.0,
                   label: str = "") -> LoadResult:
    """The :class:`LoadResult` loadgen would report for ``schedule`` against ``server``, simulated."""
    return simulate_load(server, schedule, slo_p99_s, timeout_s, label).result


def simulated_max_rate(server: ServerModel, workload: str, arrival: str, slo_p99_s: float, start_rps: float,
                       requests: int | None = None, duration_s: float | None = None, cv: float = 1.0,
                       seed: int = 0, rel_tolerance: float = 0.1, max_probes: int = 8,
                       timeout_s: float = 30.0) -> MaxRateSearch:
    """:func:`find_max_rate` with simulated probes: each probe's schedule is what ``ebatch loadgen
    --find-max-rate`` with the same options sends at that rate."""

    def probe(rate_rps: float) -> LoadResult:
        schedule = make_schedule(workload, arrival, rate_rps, requests, duration_s, cv, seed)
        return simulated_load(server, schedule, slo_p99_s, timeout_s)

    return find_max_rate(probe, start_rps, rel_tolerance, max_probes)


def capacity_rps(server: ServerModel, lengths: np.ndarray) -> float:
    """Simulated offline throughput (requests/s) of ``server`` on ``lengths`` all queued at 0: a rate
    to start a search from."""
    result = _simulate(server, Workload.from_lengths(lengths, np.zeros(len(lengths)), name="offline"))
    return float(result.summary()["throughput_rps"])
