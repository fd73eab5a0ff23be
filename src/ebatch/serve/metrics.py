"""Prometheus metrics of a server, in base units (seconds, cells, requests); needs ``prometheus-client``.

Defined once here and exported at ``GET /metrics``. Each server gets its own registry, so several apps in
one process (tests) do not collide. docs/serving.md lists every metric with its definition.

- ``ebatch_requests_total{outcome}``: answered requests by outcome (``ok``, ``invalid``, ``too_large``,
  ``busy`` (429), ``deadline`` (504), ``unavailable`` (503, draining), ``cancelled`` (client gone),
  ``error`` (500)).
- ``ebatch_useful_cells_total`` / ``ebatch_padded_cells_total``: cells of the steps run (one cell: one
  time-step of one request through one layer and direction); padded cells are computed and wasted.
- ``ebatch_request_latency_seconds`` (admission to answer, the engine's queue plus compute),
  ``ebatch_queue_wait_seconds``, ``ebatch_compute_seconds``: histograms over successful requests.
- ``ebatch_engine_step_seconds_total{clock}``: time the engine's worker spent in steps, on the wall clock
  (``clock="wall"``) and in the worker thread's CPU time (``clock="cpu"``); cpu / wall is the share of a
  core the steps got (below 1 when other processes, or the server's other threads holding the GIL, delay
  them).
- ``ebatch_window_timesteps``: histogram of the steps' widths (E-BATCH's window length T).
- ``ebatch_queued_requests``, ``ebatch_queued_cells`` (time-steps of queued requests),
  ``ebatch_in_flight_requests`` (admitted, not yet answered),
  ``ebatch_active_slots`` (rows the last step used), ``ebatch_total_slots`` (rows a step has),
  ``ebatch_measured_timesteps_per_second`` (the rate admission uses), ``ebatch_open_streams``: gauges.
- With an energy meter (:mod:`ebatch.serve.energy`), labelled ``source`` (``rapl``, ``nvml`` or ``estimate``):
  ``ebatch_energy_joules_total{source,part}``: joules during steps (``part="steps"``, all attributed to
  requests) and between them (``part="idle"``), read from the ledger at each scrape;
  ``ebatch_request_energy_joules{source}``: histogram of successful requests' energy;
  ``ebatch_energy_meter_info{source,description}``: which meter, in words.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ebatch.serve.energy import EnergyLedger
from ebatch.serve.online import OnlineEngine
from ebatch.serve.outcomes import InferenceResult
from ebatch.step import BatchStep

__all__ = ["CONTENT_TYPE_LATEST", "OUTCOMES", "ServeMetrics"]

OUTCOMES = ("ok", "invalid", "too_large", "busy", "deadline", "unavailable", "cancelled", "error")
_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WINDOW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_ENERGY_BUCKETS_J = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 100.0)


class _EnergyCollector:
    """``ebatch_energy_joules_total`` and ``ebatch_energy_meter_info``, read from the ledger at each scrape."""

    def __init__(self, ledger: EnergyLedger) -> None:
        self.ledger = ledger

    def collect(self):
        totals = self.ledger.totals()
        energy = CounterMetricFamily("ebatch_energy_joules", "Energy during steps (attributed to requests) and "
                                     "between them (idle), by meter.", labels=["source", "part"])
        energy.add_metric([self.ledger.kind, "steps"], totals.steps_j)
        energy.add_metric([self.ledger.kind, "idle"], totals.idle_j)
        yield energy
        info = InfoMetricFamily("ebatch_energy_meter", "The energy meter, in words.")
        info.add_metric([], {"source": self.ledger.kind, "description": self.ledger.source})
        yield info


class _EngineCollector:
    """``ebatch_engine_{step,schedule}_seconds_total{clock}`` and ``ebatch_engine_idle_seconds_total``, read
    from the engine at each scrape."""

    def __init__(self, engine: OnlineEngine) -> None:
        self.engine = engine

    def collect(self):
        seconds = CounterMetricFamily("ebatch_engine_step_seconds", "Time the engine spent in steps: wall clock, "
                                      "and the worker thread's CPU time.", labels=["clock"])
        seconds.add_metric(["wall"], self.engine.step_s)
        seconds.add_metric(["cpu"], self.engine.step_cpu_s)
        yield seconds
        schedule = CounterMetricFamily("ebatch_engine_schedule_seconds", "Time the engine's worker spent between "
                                       "steps admitting, scheduling and answering: wall clock and CPU time.",
                                       labels=["clock"])
        schedule.add_metric(["wall"], self.engine.schedule_s)
        schedule.add_metric(["cpu"], self.engine.schedule_cpu_s)
        yield schedule
        yield CounterMetricFamily("ebatch_engine_idle_seconds", "Time the engine's worker waited for work or for "
                                  "the policy's wake time.", value=self.engine.idle_s)


class ServeMetrics:
    """The metrics of one served model; :meth:`on_step` is the engine's step listener."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("ebatch_requests", "Answered requests by outcome.", ["outcome"], registry=r)
        for outcome in OUTCOMES:
            self.requests.labels(outcome)
        self.useful_cells = Counter("ebatch_useful_cells", "Cells computed for requests.", registry=r)
        self.padded_cells = Counter("ebatch_padded_cells", "Cells computed as padding (wasted).", registry=r)
        self.latency = Histogram("ebatch_request_latency_seconds", "Admission to answer, successful requests.",
                                 buckets=_LATENCY_BUCKETS_S, registry=r)
        self.queue_wait = Histogram("ebatch_queue_wait_seconds", "Admission to the first step holding the request.",
                                    buckets=_LATENCY_BUCKETS_S, registry=r)
        self.compute = Histogram("ebatch_compute_seconds", "First step holding the request to its last step's end.",
                                 buckets=_LATENCY_BUCKETS_S, registry=r)
        self.window = Histogram("ebatch_window_timesteps", "Width of each step (time-steps per slot).",
                                buckets=_WINDOW_BUCKETS, registry=r)
        self.active_slots = Gauge("ebatch_active_slots", "Slots (rows) the last step used.", registry=r)
        self.total_slots = Gauge("ebatch_total_slots", "Slots (rows) of a step: the batch size.", registry=r)
        self.queued_requests = Gauge("ebatch_queued_requests", "Admitted requests no step has held yet.", registry=r)
        self.queued_cells = Gauge("ebatch_queued_cells", "Time-steps of the queued requests.", registry=r)
        self.in_flight = Gauge("ebatch_in_flight_requests", "Admitted requests not yet answered.", registry=r)
        self.rate = Gauge("ebatch_measured_timesteps_per_second", "Request time-steps per second of steps, "
                          "recent average (admission's estimate).", registry=r)
        self.open_streams = Gauge("ebatch_open_streams", "Streams holding server-side state.", registry=r)
        self.request_energy = Histogram("ebatch_request_energy_joules", "Energy of each successful request: its "
                                        "share of its steps' energy.", ["source"], buckets=_ENERGY_BUCKETS_J,
                                        registry=r)
        self._energy_source: str | None = None

    def watch(self, engine: OnlineEngine, open_streams: Callable[[], int]) -> None:
        """Read the queue gauges from ``engine`` (and the stream count) and its energy ledger at each scrape."""
        self.queued_requests.set_function(lambda: engine.queued_requests)
        self.queued_cells.set_function(lambda: engine.queued_cells)
        self.in_flight.set_function(lambda: engine.in_flight)
        self.rate.set_function(lambda: engine.timesteps_per_s or 0.0)
        self.open_streams.set_function(open_streams)
        self.registry.register(_EngineCollector(engine))
        if engine.energy is not None:
            self._energy_source = engine.energy.kind
            self.request_energy.labels(self._energy_source)
            self.registry.register(_EnergyCollector(engine.energy))

    def on_step(self, step: BatchStep, duration_s: float) -> None:
        self.useful_cells.inc(step.useful_cells)
        self.padded_cells.inc(step.padded_cells)
        self.window.observe(step.width)
        self.active_slots.set(step.occupied_rows)
        self.total_slots.set(step.slots)

    def answered(self, outcome: str, result: InferenceResult | None = None) -> None:
        self.requests.labels(outcome).inc()
        if result is not None:
            self.latency.observe(result.queue_s + result.compute_s)
            self.queue_wait.observe(result.queue_s)
            self.compute.observe(result.compute_s)
            if result.energy_j is not None and self._energy_source is not None:
                self.request_energy.labels(self._energy_source).observe(result.energy_j)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
