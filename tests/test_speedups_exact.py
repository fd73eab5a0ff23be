"""The simulator's fast paths give what the general paths give (issue 12: summaries bit-identical).

``BatchStep.one_per_row`` against the checked constructor, the cost model's memo against pricing every
step afresh, and the step log's columns against the pandas table the summary used to sum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ebatch
from ebatch.hardware import cost as cost_module
from ebatch.hardware.cost import AcceleratorModel
from ebatch.sim.results import STEP_COLUMNS
from ebatch.step import BatchStep

FIELDS = ("layer", "direction", "width", "slots", "fused", "notify", "occupied_rows", "useful_cells")
ARRAYS = ("seg_row", "seg_col", "seg_request", "seg_start", "seg_length", "seg_reset")


def test_one_per_row_is_the_step_the_constructor_builds():
    requests, starts = np.array([4, 7, 9]), np.array([0, 5, 2])
    resets = starts == 0
    fast = BatchStep.one_per_row(2, 1, 6, 8, requests.copy(), starts.copy(), resets.copy())
    slow = BatchStep(2, 1, 6, 8, np.arange(3), np.zeros(3, dtype=np.int64), requests, starts, np.full(3, 6), resets,
                     fused=False)
    assert all(getattr(fast, f) == getattr(slow, f) for f in FIELDS)
    for name in ARRAYS:
        got, expected = getattr(fast, name), getattr(slow, name)
        assert got.dtype == expected.dtype and np.array_equal(got, expected) and not got.flags.writeable
    assert all(np.array_equal(a, b) for a, b in zip(fast.dense(), slow.dense()))
    assert all(np.array_equal(getattr(fast.prefix(2), n), getattr(slow.prefix(2), n)) for n in ARRAYS)


def test_one_per_row_takes_over_owned_arrays_and_copies_views():
    owned = np.array([3, 1, 2])
    step = BatchStep.one_per_row(0, 0, 1, 4, owned, np.zeros(3, dtype=np.int64), np.ones(3, dtype=bool))
    assert step.seg_request is owned and not owned.flags.writeable  # nobody else can write it
    table = np.array([[5, 6, 7], [8, 9, 10]])
    step = BatchStep.one_per_row(0, 0, 1, 4, table[1], table[0], np.ones(3, dtype=bool))
    table[:] = 0  # the caller still owns the memory of its views: the step kept copies
    assert step.seg_request.tolist() == [8, 9, 10] and step.seg_start.tolist() == [5, 6, 7]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 2, 1, 4, [1], [0], [True]), "direction"),
        ((0, 0, 0, 4, [1], [0], [True]), "width >= 1"),
        ((0, 0, 1, 4, [], [], []), "at least one segment"),
        ((0, 0, 1, 2, [1, 2, 3], [0, 0, 0], [True] * 3), "outside the slots x width grid"),
        ((0, 0, 1, 4, [1, 2], [0], [True, True]), "same length"),
    ],
)
def test_one_per_row_refuses_what_the_constructor_refuses(args, message):
    with pytest.raises(ValueError, match=message):
        BatchStep.one_per_row(*args)


@pytest.mark.parametrize(("row", "col", "length"), [(-1, 0, 1), (4, 0, 1), (0, -1, 1), (0, 0, 0), (0, 2, 2)])
def test_the_constructor_still_refuses_segments_outside_the_grid(row, col, length):
    with pytest.raises(ValueError, match="outside the slots x width grid"):
        BatchStep(0, 0, 3, 4, [row], [col], [0], [0], [length], [True])


@pytest.mark.parametrize("preset", ["epur", "tpu-v1"])
def test_the_cost_memo_prices_every_step_as_pricing_it_afresh_does(preset, monkeypatch):
    workload = ebatch.Workload.from_dataset("librispeech-test-clean", n=40, arrival="poisson", rate_rps=30, seed=4)
    plan = [step for policy, params in [("cellular", {"batch_size": 8}), ("ebatch", {"batch_size": 4, "timesteps": 8})]
            for _, step in ebatch.simulate("eesen", workload, policy, preset, keep_plan=True, **params).plan]
    memoised = AcceleratorModel(preset, "eesen")
    got = [memoised.cost(step) for step in plan]
    monkeypatch.setattr(cost_module, "MEMO_ENTRIES", 0)  # the memos start again at every new shape
    afresh = AcceleratorModel(preset, "eesen")
    expected = [afresh.cost(step) for step in plan]
    assert [(c.time_s, c.energy_j, c.breakdown) for c in got] == [(c.time_s, c.energy_j, c.breakdown) for c in expected]


def test_the_step_log_columns_are_the_step_table_pandas_builds():
    workload = ebatch.Workload.from_lengths([5, 2, 9, 4], arrivals_s=[0.0, 0.0, 1e-6, 3e-6])
    log = ebatch.simulate("tiny-bilstm", workload, "cellular", "epur", batch_size=2).log
    table = pd.DataFrame(log.rows, columns=list(STEP_COLUMNS))
    assert log.frame().equals(table) and list(log.frame().dtypes) == list(table.dtypes)
    assert all(float(log.columns()[c].sum()) == float(table[c].sum()) for c in STEP_COLUMNS)
