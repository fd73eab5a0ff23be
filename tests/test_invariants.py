"""Invariants of every policy on every shipped preset, with Hypothesis over random workloads.

For random lengths (1..60), offline or random arrivals, random batch sizes and windows, and models with
unidirectional, bidirectional and mixed stacks, every run must: complete every request exactly once;
evaluate each (request, layer, direction, position) exactly once and in dependency order; start and
finish no request before it arrives; report completions where the plan says; add energies up.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ebatch
from ebatch.hardware.cost import ENERGY_KEYS
from ebatch.hardware.host import is_host_preset
from ebatch.hardware.preset import preset_names
from ebatch.model import get_model
from simtools import BI1, MIX, UNI_BI, cell_log

POLICIES = ebatch.policies.available()
PRESETS = [p for p in preset_names() if not is_host_preset(p)]  # accelerators: energy in named phases
MODELS = ["tiny-lstm", "tiny-gru", "tiny-bilstm", "gnmt-enc", MIX, UNI_BI, BI1]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def workloads(draw) -> ebatch.Workload:
    lengths = draw(st.lists(st.integers(1, 60), min_size=1, max_size=10))
    if draw(st.booleans()):
        return ebatch.Workload.from_lengths(lengths)
    # arrival gaps on the scale of a tiny model's step (1e-7..1e-5 s) up to a big one's (1e-3 s); zero gaps
    # give simultaneous arrivals
    scale = draw(st.sampled_from([1e-7, 1e-5, 1e-3]))
    gaps = draw(st.lists(st.floats(0, 1), min_size=len(lengths), max_size=len(lengths)))
    return ebatch.Workload.from_lengths(lengths, arrivals_s=np.cumsum(gaps) * scale)


def policy_params(draw, policy: str) -> dict:
    """One of the policy's declared example parameter sets, its batch size and window redrawn."""
    params = dict(draw(st.sampled_from(ebatch.policies.get(policy).example_params)))
    if "batch_size" in params:
        params["batch_size"] = draw(st.integers(1, 8))
    if isinstance(params.get("timesteps"), int):
        params["timesteps"] = draw(st.integers(1, 20))
    return params


def simulate_recording(model, workload, policy, preset, **params):
    """Run with the plan kept, recording every id the policy reports as completed."""
    policy_obj = ebatch.policies.get(policy, **params)
    completed: list[int] = []
    on_step_done = policy_obj.on_step_done

    def recording(step):
        done = on_step_done(step)
        completed.extend(np.asarray(done).tolist())
        return done

    policy_obj.on_step_done = recording
    result = ebatch.simulate(model, workload, policy_obj, preset, keep_plan=True)
    return result, completed


