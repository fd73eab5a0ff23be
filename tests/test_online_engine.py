"""The online engine: outputs equal the offline runtime's, exactly one answer per request whatever the
schedule of arrivals, cancellations and deadlines (Hypothesis, on an injected clock), admission bounds,
drain, and bookkeeping bounded by the requests in flight."""

from __future__ import annotations

import math
import time
from concurrent.futures import wait

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebatch import policies
from ebatch.model import Layer, RNNModel
from ebatch.runtime import Engine, RNNWeights
from ebatch.runtime.engine import make_executor
from ebatch.serve import Cancelled, DeadlineExceeded, OnlineEngine, Rejected

MODELS = {
    "uni": RNNModel("uni", (Layer("lstm", 3, 4), Layer("lstm", 4, 4))),
    "bi": RNNModel("bi", (Layer("gru", 3, 4, True), Layer("gru", 8, 4, True))),
}


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def reference(weights: RNNWeights, sequences) -> list[np.ndarray]:
    return Engine(weights, policy="sequential", backend="numpy").run(sequences)


def sequences_of(lengths, features: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, features), dtype=np.float32) for n in lengths]


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("policy", ["ebatch", "cellular", "padding"])
def test_threaded_engine_answers_every_request_with_the_offline_output(model, policy):
    weights = RNNWeights.random(MODELS[model], seed=1)
    xs = sequences_of([4, 9, 1, 7, 3, 12, 5, 2], 3)
    engine = OnlineEngine(make_executor(weights, "numpy"), policies.get(policy, batch_size=3))
    try:
        futures = [engine.submit(x) for x in xs]
        wait(futures, timeout=30)
        for future, want in zip(futures, reference(weights, xs)):
            result = future.result(timeout=0)
            np.testing.assert_allclose(result.output, want, rtol=0, atol=1e-5)
            assert result.queue_s >= 0 and result.compute_s >= 0
    finally:
        engine.close(drain_timeout_s=5)
    assert engine.in_flight == 0


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(MODELS)),
    policy=st.sampled_from(policies.available()),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=10),
    events=st.lists(st.tuples(st.sampled_from(["submit", "cancel", "poll", "tick"]), st.integers(0, 9)),
                    max_size=60),
    deadlines=st.lists(st.one_of(st.none(), st.floats(0.5, 5.0)), min_size=10, max_size=10),
)
def test_exactly_one_answer_per_request_on_any_schedule(model, policy, lengths, events, deadlines):
    weights = RNNWeights.random(MODELS[model], seed=2)
    xs = sequences_of(lengths, 3, seed=3)
    want = reference(weights, xs)
    clock = FakeClock()
    params = dict(policies.get(policy).example_params[0])
    engine = OnlineEngine(make_executor(weights, "numpy"), policies.get(policy, **params), clock=clock, start=False)
    futures, submitted = [], 0
    for kind, k in events + [("submit", 0)] * len(xs):
        if kind == "submit" and submitted < len(xs):
            futures.append(engine.submit(xs[submitted], deadline_s=deadlines[submitted]))
            submitted += 1
        elif kind == "cancel" and futures:
            engine.cancel(futures[k % len(futures)])
        elif kind == "poll":
            engine.poll()
        elif kind == "tick":
            clock.now_s += 0.5
    for _ in range(10_000):  # run to completion; every poll either steps or the engine is idle
        if engine.poll() is not None and engine.in_flight == 0:
            break
    assert engine.in_flight == 0
    for i, future in enumerate(futures):
        assert future.done()
        error = future.exception(timeout=0)
        if error is None:
            np.testing.assert_allclose(future.result().output, want[i], rtol=0, atol=1e-5)
        else:
            assert isinstance(error, (Cancelled, DeadlineExceeded)), error
            if isinstance(error, DeadlineExceeded):
                assert deadlines[i] is not None
    assert engine.executor.live_requests == 0


