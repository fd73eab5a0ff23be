"""Scenario tests: tiny hand-made workloads whose exact plans and completion times are derived by hand.

Every run uses :class:`simtools.UnitBackend`: a step takes ``width`` seconds (1 s per column of every
invocation) and costs 1 J per computed cell, with a 0.5 s notification latency, so each expected number
below can be checked in one's head. Window policies (sequential, padding, E-BATCH) are asserted step by
step with their dense ``(request, position, reset)`` grids. Cellular batching is asserted invocation by
invocation: how consecutive invocations of one cell type are grouped into a non-fused run is an
implementation detail, the sequence of invocations is the policy.
"""

from __future__ import annotations

import numpy as np
import pytest

import ebatch
from simtools import MIX, ONE, UnitBackend, invocations

T, F = True, False


def run(model, lengths, policy, arrivals=None, **params):
    workload = ebatch.Workload.from_lengths(lengths, arrivals_s=arrivals)
    return ebatch.simulate(model, workload, policy, UnitBackend(notify_latency_s=0.5), keep_plan=True, **params)


def check_step(entry, start_s, layer, direction, request, position, reset, fused=True, notify=False):
    """One plan entry: its start, cell type, and the dense grids (width and slots follow from them)."""
    got_start, step = entry
    assert got_start == pytest.approx(start_s)
    assert (step.layer, step.direction, step.fused, step.notify) == (layer, direction, fused, notify)
    assert (step.slots, step.width) == np.shape(request)
    got = step.dense()
    assert got[0].tolist() == request
    assert got[1].tolist() == position
    assert got[2].tolist() == reset


def finishes(result):
    return result.requests["finish_s"].tolist()


# ---- sequential ---------------------------------------------------------------------------------------


def test_sequential_runs_one_request_at_a_time_layer_by_layer():
    result = run("tiny-bilstm", [3, 1, 2], "sequential")
    plan = result.plan
    assert len(plan) == 12
    check_step(plan[0], 0, 0, 0, [[0, 0, 0]], [[0, 1, 2]], [[T, F, F]])
    check_step(plan[1], 3, 0, 1, [[0, 0, 0]], [[2, 1, 0]], [[T, F, F]])
    check_step(plan[2], 6, 1, 0, [[0, 0, 0]], [[0, 1, 2]], [[T, F, F]])
    check_step(plan[3], 9, 1, 1, [[0, 0, 0]], [[2, 1, 0]], [[T, F, F]])
    for i, (layer, direction) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        check_step(plan[4 + i], 12 + i, layer, direction, [[1]], [[0]], [[T]])
    check_step(plan[8], 16, 0, 0, [[2, 2]], [[0, 1]], [[T, F]])
    check_step(plan[11], 22, 1, 1, [[2, 2]], [[1, 0]], [[T, F]])
    assert finishes(result) == [12, 16, 24]
    assert result.requests["start_s"].tolist() == [0, 12, 16]


# ---- padding ------------------------------------------------------------------------------------------


def test_padding_pads_to_the_longest_and_completes_all_at_the_end():
    result = run("tiny-bilstm", [3, 1, 2], "padding", batch_size=3)
    plan = result.plan
    assert len(plan) == 4
    fwd = ([[0, 0, 0], [1, -1, -1], [2, 2, -1]], [[0, 1, 2], [0, -1, -1], [0, 1, -1]])
    fwd_reset = [[T, F, F], [T, F, F], [T, F, F]]
    # backward: columns mirrored, so the padding comes first and each row starts at its last position
    bwd = ([[0, 0, 0], [-1, -1, 1], [-1, 2, 2]], [[2, 1, 0], [-1, -1, 0], [-1, 1, 0]])
    bwd_reset = [[T, F, F], [F, F, T], [F, T, F]]
    check_step(plan[0], 0, 0, 0, *fwd, fwd_reset)
    check_step(plan[1], 3, 0, 1, *bwd, bwd_reset)
    check_step(plan[2], 6, 1, 0, *fwd, fwd_reset)
    check_step(plan[3], 9, 1, 1, *bwd, bwd_reset)
    assert finishes(result) == [12, 12, 12]
    # each step costs 9 J (3 rows x 3 columns) shared by its 6 useful cells in proportion 3 : 1 : 2
    assert result.requests["energy_j"].tolist() == pytest.approx([18, 6, 12])


