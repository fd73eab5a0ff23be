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
    # one step from 0 to 10 s costing 10 J over 100 cells (10 per request): 7 s of it inside the window
    s = steady_state(finish, np.array([0.0]), np.array([10.0]), np.array([10.0]), np.array([100.0]))
    assert s.steady_cells == pytest.approx(70.0) and s.steady_energy_j == pytest.approx(7.0)
    assert s.steady_throughput_rps == pytest.approx(70 / 7 / 10)
    assert s.steady_requests_per_j == pytest.approx(70 / 7 / 10)


def test_ties_at_the_window_start_belong_to_the_fill():
    # batches of 4 finishing together (padding-like): the first batch ends the fill at t = 2
    finish = np.array([2, 2, 2, 2, 4, 4, 4, 4, 6, 6], dtype=float)
    lo, hi, count = steady_window(finish)
    assert (lo, hi, count) == (2.0, 6.0, 6)
    # steps: [0, 2) 4 J 8 cells, [2, 4) 4 J 8 cells, [4, 6) 2 J 4 cells (2 per request); the first is before
    s = steady_state(finish, np.array([0.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0]), np.array([4.0, 4.0, 2.0]),
                     np.array([8.0, 8.0, 4.0]))
    assert s.steady_completed == 6 and s.steady_cells == 12.0
    assert s.steady_throughput_rps == pytest.approx(12 / 4 / 2)
    assert s.steady_requests_per_j == pytest.approx(12 / 6 / 2)


def test_work_not_completions_short_requests_first():
    # one row: 8 short requests (1 cell, 1 s each) first, then 2 long ones (8 cells, 8 s each), 1 J per s.
    # Counting completions in the window would give 7 requests in 7 s (1 req/s, all short ones); the work
    # rate is 1 cell/s over 2.4 cells per request on average: 1/2.4 req/s, the run's true pace.
    finish = np.array([1, 2, 3, 4, 5, 6, 7, 8, 16, 24], dtype=float)
    starts = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 16], dtype=float)
    times = np.array([1] * 8 + [8, 8], dtype=float)
    s = steady_state(finish, starts, times, times, times)
    assert steady_window(finish) == (2.0, 16.0, 7)
    assert s.steady_throughput_rps == pytest.approx(14 / 14 / 2.4)
    assert s.steady_requests_per_j == pytest.approx(1 / 2.4)


def test_unfinished_requests_and_tiny_runs():
    finish = np.array([1.0, np.nan, 3.0, 2.0])  # NaN: not completed; k = floor(0.3) = 0
    assert steady_window(finish) == (1.0, 3.0, 2)
    empty = steady_state(np.array([5.0]), np.array([0.0]), np.array([5.0]), np.array([1.0]), np.array([3.0]))
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
    # padding's batches end at completions, so whole steps lie inside the window
    steps = result.steps
    inside = steps[(steps["start_s"] >= lo) & (steps["start_s"] + steps["time_s"] <= hi)]
    assert s["steady_energy_j"] == pytest.approx(inside["energy_j"].sum(), rel=1e-9)
    per_request = s["useful_cells"] / s["completed"]
    assert s["steady_throughput_rps"] == pytest.approx(inside["useful_cells"].sum() / (hi - lo) / per_request)
