"""Policies in a long-running process: cancellation between steps, and bookkeeping that stays bounded.

A small driver plays the engine's part (arrivals, ``next_step``, ``on_step_done``, ``cancel`` between
steps) without a cost model, so random schedules of arrivals and cancellations can be checked for every
registered policy with each of its example parameter sets.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ebatch
from simtools import BI1, MIX, UNI_BI

POLICIES = ebatch.policies.available()
MODELS = ["tiny-lstm", "tiny-bilstm", MIX, UNI_BI, BI1]


def drive(policy, model, lengths, arrive_at, cancel_at, max_steps=20_000):
    """Run ``policy`` step by step: request i arrives before step ``arrive_at[i]``; the requests in
    ``cancel_at[k]`` are cancelled before step k. Returns (completed ids in order, cancelled ids, cells).
    """
    model = ebatch.get_model(model)
    policy.start(model)
    n = len(lengths)
    completed, cancelled = [], []
    cells = defaultdict(list)  # (request, layer, direction, position) -> step indices
    arrived = 0
    step_index = 0
    while len(completed) + len(cancelled) < n:
        assert step_index < max_steps, "the policy stopped making progress"
        while arrived < n and arrive_at[arrived] <= step_index:
            policy.on_arrival(np.array([arrived]), np.array([lengths[arrived]]), float(step_index))
            arrived += 1
        if cancel_at.get(step_index):
            live = [r for r in cancel_at[step_index] if r < arrived]
            cancelled.extend(policy.cancel(np.array(live, dtype=np.int64)).tolist())
        step = policy.next_step(float(step_index))
        if step is None:  # waiting for arrivals, or for a wake time (padding's max_wait_s)
            finished = len(completed) + len(cancelled) == n
            assert arrived < n or finished or policy.wake_time_s() is not None, "idle with work and no wake time"
            step_index += 1
            continue
        held = set(step.seg_request.tolist())
        assert not held & set(cancelled), "a cancelled request is still scheduled"
        sign = 1 if step.direction == 0 else -1
        for req, start, length in zip(step.seg_request, step.seg_start, step.seg_length):
            for j in range(int(length)):
                cells[(int(req), step.layer, step.direction, int(start + sign * j))].append(step_index)
        completed.extend(policy.on_step_done(step).tolist())
        step_index += 1
    return completed, cancelled, cells


@st.composite
def schedules(draw):
    n = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    arrive_at = sorted(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)))
    cancel_at = defaultdict(list)
    for request in draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True)):
        cancel_at[draw(st.integers(0, 60))].append(request)
    return lengths, arrive_at, dict(cancel_at)


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cancel_frees_a_request_and_leaves_the_others_alone(policy, data):
    model = data.draw(st.sampled_from(MODELS), label="model")
    params = data.draw(st.sampled_from(ebatch.policies.get(policy).example_params), label="params")
    lengths, arrive_at, cancel_at = data.draw(schedules(), label="schedule")
    completed, cancelled, cells = drive(ebatch.policies.get(policy, **params), model, lengths, arrive_at, cancel_at)
    # exactly one outcome per request: completed once, or cancelled (never both)
    assert sorted(completed + cancelled) == list(range(len(lengths)))
    assert len(set(completed)) == len(completed)
    # every completed request had each of its cells evaluated exactly once, in dependency order
    m = ebatch.get_model(model)
    for r in completed:
        for layer, x in enumerate(m.layers):
            for d in range(x.directions):
                steps = [cells[(r, layer, d, p)] for p in range(lengths[r])]
                assert all(len(s) == 1 for s in steps), (r, layer, d)


@pytest.mark.parametrize("policy", POLICIES)
def test_bookkeeping_is_bounded_by_the_requests_in_flight(policy):
    rng = np.random.default_rng(0)
    n = 3000
    lengths = rng.integers(1, 30, size=n)
    arrive_at = np.arange(n) * 3  # one arrival every third step: a steady stream below every policy's capacity
    params = dict(ebatch.policies.get(policy).example_params[0])
    policy_obj = ebatch.policies.get(policy, **params)
    completed, cancelled, _ = drive(policy_obj, "tiny-lstm", lengths.tolist(), arrive_at.tolist(),
                                    {500: [400, 401, 402]}, max_steps=200_000)
    assert len(completed) + len(cancelled) == n
    # storage grows with the live span (oldest unfinished to newest), not with the 3,000 requests served
    span = policy_obj.lengths.size - policy_obj.live_from
    assert span == 0
    assert policy_obj.lengths.stored <= 256, policy_obj.lengths.stored