def test_padding_summary_follows_the_metric_formulas():
    s = run("tiny-bilstm", [3, 1, 2], "padding", batch_size=3).summary()
    assert s["makespan_s"] == 12 and s["busy_s"] == 12
    assert s["throughput_rps"] == pytest.approx(3 / 12)
    assert (s["useful_cells"], s["computed_cells"], s["steps"], s["invocations"]) == (24, 36, 4, 4)
    assert s["cells_per_s"] == pytest.approx(24 / 12)
    assert s["padding_fraction"] == pytest.approx(12 / 36)
    assert s["energy_j"] == 36 and s["energy_per_request_j"] == 12
    assert s["requests_per_j"] == pytest.approx(3 / 36)
    assert s["energy_breakdown_j"] == {"dram": 0.0, "sram": 0.0, "mac": 36.0, "static": 0.0}
    assert s["mac_utilisation"] == pytest.approx(1.0)
    assert s["latency_mean_s"] == s["latency_p50_s"] == s["latency_p99_s"] == 12


def test_padding_batches_in_fifo_order_of_at_most_b():
    result = run("tiny-lstm", [3, 1, 2], "padding", batch_size=2)
    plan = result.plan
    assert len(plan) == 4
    check_step(plan[0], 0, 0, 0, [[0, 0, 0], [1, -1, -1]], [[0, 1, 2], [0, -1, -1]], [[T, F, F], [T, F, F]])
    check_step(plan[1], 3, 1, 0, [[0, 0, 0], [1, -1, -1]], [[0, 1, 2], [0, -1, -1]], [[T, F, F], [T, F, F]])
    check_step(plan[2], 6, 0, 0, [[2, 2]], [[0, 1]], [[T, F]])
    check_step(plan[3], 8, 1, 0, [[2, 2]], [[0, 1]], [[T, F]])
    assert finishes(result) == [6, 6, 10]


def test_padding_sort_window_batches_similar_lengths():
    lengths = [10, 2, 9, 3, 2]
    fifo = run("tiny-lstm", lengths, "padding", batch_size=2)
    assert [step.seg_request.tolist() for _, step in fifo.plan[::2]] == [[0, 1], [2, 3], [4]]
    assert fifo.summary()["padding_fraction"] == pytest.approx(14 / 40)  # per layer: 20+18+2 computed, 26 useful

    sorted_ = run("tiny-lstm", lengths, "padding", batch_size=2, sort_window=5)
    plan = sorted_.plan
    assert [(start, step.width) for start, step in plan] == [(0, 10), (10, 10), (20, 2), (22, 2), (24, 3), (27, 3)]
    # the oldest (10) goes with its nearest length (9), then {2, 2} among the rest, then 3 alone
    assert [step.seg_request.tolist() for _, step in plan[::2]] == [[0, 2], [1, 4], [3]]
    check_step(plan[0], 0, 0, 0, [[0] * 10, [2] * 9 + [-1]], [list(range(10)), list(range(9)) + [-1]],
               [[T] + [F] * 9, [T] + [F] * 9])
    assert finishes(sorted_) == [20, 24, 20, 30, 24]
    assert sorted_.summary()["padding_fraction"] == pytest.approx(1 / 27)  # per layer: 20+4+3 computed, 26 useful


