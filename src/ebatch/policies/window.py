"""Shared machinery of the layer-by-layer policies (sequential, padding, E-BATCH).

These policies form a *window*: segments over ``slots x width`` cells, then evaluate it for every
(layer, direction) of the window's cell types in order (by default all of the model's) before forming the
next window. A subclass decides what the next window holds (:meth:`WindowPolicy._form_window`) and may
act on the requests a finished window completes (:meth:`WindowPolicy._window_done`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ebatch.model import RNNModel
from ebatch.policies.base import Policy
from ebatch.step import BatchStep

__all__ = ["Window", "WindowPolicy"]

_NONE = np.zeros(0, dtype=np.int64)
_NONE.flags.writeable = False


@dataclass(frozen=True)
class Window:
    """Segments of one window and the requests whose last cell (of these cell types) it holds.

    ``cell_types``: the (layer, direction) pairs the window is evaluated for, in order; ``None`` means all
    of the model's. ``mirrored``: the segments are whole sequences in forward order, and a backward step
    mirrors them (columns from the window's end, positions from each sequence's end); otherwise every
    step uses the segments as they are.
    """

    width: int
    slots: int
    rows: np.ndarray
    cols: np.ndarray
    requests: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    resets: np.ndarray
    completes: np.ndarray
    cell_types: tuple[tuple[int, int], ...] | None = None
    mirrored: bool = True

    def without(self, ids: np.ndarray) -> Window | None:
        """This window with the segments of requests ``ids`` removed (cancelled); ``None`` if it empties."""
        keep = ~np.isin(self.requests, ids)
        if keep.all():
            return self
        if not keep.any():
            return None
        return replace(self, rows=self.rows[keep], cols=self.cols[keep], requests=self.requests[keep],
                       starts=self.starts[keep], lengths=self.lengths[keep], resets=self.resets[keep],
                       completes=self.completes[~np.isin(self.completes, ids)])


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

    def _window_done(self, window: Window) -> np.ndarray:
        """The ids of the requests a finished window completes (it held their last cells)."""
        return window.completes

    def next_step(self, now_s: float) -> BatchStep | None:
        if self._window is None:
            self._window = self._form_window(now_s)
            self._cell_type = 0
            if self._window is None:
                return None
        w = self._window
        layer, direction = (w.cell_types or self.model.cell_types)[self._cell_type]
        if direction == 0 or not w.mirrored:
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

    def _cancel(self, ids: np.ndarray) -> None:
        gone = set(ids.tolist())
        self.queue = type(self.queue)(r for r in self.queue if r not in gone)
        if self._window is not None:
            self._window = self._window.without(ids)  # None when nothing of it is left

    def _step_done(self, step: BatchStep) -> np.ndarray:
        self._cell_type += 1
        window = self._window
        if self._cell_type < len(window.cell_types or self.model.cell_types):
            return _NONE
        self._window = None
        return self._window_done(window)


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