def test_bad_input_and_full_queues_are_refused_without_touching_the_others():
    weights = RNNWeights.random(MODELS["uni"], seed=0)
    clock = FakeClock()
    engine = OnlineEngine(make_executor(weights, "numpy"), policies.get("ebatch", batch_size=2), clock=clock,
                          max_queued_requests=2, max_queued_cells=10, start=False)
    good = engine.submit(np.ones((4, 3), np.float32))
    cases = {
        "features": np.ones((4, 2), np.float32),
        "empty": np.ones((0, 3), np.float32),
        "NaN": np.full((2, 3), np.nan, np.float32),
    }
    for name, x in cases.items():
        error = engine.submit(x).exception(timeout=0)
        assert isinstance(error, Rejected) and str(error).startswith("input:"), name
    over_cells = engine.submit(np.ones((7, 3), np.float32)).exception(timeout=0)
    assert isinstance(over_cells, Rejected) and "max_queued_cells" in str(over_cells) and over_cells.retry_after_s
    second = engine.submit(np.ones((2, 3), np.float32))
    over_count = engine.submit(np.ones((1, 3), np.float32)).exception(timeout=0)
    assert isinstance(over_count, Rejected) and "max_queued_requests" in str(over_count)
    assert isinstance(engine.submit(np.ones((1, 3)), deadline_s=0).exception(timeout=0), Rejected)
    while engine.in_flight:
        engine.poll()
    assert good.result(timeout=0).output.shape == (4, 4) and second.result(timeout=0).output.shape == (2, 4)


def test_deadline_expires_only_while_queued():
    weights = RNNWeights.random(MODELS["uni"], seed=0)
    clock = FakeClock()
    engine = OnlineEngine(make_executor(weights, "numpy"), policies.get("sequential"), clock=clock, start=False)
    first = engine.submit(np.ones((3, 3), np.float32), deadline_s=1.0)
    second = engine.submit(np.ones((3, 3), np.float32), deadline_s=1.0)
    engine.poll()  # the first starts (sequential: one request, layer 0)
    clock.now_s = 2.0  # both deadlines pass: the first is running, the second still queued
    while engine.in_flight:
        engine.poll()
    assert first.result(timeout=0).output.shape == (3, 4)
    assert isinstance(second.exception(timeout=0), DeadlineExceeded)


def test_time_in_steps_and_between_them_is_counted_on_the_engine_clock_and_in_cpu_time():
    weights = RNNWeights.random(MODELS["uni"], seed=0)
    clock = FakeClock()
    executor = make_executor(weights, "numpy")
    execute = executor.execute

    def slow_execute(step):  # every step takes 0.25 s on the engine's clock
        clock.now_s += 0.25
        return execute(step)

    executor.execute = slow_execute
    policy = policies.get("ebatch", batch_size=2, timesteps=2)
    next_step = policy.next_step

    def slow_next_step(now_s):  # every scheduling decision takes 0.1 s: time between steps
        clock.now_s += 0.1
        return next_step(now_s)

    policy.next_step = slow_next_step
    engine = OnlineEngine(executor, policy, clock=clock, start=False)
    futures = [engine.submit(x) for x in sequences_of([3, 5, 2], 3)]
    clock.now_s = 10.0  # time waiting is neither step nor schedule time
    cpu_before, polls = time.thread_time(), 0
    while engine.in_flight:
        engine.poll()
        polls += 1
    cpu_s = time.thread_time() - cpu_before
    assert all(f.result(timeout=0).output.shape[1] == 4 for f in futures)
    assert engine.steps > 0 and engine.step_s == pytest.approx(0.25 * engine.steps)
    assert engine.schedule_s == pytest.approx(0.1 * polls) and engine.idle_s == 0.0  # poll() never waits
    assert min(engine.step_cpu_s, engine.schedule_cpu_s) > 0 and engine.step_cpu_s + engine.schedule_cpu_s <= cpu_s


def test_close_drains_what_was_admitted_then_refuses():
    weights = RNNWeights.random(MODELS["bi"], seed=0)
    engine = OnlineEngine(make_executor(weights, "numpy"), policies.get("ebatch", batch_size=4))
    xs = sequences_of([30] * 50, 3)
    futures = [engine.submit(x) for x in xs]
    engine.close(drain_timeout_s=60)
    assert all(f.done() and f.exception(timeout=0) is None for f in futures)
    assert isinstance(engine.submit(xs[0]).exception(timeout=0), Rejected)