def test_padding_max_wait_waits_for_a_fuller_batch():
    result = run("tiny-lstm", [2, 2, 2], "padding", arrivals=[0, 1, 5], batch_size=2, max_wait_s=3)
    plan = result.plan
    # t=0: one request queued, wait up to 3 s; t=1: the second arrives, the batch is full
    check_step(plan[0], 1, 0, 0, [[0, 0], [1, 1]], [[0, 1], [0, 1]], [[T, F], [T, F]])
    check_step(plan[1], 3, 1, 0, [[0, 0], [1, 1]], [[0, 1], [0, 1]], [[T, F], [T, F]])
    # t=5: the third arrives alone; it waits its full 3 s, then runs as a partial batch
    check_step(plan[2], 8, 0, 0, [[2, 2]], [[0, 1]], [[T, F]])
    check_step(plan[3], 10, 1, 0, [[2, 2]], [[0, 1]], [[T, F]])
    assert len(plan) == 4
    assert finishes(result) == [5, 5, 12]

    impatient = run("tiny-lstm", [2, 2, 2], "padding", arrivals=[0, 1, 5], batch_size=2)
    assert [(start, step.seg_request.tolist()) for start, step in impatient.plan[::2]] == [
        (0, [0]), (4, [1]), (8, [2])
    ]


def test_padding_max_wait_expires_and_a_partial_batch_runs():
    result = run("tiny-lstm", [2, 2], "padding", arrivals=[0, 5], batch_size=2, max_wait_s=0.5)
    assert [(start, step.seg_request.tolist()) for start, step in result.plan] == [
        (0.5, [0]), (2.5, [0]), (5.5, [1]), (7.5, [1])
    ]
    assert finishes(result) == [4.5, 9.5]


# ---- cellular -----------------------------------------------------------------------------------------


def test_cellular_bidirectional_waits_for_the_whole_layer_below():
    result = run("tiny-bilstm", [3, 1, 2], "cellular", batch_size=3)
    got = invocations(result.plan)
    assert all(not step.fused for _, step in result.plan)
    assert got == [
        # layer 0: all three requests ready in both directions; ties go to the lower cell type
        (0, 0, 0, [(0, 0, 0, T), (1, 1, 0, T), (2, 2, 0, T)]),
        (1, 0, 1, [(0, 0, 2, T), (1, 1, 0, T), (2, 2, 1, T)]),
        # request 1 finished layer 0, but layer 0 fwd/bwd still have two ready requests each
        (2, 0, 0, [(0, 0, 1, F), (1, 2, 1, F)]),
        (3, 0, 1, [(0, 0, 1, F), (1, 2, 0, F)]),
        # layer 1 now has two ready (requests 1 and 2), layer 0 only one (request 0)
        (4, 1, 0, [(0, 1, 0, T), (1, 2, 0, T)]),
        (5, 1, 1, [(0, 1, 0, T), (1, 2, 1, T)]),
        # one ready cell in every type: the tie goes to the types holding the oldest request (0)
        (6, 0, 0, [(0, 0, 2, F)]),
        (7, 0, 1, [(0, 0, 0, F)]),
        (8, 1, 0, [(0, 0, 0, T), (1, 2, 1, F)]),
        (9, 1, 1, [(0, 0, 2, T), (1, 2, 0, F)]),
        (10, 1, 0, [(0, 0, 1, F)]),
        (11, 1, 0, [(0, 0, 2, F)]),
        (12, 1, 1, [(0, 0, 1, F)]),
        (13, 1, 1, [(0, 0, 0, F)]),
    ]
    assert finishes(result) == [14, 6, 10]
    assert result.summary()["padding_fraction"] == 0


def test_cellular_unidirectional_runs_a_wavefront_across_layers():
    result = run("tiny-lstm", [3, 1, 2], "cellular", batch_size=3)
    assert invocations(result.plan) == [
        (0, 0, 0, [(0, 0, 0, T), (1, 1, 0, T), (2, 2, 0, T)]),
        (1, 1, 0, [(0, 0, 0, T), (1, 1, 0, T), (2, 2, 0, T)]),
        (2, 0, 0, [(0, 0, 1, F), (1, 2, 1, F)]),
        (3, 1, 0, [(0, 0, 1, F), (1, 2, 1, F)]),
        (4, 0, 0, [(0, 0, 2, F)]),
        (5, 1, 0, [(0, 0, 2, F)]),
    ]
    assert finishes(result) == [6, 2, 4]


