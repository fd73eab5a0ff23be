"""``timesteps="auto"``: parameter validation, the fill rule, learning window times, and invariants (Hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ebatch
from ebatch.hardware import StepCost
from ebatch.policies.auto import DEFAULT_MAX_TIMESTEPS


def test_auto_is_accepted_and_validated():
    policy = ebatch.policies.get("ebatch", timesteps="auto", latency_slo_s=0.5, min_timesteps=2, max_timesteps=64)
    assert policy.params()["timesteps"] == "auto"
    assert policy.params()["latency_slo_s"] == 0.5
    for bad, field in [
        ({"timesteps": "fast"}, "timesteps"),
        ({"timesteps": 0}, "timesteps"),
        ({"timesteps": 16, "latency_slo_s": 1.0}, "latency_slo_s"),
        ({"timesteps": 16, "max_timesteps": 8}, "max_timesteps"),
        ({"timesteps": "auto", "latency_slo_s": -1.0}, "latency_slo_s"),
        ({"timesteps": "auto", "min_timesteps": 0}, "min_timesteps"),
        ({"timesteps": "auto", "min_timesteps": 9, "max_timesteps": 8}, "min_timesteps"),
    ]:
        with pytest.raises(ValueError, match=field):
            ebatch.policies.get("ebatch", **bad)


def test_without_slo_the_window_spreads_the_queue_over_the_slots():
    lengths = [5, 9, 3, 7, 11, 2, 6, 4]  # 47 time-steps queued at 0, B = 4 -> T = ceil(47 / 4) = 12
    result = ebatch.simulate("tiny-lstm", ebatch.Workload.from_lengths(lengths), "ebatch", "epur",
                             batch_size=4, timesteps="auto")
    assert result.policy.auto.chosen[0] == math.ceil(sum(lengths) / 4)
    assert result.summary()["completed"] == len(lengths)


class LinearBackend:
    """A backend whose step takes ``1 ms x width``: the controller should learn that from the clock alone."""

    notify_latency_s = 0.0

    def reset(self) -> None:
        pass

    def cost(self, step, commit: bool = True) -> StepCost:
        return StepCost(time_s=1e-3 * step.width, energy_j=1e-3, breakdown={})


def test_the_controller_learns_window_time_from_the_clock():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=200)
    arrivals = np.cumsum(rng.exponential(0.01, size=200))
    result = ebatch.simulate("tiny-lstm", ebatch.Workload.from_lengths(lengths, arrivals), "ebatch", LinearBackend(),
                             batch_size=4, timesteps="auto", latency_slo_s=0.5)
    model = result.policy.auto.model
    layers = 2  # tiny-lstm: two unidirectional layers, each a step of `width` columns
    for width in (8, 32, 100):
        assert model.predict(width, 4) == pytest.approx(layers * 1e-3 * width, rel=1e-6)


@pytest.mark.parametrize("mode", ["pack", "stream"])
def test_auto_meets_the_slo_with_fewer_windows_and_pack_holds_for_less_energy(mode):
    work = ebatch.Workload.from_dataset("wmt21-en-de", n=300, arrival="poisson", rate_rps=20.0, seed=1)
    fixed = ebatch.simulate("gnmt-enc", work, "ebatch", "epur", batch_size=16, timesteps=16,
                            bidirectional=mode).summary()
    slo = 3 * fixed["latency_p99_s"]
    result = ebatch.simulate("gnmt-enc", work, "ebatch", "epur", batch_size=16, timesteps="auto", latency_slo_s=slo,
                             bidirectional=mode)
    auto = result.summary()
    assert result.policy.auto.held > 0
    assert auto["steps"] < fixed["steps"]  # fewer, fuller windows
    assert auto["latency_p99_s"] <= slo
    if mode == "pack":  # streaming stages rarely all idle at once, so they seldom hold (see the closing note)
        assert auto["energy_per_request_j"] < fixed["energy_per_request_j"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    gaps=st.lists(st.floats(0.0, 0.01, allow_nan=False), min_size=30, max_size=30),
    model=st.sampled_from(["tiny-lstm", "tiny-bilstm", "tiny-gru"]),
    mode=st.sampled_from(["stream", "pack"]),
    hardware=st.sampled_from(["epur", "tpu-v1"]),
    batch_size=st.integers(1, 6),
    low=st.integers(1, 8),
    span=st.integers(0, 64),
    slo=st.one_of(st.none(), st.floats(1e-5, 0.5)),
)
def test_invariants_t_within_bounds_and_every_request_completes(lengths, gaps, model, mode, hardware, batch_size,
                                                               low, span, slo):
    arrivals = np.cumsum(gaps[: len(lengths)])
    work = ebatch.Workload.from_lengths(lengths, arrivals)
    result = ebatch.simulate(model, work, "ebatch", hardware, batch_size=batch_size, timesteps="auto",
                             latency_slo_s=slo, min_timesteps=low, max_timesteps=low + span, bidirectional=mode)
    chosen = result.policy.auto.chosen
    assert chosen and all(low <= t <= low + span for t in chosen)
    summary = result.summary()
    assert summary["completed"] == len(lengths)
    requests = result.requests
    assert (requests["start_s"] >= requests["arrival_s"] - 1e-12).all()
    assert (requests["finish_s"] >= requests["start_s"]).all()
    assert result.steps["useful_cells"].sum() == sum(lengths) * result.model.cells_per_timestep  # no cell lost


def test_default_bounds():
    result = ebatch.simulate("tiny-lstm", ebatch.Workload.from_lengths([10] * 3), "ebatch", "epur",
                             batch_size=2, timesteps="auto")
    auto = result.policy.auto
    assert (auto.min_timesteps, auto.max_timesteps) == (1, DEFAULT_MAX_TIMESTEPS)