def test_bookkeeping_stays_bounded_over_many_requests():
    weights = RNNWeights.random(MODELS["uni"], seed=0)
    clock = FakeClock()
    policy = policies.get("ebatch", batch_size=4, timesteps=4)
    engine = OnlineEngine(make_executor(weights, "numpy"), policy, clock=clock, start=False)
    rng = np.random.default_rng(0)
    for i in range(2000):
        engine.submit(rng.standard_normal((int(rng.integers(1, 6)), 3), dtype=np.float32))
        if i % 2:
            engine.poll()
            engine.poll()
    while engine.in_flight:
        engine.poll()
    assert policy.lengths.size == 2000 and policy.live_from == 2000
    assert policy.lengths.stored <= 256 and engine.executor.live_requests == 0
    assert not math.isnan(clock())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    policy=st.sampled_from(policies.available()),
    cuts=st.lists(st.integers(1, 29), max_size=5),
)
def test_a_stream_in_chunks_equals_the_whole_sequence(cell, policy, cuts):
    model = RNNModel("uni", (Layer(cell, 3, 4), Layer(cell, 4, 4)))
    weights = RNNWeights.random(model, seed=4)
    x = sequences_of([30], 3, seed=5)[0]
    others = sequences_of([7, 12], 3, seed=6)
    want = reference(weights, [x] + others)
    params = dict(policies.get(policy).example_params[0])
    engine = OnlineEngine(make_executor(weights, "numpy"), policies.get(policy, **params), clock=FakeClock(),
                          start=False)
    bounds = [0] + sorted(set(cuts)) + [30]
    state, parts = None, []
    neighbours = [engine.submit(y) for y in others]  # plain requests batch with the stream's chunks
    for a, b in zip(bounds, bounds[1:]):
        future = engine.submit(x[a:b], initial_state=state, keep_state=True)
        while not future.done():
            engine.poll()
        state = future.result().final_state
        parts.append(future.result().output)
    while engine.in_flight:
        engine.poll()
    np.testing.assert_allclose(np.concatenate(parts), want[0], rtol=0, atol=1e-5)
    for future, expected in zip(neighbours, want[1:]):
        np.testing.assert_allclose(future.result(timeout=0).output, expected, rtol=0, atol=1e-5)
    assert engine.executor.live_requests == 0


def test_streams_refused_on_bidirectional_models_and_deadlines_refused_at_the_measured_rate():
    clock = FakeClock()
    bi = OnlineEngine(make_executor(RNNWeights.random(MODELS["bi"]), "numpy"), policies.get("sequential"),
                      clock=clock, start=False)
    error = bi.submit(np.ones((2, 3), np.float32), keep_state=True).exception(timeout=0)
    assert isinstance(error, Rejected) and error.reason == "input" and "bidirectional" in str(error)

    class TimedClock(FakeClock):
        def __call__(self) -> float:  # every reading advances 1 ms: each step takes about 1 ms
            self.now_s += 0.001
            return self.now_s

    engine = OnlineEngine(make_executor(RNNWeights.random(MODELS["uni"]), "numpy"), policies.get("sequential"),
                          clock=TimedClock(), start=False)
    assert engine.timesteps_per_s is None
    engine.submit(np.ones((10, 3), np.float32))
    while engine.in_flight:
        engine.poll()
    rate = engine.timesteps_per_s
    assert rate is not None and rate > 0
    queued = engine.submit(np.ones((int(rate), 3), np.float32))  # about one second of work
    refused = engine.submit(np.ones((10, 3), np.float32), deadline_s=0.5).exception(timeout=0)
    assert isinstance(refused, Rejected) and refused.reason == "busy" and str(refused).startswith("deadline:")
    assert 0.5 < refused.retry_after_s < 2.0
    engine.cancel(queued)
    engine.poll()
    assert isinstance(queued.exception(timeout=0), Cancelled)


def test_a_whole_model_file_serves_the_offline_outputs(tmp_path):
    pytest.importorskip("safetensors")
    from ebatch.runtime.stagefile import save_stages
    from ebatch.runtime.stages import ModelStages
    from ebatch.serve.service import load_weights

    stages = ModelStages.random(ebatch_model("gnmt-like"), seed=4)
    path = tmp_path / "whole.safetensors"
    save_stages(stages, path)
    loaded = load_weights(str(path))
    xs = sequences_of([5, 2, 9], loaded.input_size, seed=5)
    engine = OnlineEngine(make_executor(loaded, "numpy"), policies.get("ebatch", batch_size=2))
    try:
        got = [f.result(timeout=30).output for f in [engine.submit(x) for x in xs]]
    finally:
        engine.close()
    for a, b in zip(got, Engine(stages, policy="sequential", backend="numpy").run(xs)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def ebatch_model(name: str) -> RNNModel:
    """A mixed stack: a bidirectional LSTM under two unidirectional ones of another size."""
    return RNNModel(name, (Layer("lstm", 3, 4, True), Layer("lstm", 8, 6), Layer("lstm", 6, 6)))