def test_cellular_breaks_ties_by_the_oldest_request_then_runs_batches_of_b():
    result = run("tiny-lstm", [2, 2], "cellular", batch_size=1)
    assert invocations(result.plan) == [
        (0, 0, 0, [(0, 0, 0, T)]),
        # layer 0 has 2 ready requests, layer 1 one: most ready cells wins, the oldest request first
        (1, 0, 0, [(0, 0, 1, F)]),
        # one each: layer 1 holds request 0, older than layer 0's request 1, so layer 1 wins the tie
        (2, 1, 0, [(0, 0, 0, T)]),
        (3, 1, 0, [(0, 0, 1, F)]),
        (4, 0, 0, [(0, 1, 0, T)]),
        (5, 0, 0, [(0, 1, 1, F)]),
        (6, 1, 0, [(0, 1, 0, T)]),
        (7, 1, 0, [(0, 1, 1, F)]),
    ]
    assert finishes(result) == [4, 8]


def test_cellular_forward_of_a_finished_backward_feeds_the_layer_above_cell_by_cell():
    # MIX: layer 0 bidirectional, layers 1 and 2 unidirectional. Once a request's layer-0 backward is done,
    # each layer-0 forward cell makes one more layer-1 cell ready, so the choice is re-made every invocation
    result = run(MIX, [2, 4, 2], "cellular", arrivals=[0, 0, 1.25], batch_size=3)
    assert invocations(result.plan) == [
        (0, 0, 0, [(0, 0, 0, T), (1, 1, 0, T)]),
        (1, 0, 0, [(0, 0, 1, F), (1, 1, 1, F)]),
        # request 2 arrived at 1.25: layer 0 backward has 3 ready requests, forward 2
        (2, 0, 1, [(0, 0, 1, T), (1, 1, 3, T), (2, 2, 1, T)]),
        (3, 0, 1, [(0, 0, 0, F), (1, 1, 2, F), (2, 2, 0, F)]),
        # forward 2 ready (requests 1, 2) beats layer 1 (request 0) and layer 0 backward (request 1)
        (4, 0, 0, [(0, 1, 2, F), (1, 2, 0, T)]),
        # request 2's forward cell 0 made its layer-1 cell 0 ready: layer 1 now ties with layer 0 forward
        # at 2 and holds the oldest request (0), so it wins; then layer 2 likewise
        (5, 1, 0, [(0, 0, 0, T), (1, 2, 0, T)]),
        (6, 2, 0, [(0, 0, 0, T), (1, 2, 0, T)]),
        (7, 0, 0, [(0, 1, 3, F), (1, 2, 1, F)]),
        (8, 1, 0, [(0, 0, 1, F), (1, 2, 1, F)]),
        (9, 2, 0, [(0, 0, 1, F), (1, 2, 1, F)]),
        (10, 0, 1, [(0, 1, 1, F)]),
        (11, 0, 1, [(0, 1, 0, F)]),
        *[(12 + p, 1, 0, [(0, 1, p, p == 0)]) for p in range(4)],
        *[(16 + p, 2, 0, [(0, 1, p, p == 0)]) for p in range(4)],
    ]
    assert finishes(result) == [10, 20, 10]


@pytest.mark.parametrize(
    "arrival_s, join_s, finish_s",
    [(0.5, 1, [5, 3]), (2.0, 2, [5, 4]), (2.5, 3, [5, 5]), (3.0, 3, [5, 5])],
)
def test_cellular_run_is_cut_by_an_arrival_in_the_middle(arrival_s, join_s, finish_s):
    result = run(ONE, [5, 2], "cellular", arrivals=[0, arrival_s], batch_size=2)
    # the first step was planned as one run of 5 invocations; the backend cut it at the first invocation
    # boundary at or after the arrival, so request 1 joins there
    first_start, first = result.plan[0]
    assert (first_start, first.width, first.fused) == (0, join_s, False)
    expected = [(t, 0, 0, [(0, 0, t, t == 0)]) for t in range(join_s)]
    expected += [(join_s + j, 0, 0, [(0, 0, join_s + j, F), (1, 1, j, j == 0)]) for j in range(2)]
    expected += [(t, 0, 0, [(0, 0, t, F)]) for t in range(join_s + 2, 5)]
    assert invocations(result.plan) == expected
    assert finishes(result) == finish_s


