"""The real executor as the simulator's backend (measured time), the side-by-side comparison, ``ebatch bench``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ebatch
from ebatch.bench.measured import measured_vs_simulated
from ebatch.model import get_model
from ebatch.runtime import ExecutorBackend, NumpyExecutor, RNNWeights
from ebatch.sim import Simulator

MODEL = get_model("tiny-bilstm")


def workload(arrivals=None):
    return ebatch.Workload.from_lengths([5, 1, 9, 3, 7, 2], arrivals_s=arrivals)


@pytest.mark.parametrize("policy", ["sequential", "padding", "cellular", "ebatch"])
def test_simulate_with_measured_time(policy):
    wl = workload([0, 0, 1e-4, 2e-4, 2e-4, 5e-4])
    backend = ExecutorBackend(NumpyExecutor(RNNWeights.random(MODEL)), lengths=wl.lengths)
    params = {} if policy == "sequential" else {"batch_size": 2}
    result = ebatch.simulate(MODEL, wl, policy, hardware=backend, **params)
    summary = result.summary()
    assert summary["completed"] == len(wl)
    assert summary["energy_j"] == 0.0  # energy is not measured
    steps = result.steps
    assert (steps["time_s"] > 0).all()
    assert steps["time_s"].sum() == pytest.approx(backend.measured_s + backend.overhead_s)
    assert sorted(backend.completed) == list(range(len(wl)))
    assert backend.executor.live_requests == 0  # everything freed


def test_estimate_neither_executes_nor_changes_state():
    wl = workload()
    ex = NumpyExecutor(RNNWeights.random(MODEL))
    backend = ExecutorBackend(ex, lengths=wl.lengths)
    policy = ebatch.policies.get("cellular", batch_size=3)
    policy.start(MODEL)
    policy.on_arrival(np.arange(len(wl)), wl.lengths, 0.0)
    step = policy.next_step(0.0)
    before = (ex.steps, ex.useful_cells, ex.live_requests, backend.measured_s)
    estimate = backend.cost(step, commit=False)
    assert estimate.time_s > 0 and estimate.energy_j == 0.0
    assert (ex.steps, ex.useful_cells, ex.live_requests, backend.measured_s) == before
    backend.cost(step)
    assert ex.steps == 1 and ex.useful_cells == step.useful_cells


def test_outputs_through_the_simulator_equal_the_engines():
    wl = workload([0, 0.001, 0.002, 0.002, 0.003, 0.01])
    weights = RNNWeights.random(MODEL, seed=4)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((n, 8), dtype=np.float32) for n in wl.lengths]
    backend = ExecutorBackend(NumpyExecutor(weights), inputs=inputs, keep_outputs=True)
    Simulator(MODEL, wl, ebatch.policies.get("ebatch", batch_size=2, timesteps=4), backend).run()
    expected = ebatch.runtime.Engine(weights, policy="sequential").run(inputs)
    for i, want in enumerate(expected):
        np.testing.assert_allclose(backend.executor.pop_result(i), want, rtol=0, atol=1e-6)


def test_random_inputs_are_deterministic_per_request():
    ex = NumpyExecutor(RNNWeights.random(MODEL))
    a = ExecutorBackend(ex, lengths=[3, 4], seed=1)._source(1)
    b = ExecutorBackend(ex, lengths=[3, 4], seed=1)._source(1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 8)
    with pytest.raises(ValueError, match="inputs or their lengths"):
        ExecutorBackend(ex)


def test_measured_vs_simulated_side_by_side():
    table = measured_vs_simulated("tiny-lstm", workload([0, 0, 0, 1e-3, 1e-3, 2e-3]),
                                  [("padding", {"batch_size": 2}), ("ebatch", {"batch_size": 2, "timesteps": 4})])
    assert list(table["policy"]) == ["padding", "ebatch"]
    for column in ("sim_throughput_rps", "measured_throughput_rps", "sim_latency_p99_s", "measured_latency_p99_s"):
        assert (table[column] > 0).all()
    assert set(table["hardware"]) == {"epur"} and set(table["executor"]) == {"numpy"}


def test_bench_command_json_and_markdown(tmp_path, capsys):
    pytest.importorskip("torch")
    from ebatch.cli import main

    out = tmp_path / "bench.md"
    out.write_text("# Benchmarks\n\n<!-- simulator:begin -->\nkept\n<!-- simulator:end -->\n")
    main(["bench", "--quick", "--models", "tiny-lstm,tiny-gru", "--requests", "6", "--batch-size", "2",
          "--timesteps", "3", "--format", "json", "--out", str(out)])
    rows = json.loads(capsys.readouterr().out)
    required = {"name", "batch_size", "sequences_per_s", "useful_cells_per_s", "latency_p50_s", "latency_p99_s",
                "efficiency"}
    assert all(required <= set(row) for row in rows)
    names = {row["name"] for row in rows}
    assert {"sequential", "padding", "padding sort_window", "cellular", "ebatch T=3", "torch.nn padded",
            "torch.nn packed"} <= names
    assert {row["load"] for row in rows} == {"offline", "poisson 0.6"}
    assert all(row["sequences_per_s"] > 0 and row["batch_size"] == 2 for row in rows)
    errors = [row["max_abs_error"] for row in rows if row["max_abs_error"] is not None]
    assert errors and max(errors) < 1e-5
    text = out.read_text()
    assert "kept" in text and "<!-- runtime-quick:begin -->" in text and "### tiny-gru" in text  # --quick: own section


def test_bench_command_rejects_bad_options(capsys):
    from ebatch.cli import main

    for argv, message in (
        (["bench", "--models", "nope"], "unknown model 'nope'"),
        (["bench", "--timesteps", "a"], "timesteps"),
        (["bench", "--backends", "jax"], "backends"),
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert message in capsys.readouterr().err
