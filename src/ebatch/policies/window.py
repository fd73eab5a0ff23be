"""Shared machinery of the layer-by-layer policies (sequential, padding, E-BATCH).

These policies form a *window*: forward segments over ``slots x width`` cells, then evaluate it for every
(layer, direction) of the model in order before forming the next window. A subclass only decides what
the next window holds (:meth:`WindowPolicy._form_window`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ebatch.model import RNNModel
from ebatch.policies.base import Policy
from ebatch.step import BatchStep

__all__ = ["Window", "WindowPolicy"]


@dataclass(frozen=True)
class Window:
    """Forward-order segments of one window and the requests whose last time-step it holds."""

    width: int
    slots: int
    rows: np.ndarray
    cols: np.ndarray
    requests: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    resets: np.ndarray
    completes: np.ndarray


class WindowPolicy(Policy):
    """Evaluates each window layer by layer (forward, then backward for bidirectional layers)."""

    notify = False

    def start(self, model: RNNModel) -> None:
        super().start(model)
        self.queue: deque[int] = deque()
        self._window: Window | None = None
        self._cell_type = 0

    def _enqueue(self, ids: np.ndarray) -> None:
        self.queue.extend(ids.tolist())

    def _form_window(self, now_s: float) -> Window | None:
        raise NotImplementedError

    def next_step(self, now_s: float) -> BatchStep | None:
        if self._window is None:
            self._window = self._form_window(now_s)
            self._cell_type = 0
            if self._window is None:
                return None
        layer, direction = self.model.cell_types[self._cell_type]
        w = self._window
        if direction == 0:
            cols, starts = w.cols, w.starts
        else:  # backward: columns mirrored, positions run from each segment's end to its start
            cols, starts = w.width - w.cols - w.lengths, w.starts + w.lengths - 1
        return BatchStep(
            layer=layer,
            direction=direction,
            width=w.width,
            slots=w.slots,
            seg_row=w.rows,
            seg_col=cols,
            seg_request=w.requests,
            seg_start=starts,
            seg_length=w.lengths,
            seg_reset=w.resets,
            notify=self.notify,
        )

    def on_step_done(self, step: BatchStep) -> np.ndarray:
        self._cell_type += 1
        if self._cell_type < len(self.model.cell_types):
            return np.zeros(0, dtype=np.int64)
        done = self._window.completes
        self._window = None
        return done


def whole_sequences(batch: list[int], lengths: np.ndarray, width: int, slots: int, rows=None, cols=None):
    """A window holding whole sequences, one segment each, all completing in it."""
    requests = np.asarray(batch, dtype=np.int64)
    n = requests.size
    return Window(
        width=width,
        slots=slots,
        rows=np.arange(n) if rows is None else np.asarray(rows),
        cols=np.zeros(n, dtype=np.int64) if cols is None else np.asarray(cols),
        requests=requests,
        starts=np.zeros(n, dtype=np.int64),
        lengths=lengths[requests],
        resets=np.ones(n, dtype=bool),
        completes=requests,
    )