def test_cellular_without_arrivals_keeps_a_run_whole():
    result = run(ONE, [5, 3], "cellular", batch_size=2)
    assert [(start, step.width) for start, step in result.plan] == [(0, 3), (3, 2)]
    assert finishes(result) == [5, 3]


# ---- E-BATCH ------------------------------------------------------------------------------------------


def test_ebatch_unidirectional_refills_a_slot_right_after_a_sequence_ends():
    result = run("tiny-lstm", [3, 5, 2, 4], "ebatch", batch_size=2, timesteps=4)
    plan = result.plan
    assert len(plan) == 4
    # window 1: slot 0 holds request 0 (3 steps) then request 1 starts at column 3 with a reset;
    # slot 1 holds request 2 (2 steps) then request 3 from column 2
    w1 = ([[0, 0, 0, 1], [2, 2, 3, 3]], [[0, 1, 2, 0], [0, 1, 0, 1]], [[T, F, F, T], [T, F, T, F]])
    check_step(plan[0], 0, 0, 0, *w1, notify=True)
    check_step(plan[1], 4, 1, 0, *w1, notify=True)
    # window 2: requests 1 and 3 carry their state (no reset); the window is 4 wide (slot 0 is full)
    w2 = ([[1, 1, 1, 1], [3, 3, -1, -1]], [[1, 2, 3, 4], [2, 3, -1, -1]], [[F, F, F, F], [F, F, F, F]])
    check_step(plan[2], 8, 0, 0, *w2, notify=True)
    check_step(plan[3], 12, 1, 0, *w2, notify=True)
    # notification: start of the last layer's step + 1 s per column up to the sequence's end + 0.5 s
    assert finishes(result) == [4 + 3 + 0.5, 12 + 4 + 0.5, 4 + 2 + 0.5, 12 + 2 + 0.5]
    assert result.requests["start_s"].tolist() == [0, 0, 0, 0]
    # window 1: 8 J over 8 useful cells; window 2: 8 J over 6 useful cells, per layer
    assert result.requests["energy_j"].tolist() == pytest.approx([6, 2 + 32 / 3, 4, 4 + 16 / 3])


def test_ebatch_unidirectional_window_narrows_when_the_queue_runs_dry():
    result = run(ONE, [6, 2], "ebatch", arrivals=[0, 1], batch_size=2, timesteps=4)
    plan = result.plan
    # request 1 arrives during window 1 and waits for the next window, where it follows request 0's tail
    check_step(plan[0], 0, 0, 0, [[0, 0, 0, 0], [-1] * 4], [[0, 1, 2, 3], [-1] * 4], [[T, F, F, F], [F] * 4],
               notify=True)
    check_step(plan[1], 4, 0, 0, [[0, 0, 1, 1], [-1] * 4], [[4, 5, 0, 1], [-1] * 4], [[F, F, T, F], [F] * 4],
               notify=True)
    assert len(plan) == 2
    assert finishes(result) == [4 + 2 + 0.5, 4 + 4 + 0.5]

    short = run(ONE, [6], "ebatch", batch_size=2, timesteps=4)
    assert [(start, step.width) for start, step in short.plan] == [(0, 4), (4, 2)]


