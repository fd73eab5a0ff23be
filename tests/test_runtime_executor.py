"""The executors without torch.nn as the oracle: a plain NumPy reference of PyTorch's formulas, hand-made
BatchSteps (state carried across steps and rows, a request twice in one step, rows with gaps), the plan's
layout, and that the NumPy path never imports torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ebatch.model import Layer, RNNModel
from ebatch.runtime import Engine, NumpyExecutor, RNNWeights
from ebatch.runtime.plan import StepPlan
from ebatch.step import BatchStep


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def naive(weights: RNNWeights, x: np.ndarray) -> np.ndarray:
    """PyTorch's LSTM/GRU equations, one time-step at a time, in float64."""
    h_size = weights.hidden_size
    layer_in = x.astype(np.float64)
    for directions in weights.cells:
        outs = []
        for d, w in enumerate(directions):
            h = np.zeros(h_size)
            c = np.zeros(h_size)
            out = np.zeros((len(layer_in), h_size))
            steps = range(len(layer_in)) if d == 0 else range(len(layer_in) - 1, -1, -1)
            for t in steps:
                gi = w.w_ih @ layer_in[t] + w.b_ih
                gh = w.w_hh @ h + w.b_hh
                if weights.cell == "lstm":
                    i, f, g, o = np.split(gi + gh, 4)
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                    h = sigmoid(o) * np.tanh(c)
                else:
                    r = sigmoid(gi[:h_size] + gh[:h_size])
                    z = sigmoid(gi[h_size : 2 * h_size] + gh[h_size : 2 * h_size])
                    n = np.tanh(gi[2 * h_size :] + r * gh[2 * h_size :])
                    h = (1 - z) * n + z * h
                out[t] = h
            outs.append(out)
        layer_in = np.concatenate(outs, axis=1)
    return layer_in


def model(cell="lstm", layers=2, bidirectional=False, input_size=3, hidden=4) -> RNNModel:
    stack, size = [], input_size
    for _ in range(layers):
        stack.append(Layer(cell, size, hidden, bidirectional))
        size = hidden * (2 if bidirectional else 1)
    return RNNModel("t", tuple(stack))


def step(layer, direction, width, slots, segments, fused=True):
    rows, cols, reqs, starts, lengths, resets = zip(*segments)
    return BatchStep(layer, direction, width, slots, rows, cols, reqs, starts, lengths, resets, fused=fused)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("policy", ["sequential", "padding", "cellular", "ebatch"])
def test_numpy_engine_matches_naive_reference(cell, policy):
    weights = RNNWeights.random(model(cell, layers=2, bidirectional=True), seed=2)
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, 3), dtype=np.float32) for n in (1, 6, 3, 11)]
    outputs = Engine(weights, policy=policy, batch_size=3, timesteps=4).run(sequences)
    for got, x in zip(outputs, sequences):
        np.testing.assert_allclose(got, naive(weights, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_follows_the_request_across_steps_rows_and_within_a_step(cell):
    """Request 0 runs positions 0-1 in row 2 (step 1), then 2-3 in row 0 and 4-6 in row 1 of the same step,
    not reset; request 1 starts (reset) in row 0 after it, and a row has a gap. Single layer, forward."""
    weights = RNNWeights.random(model(cell, layers=1), seed=5)
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((7, 3), dtype=np.float32)
    x1 = rng.standard_normal((2, 3), dtype=np.float32)
    ex = NumpyExecutor(weights)
    ex.add(0, x0)
    ex.add(1, x1)
    assert ex.execute(step(0, 0, 2, 3, [(2, 0, 0, 0, 2, True)])) == []
    done = ex.execute(step(0, 0, 8, 3, [(0, 0, 0, 2, 2, False), (1, 2, 0, 4, 3, False), (0, 6, 1, 0, 2, True)]))
    assert sorted(done) == [0, 1]
    np.testing.assert_allclose(ex.pop_result(0), naive(weights, x0), rtol=0, atol=1e-5)
    np.testing.assert_allclose(ex.pop_result(1), naive(weights, x1), rtol=0, atol=1e-5)
    assert ex.live_requests == 0


def test_backward_segments_and_non_contiguous_rows():
    """Backward direction with segments ending at different columns; rows whose active sets interleave."""
    weights = RNNWeights.random(model("lstm", layers=1, bidirectional=True), seed=7)
    rng = np.random.default_rng(2)
    xs = {r: rng.standard_normal((n, 3), dtype=np.float32) for r, n in ((0, 6), (1, 2), (2, 2))}
    ex = NumpyExecutor(weights)
    for r, x in xs.items():
        ex.add(r, x)
    fwd = [(0, 0, 0, 0, 6, True), (1, 1, 1, 0, 2, True), (2, 0, 2, 0, 2, True)]
    ex.execute(step(0, 0, 6, 3, fwd))
    bwd = [(0, 0, 0, 5, 6, True), (1, 1, 1, 1, 2, True), (2, 4, 2, 1, 2, True)]  # rows 1 and 2 interleave
    plan = StepPlan.build(step(0, 1, 6, 3, bwd))
    assert any(col.source[0] == "mixed" for col in plan.columns)
    assert sorted(ex.execute(step(0, 1, 6, 3, bwd))) == [0, 1, 2]
    for r, x in xs.items():
        np.testing.assert_allclose(ex.pop_result(r), naive(weights, x), rtol=0, atol=1e-5)


def test_plan_is_column_major_with_slices_for_window_layouts():
    s = step(0, 0, 5, 4, [(0, 0, 0, 0, 5, True), (1, 0, 1, 0, 2, True), (1, 2, 2, 0, 3, True), (3, 0, 3, 0, 1, True)])
    plan = StepPlan.build(s)
    assert plan.counts == [3, 2, 2, 2, 2]
    assert plan.n_cells == 11
    assert plan.columns[0].source == ("zeros",)
    assert plan.columns[1].source == ("slice", 0, 2)
    assert plan.columns[2].source[0] == "mixed"  # request 2 starts in row 1
    with pytest.raises(ValueError, match="overlap"):
        StepPlan.build(step(0, 0, 3, 1, [(0, 0, 0, 0, 2, True), (0, 1, 1, 0, 2, True)]))


def test_continuing_without_saved_state_is_an_error():
    ex = NumpyExecutor(RNNWeights.random(model(layers=2), seed=0))
    ex.add(0, np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="request 0 continues"):
        ex.execute(step(0, 0, 2, 1, [(0, 0, 0, 2, 2, False)]))
    with pytest.raises(ValueError, match="layer 3"):
        ex.execute(step(3, 0, 2, 1, [(0, 0, 0, 0, 2, True)]))
    with pytest.raises(ValueError, match="request 0 has 4 time-steps; the step holds positions 3..4"):
        ex.execute(step(0, 0, 2, 1, [(0, 0, 0, 3, 2, True)]))
    with pytest.raises(ValueError, match="reaches layer 1 before layer 0 ran"):
        ex.execute(step(1, 0, 2, 1, [(0, 0, 0, 0, 2, True)]))


def test_numpy_backend_does_not_import_torch():
    code = (
        "import sys, numpy as np\n"
        "from ebatch.runtime import Engine, RNNWeights\n"
        "from ebatch.model import get_model\n"
        "e = Engine(RNNWeights.random(get_model('tiny-gru')), policy='cellular', batch_size=2, backend='numpy')\n"
        "out = e.run([np.ones((3, 8), np.float32), np.ones((5, 8), np.float32)])\n"
        "assert [o.shape for o in out] == [(3, 16), (5, 16)]\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
