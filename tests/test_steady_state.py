"""The steady-state window (middle 80% of completions) worked by hand, and its keys in the summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ebatch
from ebatch.sim.steady import steady_state, steady_window


def test_window_of_evenly_spaced_completions_by_hand():
    # 10 completions at 1..10 s: k = 1 dropped at each end, window [2, 9], 7 completions in (2, 9]
    finish = np.arange(1.0, 11.0)
    assert steady_window(finish) == (2.0, 9.0, 7)
    # one step from 0 to 10 s costing 10 J: 7 s of it inside the window -> 7 J
    s = steady_state(finish, np.array([0.0]), np.array([10.0]), np.array([10.0]))
    assert s.steady_throughput_rps == pytest.approx(7 / 7)
    assert s.steady_energy_j == pytest.approx(7.0)
    assert s.steady_requests_per_j == pytest.approx(1.0)


def test_ties_at_the_window_start_belong_to_the_fill():
    # batches of 4 finishing together (padding-like): the first batch ends the fill at t = 2
    finish = np.array([2, 2, 2, 2, 4, 4, 4, 4, 6, 6], dtype=float)
    lo, hi, count = steady_window(finish)
    assert (lo, hi, count) == (2.0, 6.0, 6)
    # steps: [0, 2) 4 J, [2, 4) 4 J, [4, 6) 2 J; the first lies before the window
    s = steady_state(finish, np.array([0.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0]), np.array([4.0, 4.0, 2.0]))
    assert s.steady_throughput_rps == pytest.approx(6 / 4)
    assert s.steady_requests_per_j == pytest.approx(6 / 6.0)


def test_unfinished_requests_and_tiny_runs():
    finish = np.array([1.0, np.nan, 3.0, 2.0])  # NaN: not completed; k = floor(0.3) = 0
    assert steady_window(finish) == (1.0, 3.0, 2)
    empty = steady_state(np.array([5.0]), np.array([0.0]), np.array([5.0]), np.array([1.0]))
    assert empty.steady_completed == 0 and math.isnan(empty.steady_throughput_rps)
    with pytest.raises(ValueError, match="trim_fraction"):
        steady_window(finish, 0.5)


def test_summary_carries_the_steady_state_of_a_simulation():
    work = ebatch.Workload.from_dataset("librispeech-test-clean", n=200, seed=0)
    result = ebatch.simulate("tiny-lstm", work, "padding", "epur", batch_size=8)
    s = result.summary()
    finish = np.sort(result.finish_s)
    lo, hi = finish[20], finish[179]
    assert s["steady_window_start_s"] == lo and s["steady_window_end_s"] == hi
    assert s["steady_completed"] == int(np.count_nonzero((finish > lo) & (finish <= hi)))
    # offline padding keeps the array busy: the window's energy is the energy of the steps inside it
    steps = result.steps
    inside = steps[(steps["start_s"] >= lo) & (steps["start_s"] + steps["time_s"] <= hi)]
    assert s["steady_energy_j"] == pytest.approx(inside["energy_j"].sum(), rel=1e-9)