def test_ebatch_bidirectional_packs_whole_sequences_first_fit():
    result = run("tiny-bilstm", [3, 5, 2, 1, 3, 2], "ebatch", batch_size=2, timesteps=4, bidirectional="pack")
    plan = result.plan
    assert len(plan) == 8
    # window 1: W = max(T=4, longest of the 2 oldest = 5) = 5; request 2 fits behind request 0 in slot 0,
    # requests 3, 4 and 5 no longer fit and wait
    fwd = ([[0, 0, 0, 2, 2], [1, 1, 1, 1, 1]], [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]])
    fwd_reset = [[T, F, F, T, F], [T, F, F, F, F]]
    bwd = ([[2, 2, 0, 0, 0], [1, 1, 1, 1, 1]], [[1, 0, 2, 1, 0], [4, 3, 2, 1, 0]])
    bwd_reset = [[T, F, T, F, F], [T, F, F, F, F]]
    for i, start in enumerate([0, 5, 10, 15]):
        layer, direction = divmod(i, 2)
        check_step(plan[i], start, layer, direction, *(bwd if direction else fwd),
                   bwd_reset if direction else fwd_reset, notify=True)
    # window 2: W = max(T=4, longest of {1, 3}) = 4; first fit puts request 4 behind request 3 in slot 0
    fwd2 = ([[3, 4, 4, 4], [5, 5, -1, -1]], [[0, 0, 1, 2], [0, 1, -1, -1]])
    bwd2 = ([[4, 4, 4, 3], [-1, -1, 5, 5]], [[2, 1, 0, 0], [-1, -1, 1, 0]])
    check_step(plan[4], 20, 0, 0, *fwd2, [[T, T, F, F], [T, F, F, F]], notify=True)
    check_step(plan[5], 24, 0, 1, *bwd2, [[T, F, F, T], [F, F, T, F]], notify=True)
    check_step(plan[7], 32, 1, 1, *bwd2, [[T, F, F, T], [F, F, T, F]], notify=True)
    # completions come from the last step (layer 1 backward): at the column where position 0 is done
    assert finishes(result) == [20.5, 20.5, 17.5, 36.5, 35.5, 36.5]


def test_ebatch_bidirectional_window_is_at_least_t():
    result = run("tiny-bilstm", [1, 2, 3], "ebatch", batch_size=2, timesteps=8, bidirectional="pack")
    (_, step) = result.plan[0]
    # W = 8 >= 1 + 2 + 3, so first fit packs all three back to back in slot 0; the window ends at 6
    assert step.seg_row.tolist() == [0, 0, 0]
    assert step.seg_col.tolist() == [0, 1, 3]
    assert step.width == 6 and len(result.plan) == 4
    # backward, the last-packed sequence is processed first: position 0 of request 2 is at column 3
    assert finishes(result) == [18 + 6 + 0.5, 18 + 5 + 0.5, 18 + 3 + 0.5]


def test_ebatch_stream_refills_a_backward_slot_mid_window_and_waits_for_both_directions():
    result = run("tiny-bilstm", [3, 5, 2], "ebatch", batch_size=2, timesteps=4, bidirectional="stream")
    plan = result.plan
    # stages: layer 0 forward / backward, layer 1 forward / backward, each with 2 streaming slots.
    # window 1, layer 0 forward: slot 0 holds request 0, then request 1 from column 3 (split: 4 steps
    # carried); slot 1 holds request 2. Requests 0 and 2 are done in this direction only.
    check_step(plan[0], 0, 0, 0, [[0, 0, 0, 1], [2, 2, -1, -1]], [[0, 1, 2, 0], [0, 1, -1, -1]],
               [[T, F, F, T], [T, F, F, F]], notify=True)
    # window 2, layer 0 backward (6 useful cells, the fullest): each sequence walks from its end; slot 0 is
    # refilled at column 3 by request 1, which starts at its last position with a reset
    check_step(plan[1], 4, 0, 1, [[0, 0, 0, 1], [2, 2, -1, -1]], [[2, 1, 0, 4], [1, 0, -1, -1]],
               [[T, F, F, T], [T, F, F, F]], notify=True)
    # only now, both directions done, requests 0 and 2 enter layer 1 (4 useful cells in every stage: ties
    # go to the deepest stage, forward first); request 2 is split behind request 0 in slot 0
    check_step(plan[2], 8, 1, 0, [[0, 0, 0, 2], [-1] * 4], [[0, 1, 2, 0], [-1] * 4], [[T, F, F, T], [F] * 4],
               notify=True)
    check_step(plan[3], 12, 1, 1, [[0, 0, 0, 2], [-1] * 4], [[2, 1, 0, 1], [-1] * 4], [[T, F, F, T], [F] * 4],
               notify=True)
    # request 1 reaches layer 1 only after its last cell of layer 0 in both directions
    first_layer1 = min(i for i, (_, step) in enumerate(plan) if step.layer == 1 and 1 in step.seg_request)
    last_layer0 = max(i for i, (_, step) in enumerate(plan) if step.layer == 0 and 1 in step.seg_request)
    assert {plan[i][1].direction for i, (_, s) in enumerate(plan) if s.layer == 0 and 1 in s.seg_request} == {0, 1}
    assert last_layer0 < first_layer1
    # request 0 completes in window 4 (layer 1 backward) when position 0 is done: column 2, + 0.5 s
    assert finishes(result)[0] == 12 + 3 + 0.5
    assert all(step.width <= 4 for _, step in plan)


