"""Per-request energy: a step's energy is shared by its requests' cells and the shares add up to what the
meter counted (ledger, online engine, runtime Engine); idle energy is kept apart; a live server sends the
header and the metrics, and loadgen reads them."""

from __future__ import annotations

import numpy as np
import pytest

import ebatch
from ebatch import policies
from ebatch.hardware.energy import EnergyMeter, PowerEstimate
from ebatch.model import Layer, RNNModel
from ebatch.runtime import Engine, RNNWeights
from ebatch.runtime.engine import make_executor
from ebatch.serve import OnlineEngine
from ebatch.serve.energy import EnergyLedger
from ebatch.step import BatchStep

MODEL = RNNModel("uni", (Layer("lstm", 3, 4), Layer("lstm", 4, 4)))


class TickMeter(EnergyMeter):
    """A counter that moves only when the test (or ``tick_j`` per read) says so; pretends to measure."""

    kind, source = "rapl", "fake RAPL"

    def __init__(self, tick_j: float = 0.0) -> None:
        self.value_j, self.tick_j = 0.0, tick_j

    def read_j(self) -> float:
        self.value_j += self.tick_j
        return self.value_j


def test_ledger_shares_a_step_by_cells_and_keeps_idle_apart():
    meter = TickMeter()
    ledger = EnergyLedger(meter)
    # width 4: request 7 holds 4 cells of row 0, request 9 two cells of row 1 (the rest of row 1 is padding)
    step = BatchStep(0, 0, 4, 2, [0, 1], [0, 0], [7, 9], [0, 0], [4, 2], [True, True])
    meter.value_j = 5.0  # idle before the step
    ledger.begin_step()
    meter.value_j = 8.0
    assert ledger.end_step(step, 0.1) == pytest.approx(3.0)
    meter.value_j = 8.5  # idle after it, counted up to now by totals()
    totals = ledger.totals()
    assert (totals.steps_j, totals.idle_j) == (pytest.approx(3.0), pytest.approx(5.5))
    assert ledger.pop(7) == pytest.approx(2.0) and ledger.pop(9) == pytest.approx(1.0)
    assert ledger.pop(9) == 0.0  # forgotten once popped


def test_online_engine_requests_energy_adds_up_to_the_steps_energy():
    clock_s = [0.0]
    meter = TickMeter(tick_j=1.0)  # every reading moves by 1 J: each step counts 1 J, each gap 1 J
    ledger = EnergyLedger(meter)
    weights = RNNWeights.random(MODEL, seed=1)
    engine = OnlineEngine(make_executor(weights, "numpy"), policies.get("padding", batch_size=2),
                          clock=lambda: clock_s[0], start=False, energy=ledger)
    futures = [engine.submit(np.ones((n, 3), np.float32)) for n in (5, 2, 7)]
    for _ in range(50):
        if all(f.done() for f in futures):
            break
        engine.poll()
        clock_s[0] += 0.01
    energies = [f.result(timeout=0).energy_j for f in futures]
    assert all(e > 0 for e in energies)
    assert sum(energies) == pytest.approx(ledger.totals().steps_j) == pytest.approx(engine.steps * 1.0)
    assert ledger.totals().idle_j > 0
    # padding: requests 0 and 1 share a batch padded to 5 columns, yet split its energy 5:2 by their cells
    assert energies[0] / energies[1] == pytest.approx(5 / 2)


def test_runtime_engine_energy_is_power_times_busy_time_and_shared_by_requests():
    meter = PowerEstimate(20.0, "test")
    weights = RNNWeights.random(MODEL, seed=2)
    engine = Engine(weights, policy="ebatch", batch_size=2, timesteps=3, backend="numpy", energy=meter)
    engine.run([np.ones((n, 3), np.float32) for n in (4, 9, 2)])
    stats = engine.stats()
    assert stats["energy_j"] == pytest.approx(meter.read_j()) and stats["energy_j"] > 0
    assert stats["energy_per_request_j"] == pytest.approx(stats["energy_j"] / 3)
    assert stats["energy_source"] == "estimate (test: 20 W x busy time)"
    from ebatch.runtime import ExecutorBackend

    backend = ExecutorBackend(make_executor(weights, "numpy"), lengths=[4, 9, 2], meter=PowerEstimate(20.0, "t"))
    result = ebatch.simulate(MODEL, ebatch.Workload.from_lengths([4, 9, 2]), "cellular", backend, batch_size=2)
    summary = result.summary()
    assert summary["energy_j"] == pytest.approx(20.0 * summary["busy_s"])
    assert result.requests["energy_j"].sum() == pytest.approx(summary["energy_j"])


def test_live_server_sends_energy_header_and_metrics_and_loadgen_reads_them(tmp_path):
    pytest.importorskip("fastapi")
    import httpx

    from ebatch.bench.loadgen import run_load
    from ebatch.bench.loadgen_report import runs_table
    from ebatch.bench.schedule import make_schedule
    from ebatch.serve.codec import NPY, encode_npy
    from ebatch.serve.service import ServeConfig
    from servetools import live_server, metric_values

    (tmp_path / "w.csv").write_text("length\n" + "\n".join(str(n) for n in [5, 12, 30, 8, 20, 3]) + "\n")
    config = ServeConfig(model="tiny-lstm", batch_size=4, timesteps=4, energy="estimate", hardware="h200")
    with live_server(config) as (url, _):
        answer = httpx.post(f"{url}/v1/models/tiny-lstm/infer?outputs=last", content=encode_npy(
            np.ones((6, 8), np.float32)), headers={"content-type": NPY}, timeout=10)
        assert answer.headers["x-energy-source"] == "estimate" and float(answer.headers["x-energy-joules"]) > 0
        assert answer.json()["energy_j"] == pytest.approx(float(answer.headers["x-energy-joules"]), rel=1e-5)
        chunk_j = _stream_chunk_energy_j(url)
        schedule = make_schedule(str(tmp_path / "w.csv"), "poisson", 50.0, requests=12, seed=1)
        run = run_load(schedule, url, slo_p99_s=5.0, timeout_s=10)
        values = metric_values(httpx.get(f"{url}/metrics", timeout=10).text)
    result = run.result
    assert result.ok == 12 and result.energy_source == "estimate"
    assert 0 < result.energy_j_p50 <= result.energy_j_p99 and result.energy_j_mean > 0
    steps_j = values['ebatch_energy_joules_total{part="steps",source="estimate"}']
    assert values['ebatch_energy_joules_total{part="idle",source="estimate"}'] == 0  # an estimate has no idle
    # every step's energy went to the 13 requests and the stream's chunk: the histogram's sum is the total
    assert values['ebatch_request_energy_joules_count{source="estimate"}'] == 14
    assert values['ebatch_request_energy_joules_sum{source="estimate"}'] == pytest.approx(steps_j)
    headers_j = sum(r.energy_j for r in run.records) + float(answer.headers["x-energy-joules"]) + chunk_j
    assert headers_j == pytest.approx(steps_j, rel=1e-4)
    assert "J/req" in runs_table([result]) and "estimate" in runs_table([result])


def _stream_chunk_energy_j(url: str) -> float:
    """One chunk over the WebSocket stream: its JSON answer carries the chunk's energy and the meter's kind."""
    import json

    from websockets.sync.client import connect

    with connect(url.replace("http://", "ws://") + "/v1/models/tiny-lstm/stream") as ws:
        ws.send(json.dumps(np.ones((7, 8)).tolist()))
        answer = json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"end": True}))
    assert answer["energy_source"] == "estimate" and answer["energy_j"] > 0 and len(answer["output"]) == 7
    return answer["energy_j"]