def check_invariants(result, completed, model, workload, policy, params) -> None:
    model = get_model(model)
    n, lengths, arrivals = len(workload), workload.lengths, workload.arrivals_s
    plan, steps, requests = result.plan, result.steps, result.requests
    assert len(plan) == len(steps)

    # every request completes exactly once
    assert sorted(completed) == list(range(n))
    assert not requests["finish_s"].isna().any()
    summary = result.summary()
    assert summary["completed"] == summary["requests"] == n

    # useful cells per request = length x (directions summed over layers), counted from the plan
    useful = np.zeros(n, dtype=np.int64)
    for _, step in plan:
        np.add.at(useful, step.seg_request, step.seg_length)
    assert useful.tolist() == (lengths * model.cells_per_timestep).tolist()
    assert summary["useful_cells"] == int(useful.sum())

    # each (request, layer, direction, position) exactly once, inside its request
    cells = cell_log(plan)
    assert len(cells) == int(useful.sum())
    assert all(len(v) == 1 for v in cells.values())
    order = {key: (v[0][0], v[0][1]) for key, v in cells.items()}
    for (r, layer, direction, p), [(i, _, reset, _)] in cells.items():
        assert 0 <= p < lengths[r] and direction < model.layers[layer].directions
        first = 0 if direction == 0 else lengths[r] - 1
        if reset:
            assert p == first, "state reset in the middle of a sequence"
        # recurrence: forward positions increase in time, backward ones decrease
        if p != first:
            previous = p - 1 if direction == 0 else p + 1
            assert order[(r, layer, direction, previous)] < order[(r, layer, direction, p)]
        # input from the layer below, every direction of it, at an earlier step
        if layer > 0:
            for below in range(model.layers[layer - 1].directions):
                assert order[(r, layer - 1, below, p)][0] < i
    # a segment continuing a sequence does not reset its state; one starting it does
    for _, step in plan:
        firsts = np.where(step.direction == 0, 0, lengths[step.seg_request] - 1)
        assert (step.seg_reset == (step.seg_start == firsts)).all()
    # a bidirectional layer starts only after the layer below is done for every time-step
    for r in range(n):
        for layer in range(1, model.num_layers):
            if model.layers[layer].bidirectional:
                below_done = max(order[(r, layer - 1, d, p)] for d in range(2 if model.layers[layer - 1].bidirectional
                                                                             else 1) for p in range(lengths[r]))
                starts = min(order[(r, layer, d, p)] for d in range(2) for p in range(lengths[r]))
                assert below_done < starts

    # one backend: steps do not overlap; no step holds a request before it arrives
    start_s = np.array([s for s, _ in plan])
    assert np.all(start_s[1:] >= start_s[:-1] + steps["time_s"].to_numpy()[:-1] * (1 - 1e-12))
    for s, step in plan:
        assert s >= arrivals[step.seg_request].max()
    req_start = requests["start_s"].to_numpy()
    req_finish = requests["finish_s"].to_numpy()
    assert np.all(req_start >= arrivals) and np.all(req_finish >= arrivals) and np.all(req_finish > req_start)
    # start_s is the first step holding the request; finish_s is when its last cell is known done
    first_step, last_cell = {}, {}
    for (r, *_), [(i, col, _, seg)] in cells.items():
        first_step[r] = min(first_step.get(r, i), i)
        last_cell[r] = max(last_cell.get(r, (-1, -1, -1)), (i, col, seg))
    for r in range(n):
        assert req_start[r] == plan[first_step[r]][0]
        i, _, seg = last_cell[r]
        step_start, step = plan[i]
        time_s = steps["time_s"].iloc[i]
        if step.notify:
            expected = step_start + time_s * step.seg_end_col[seg] / step.width + step_notify_latency(result)
        else:
            expected = step_start + time_s
        assert req_finish[r] == pytest.approx(expected, rel=1e-12, abs=1e-15)

    # energy: summary = sum of steps = sum of requests; each step's parts add up to its energy
    total = float(steps["energy_j"].sum())
    assert summary["energy_j"] == pytest.approx(total, rel=1e-9)
    assert float(requests["energy_j"].sum()) == pytest.approx(total, rel=1e-9)
    parts = steps[list(ENERGY_KEYS)].sum(axis=1)
    np.testing.assert_allclose(parts, steps["energy_j"], rtol=1e-9)
    assert math.fsum(summary["energy_breakdown_j"].values()) == pytest.approx(summary["energy_j"], rel=1e-9)
    assert (steps["time_s"] > 0).all() and (steps["energy_j"] > 0).all()

    # batch shapes
    batch_size = params.get("batch_size", 1)
    for _, step in plan:
        assert step.occupied_rows <= batch_size
        if policy == "padding":
            assert step.width == step.seg_length.max()
        if policy == "ebatch":
            default = ebatch.policies.get("ebatch").bidirectional
            packs = model.bidirectional and params.get("bidirectional", default) == "pack"
            limit = max(params["timesteps"], int(lengths[step.seg_request].max())) if packs else params["timesteps"]
            assert step.width <= limit
    if policy in ("cellular", "sequential"):
        assert summary["padding_fraction"] == 0
        assert (steps["computed_cells"] == steps["useful_cells"]).all()
    assert 0 <= summary["padding_fraction"] < 1


def step_notify_latency(result) -> float:
    return ebatch.load_preset(result.hardware).notify_latency_s


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("policy", POLICIES)
@SETTINGS
@given(data=st.data())
def test_invariants_hold_for_random_workloads(policy, preset, data):
    model = data.draw(st.sampled_from(MODELS), label="model")
    workload = data.draw(workloads(), label="workload")
    params = policy_params(data.draw, policy)
    result, completed = simulate_recording(model, workload, policy, preset, **params)
    check_invariants(result, completed, model, workload, policy, params)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("policy", POLICIES)
def test_same_seed_gives_identical_results(policy, preset):
    def once(seed):
        workload = ebatch.Workload.from_dataset("wmt21-en-de", n=40, arrival="poisson", rate_rps=2e4, seed=seed)
        return ebatch.simulate(MIX, workload, policy, preset, seed=seed)

    a, b, c = once(3), once(3), once(4)
    assert a.summary() == b.summary()
    assert a.requests.equals(b.requests) and a.steps.equals(b.steps)
    assert a.summary() != c.summary()