def test_ebatch_stream_orders_stages_by_the_rule():
    lengths = [6, 6, 6, 2]
    stream = {"batch_size": 2, "timesteps": 4, "bidirectional": "stream"}
    fullest = run("tiny-bilstm", lengths, "ebatch", **stream)
    oldest = run("tiny-bilstm", lengths, "ebatch", stage_order="oldest", **stream)
    deepest = run("tiny-bilstm", lengths, "ebatch", stage_order="deepest", **stream)
    kinds = {name: [(s.layer, s.direction) for _, s in r.plan] for name, r in
             [("fullest", fullest), ("oldest", oldest), ("deepest", deepest)]}
    # every rule starts with layer 0 forward (nothing else is ready; forward before backward)
    assert all(k[0] == (0, 0) for k in kinds.values())
    # deepest: layer 1 runs as soon as any sequence is ready for it
    first_deep = kinds["deepest"].index((1, 0))
    assert kinds["deepest"][first_deep - 1] == (0, 1)
    assert all(r.summary()["completed"] == 4 for r in (fullest, oldest, deepest))


def test_ebatch_stream_mixed_model_streams_its_unidirectional_layers_together():
    # MIX: a bidirectional layer 0, then two unidirectional layers evaluated together per window
    result = run(MIX, [2, 2], "ebatch", batch_size=2, timesteps=4, bidirectional="stream")
    kinds = [(s.layer, s.direction) for _, s in result.plan]
    assert kinds == [(0, 0), (0, 1), (1, 0), (2, 0)]
    assert result.plan[2][1].seg_request.tolist() == result.plan[3][1].seg_request.tolist()


def test_cellular_oldest_priority_moves_the_oldest_request_through_the_layers_first():
    lengths = [2, 2, 2]
    oldest = run("tiny-lstm", lengths, "cellular", batch_size=1, priority="oldest")
    got = [(layer, cells[0][1], cells[0][2]) for _, layer, _, cells in invocations(oldest.plan)]
    # request 0 goes through both layers before request 1 starts; ties between the types holding the oldest
    # request go to the type with more ready cells (layer 0, when request 1 is ready there too)
    assert got == [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1), (0, 1, 0), (0, 1, 1), (1, 1, 0), (1, 1, 1),
                   (0, 2, 0), (0, 2, 1), (1, 2, 0), (1, 2, 1)]
    assert finishes(oldest) == [4, 8, 12]
    most_ready = run("tiny-lstm", lengths, "cellular", batch_size=1)
    # most-ready keeps running layer 0 while it has more ready cells: request 0 waits in layer 1
    assert finishes(most_ready)[0] > finishes(oldest)[0]
    assert sorted(finishes(most_ready))[-1] == 12
