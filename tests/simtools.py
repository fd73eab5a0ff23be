"""Helpers shared by the simulator tests: a unit-cost backend, small models and plan views.

``UnitBackend`` makes every time and energy computable in one's head: an invocation of ``c`` columns
takes ``c`` seconds (so any step takes ``width`` seconds, fused or not), and costs 1 J per computed cell
(``occupied rows x width``), all booked as MAC energy.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ebatch.hardware import StepCost
from ebatch.model import Layer, RNNModel
from ebatch.step import BatchStep

__all__ = [
    "BI1",
    "MIX",
    "ONE",
    "UNI_BI",
    "UnitBackend",
    "as_lists",
    "cell_log",
    "invocations",
    "segments",
]

#: A hand-built 1-layer unidirectional LSTM.
ONE = RNNModel("one-layer", (Layer("lstm", 4, 4),))
#: GNMT-encoder-like mix: first layer bidirectional (concatenated), the rest unidirectional.
MIX = RNNModel("gnmt-like", (Layer("lstm", 8, 16, True), Layer("lstm", 32, 16), Layer("lstm", 16, 16)))
#: One bidirectional LSTM layer: both directions of one layer finish a request.
BI1 = RNNModel("bi-1", (Layer("lstm", 4, 8, True),))
#: A unidirectional GRU layer under a bidirectional one (a bidirectional layer fed by a streaming one).
UNI_BI = RNNModel("uni-bi", (Layer("gru", 8, 16), Layer("gru", 16, 16, True), Layer("gru", 32, 8)))


class UnitBackend:
    """1 s per column of every invocation, 1 J per computed cell; ``notify_latency_s`` as given."""

    def __init__(self, notify_latency_s: float = 0.5) -> None:
        self.notify_latency_s = notify_latency_s
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def cost(self, step: BatchStep, commit: bool = True) -> StepCost:
        if commit:
            self.calls += 1
        energy = float(step.computed_cells)
        return StepCost(
            time_s=float(step.width),
            energy_j=energy,
            breakdown={"mac_j": energy, "macs": energy, "peak_macs": energy, "dram_weight_bytes": 0.0},
        )


def segments(step: BatchStep) -> list[tuple[int, int, int, int, int, bool]]:
    """(row, col, request, start, length, reset) of each segment, sorted by row then column."""
    rows = zip(step.seg_row, step.seg_col, step.seg_request, step.seg_start, step.seg_length, step.seg_reset)
    return sorted((int(a), int(b), int(c), int(d), int(e), bool(f)) for a, b, c, d, e, f in rows)


def invocations(plan: list[tuple[float, BatchStep]]) -> list[tuple[float, int, int, list]]:
    """The plan of a unit-backend run as single invocations: ``(start_s, layer, direction, cells)``.

    A non-fused step of width w is w invocations of one column (column j starts j seconds after the
    step under :class:`UnitBackend`); ``cells`` lists ``(row, request, position, reset)`` of the occupied
    rows. A fused step is one invocation; its cells are ``(row, col, request, position, reset)``.
    """
    out = []
    for start_s, step in plan:
        request, position, reset = step.dense()
        if step.fused:
            cells = [
                (r, c, int(request[r, c]), int(position[r, c]), bool(reset[r, c]))
                for r in range(step.slots)
                for c in range(step.width)
                if request[r, c] >= 0
            ]
            out.append((start_s, step.layer, step.direction, cells))
            continue
        for c in range(step.width):
            cells = [
                (r, int(request[r, c]), int(position[r, c]), bool(reset[r, c]))
                for r in range(step.slots)
                if request[r, c] >= 0
            ]
            out.append((start_s + c, step.layer, step.direction, cells))
    return out


def cell_log(plan: list[tuple[float, BatchStep]]):
    """Every evaluated cell of a plan: dict (request, layer, direction, position) -> list of occurrences.

    An occurrence is ``(step index, column, reset, segment index)``; ``(step index, column)`` orders
    cells in time (columns of one step run one after the other).
    """
    cells: dict[tuple[int, int, int, int], list[tuple[int, int, bool, int]]] = defaultdict(list)
    for index, (_, step) in enumerate(plan):
        sign = 1 if step.direction == 0 else -1
        for s, (col, req, start, length, rst) in enumerate(
            zip(step.seg_col, step.seg_request, step.seg_start, step.seg_length, step.seg_reset)
        ):
            for j in range(int(length)):
                key = (int(req), step.layer, step.direction, int(start + sign * j))
                cells[key].append((index, int(col) + j, bool(rst) and j == 0, s))
    return cells


def as_lists(*arrays: np.ndarray) -> list:
    return [a.tolist() for a in arrays]
