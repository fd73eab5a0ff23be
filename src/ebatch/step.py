"""``BatchStep``: the one contract between batching policies and backends (cost models, real executors).

A step evaluates one (layer, direction) of the model for ``width`` columns (time-steps) over a batch of
``slots`` rows. What each cell holds is given as *segments*: segment ``i`` occupies row ``seg_row[i]``,
columns ``seg_col[i] .. seg_col[i] + seg_length[i] - 1``, and holds request ``seg_request[i]`` at
positions ``seg_start[i], seg_start[i] + s, ...`` with ``s = +1`` forward and ``-1`` backward. Columns are
in processing order: column 0 is evaluated first, each column needs the previous one's state.
``seg_reset[i]`` says the recurrent state is reset before the segment's first cell (the sequence starts
there); otherwise the segment continues the state its request reached at its previous cell of this
(layer, direction). State belongs to requests, not rows: under cellular batching a request may sit in a
different row at every invocation.

Cells of an occupied row not covered by a segment are padding: computed, wasted. Rows with no segment are
not computed at all.

``fused=True``: the step is one invocation (weights loaded once, the input projection of all cells is one
matrix product). ``fused=False``: each column is a separate invocation (a run of cellular-batching
invocations of the same cell type); a backend may execute a prefix of such a step (:meth:`prefix`).

``notify=True``: the backend reports each sequence's completion as soon as its last cell is evaluated
(E-BATCH's hardware support); otherwise completions are known at the end of the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BatchStep"]

_SEGMENT_FIELDS = ("seg_row", "seg_col", "seg_request", "seg_start", "seg_length", "seg_reset")


def _readonly(values, dtype) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
    if array.flags.writeable:
        array = array.copy() if array.base is not None else array
        array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class BatchStep:
    """One invocation (or run of invocations) of one layer and direction; frozen, read-only arrays.

    Raises ``ValueError`` when a segment falls outside the ``slots x width`` grid.
    """

    layer: int
    direction: int
    width: int
    slots: int
    seg_row: np.ndarray
    seg_col: np.ndarray
    seg_request: np.ndarray
    seg_start: np.ndarray
    seg_length: np.ndarray
    seg_reset: np.ndarray
    fused: bool = True
    notify: bool = False

    def __post_init__(self) -> None:
        for name in _SEGMENT_FIELDS:
            dtype = bool if name == "seg_reset" else np.int64
            object.__setattr__(self, name, _readonly(getattr(self, name), dtype))
        n = self.seg_row.size
        if any(getattr(self, name).size != n for name in _SEGMENT_FIELDS):
            raise ValueError("BatchStep: segment arrays must all have the same length")
        if self.direction not in (0, 1):
            raise ValueError(f"BatchStep direction: must be 0 (forward) or 1 (backward), got {self.direction}")
        if n == 0 or self.width < 1:
            raise ValueError("BatchStep: a step needs at least one segment and width >= 1")
        if (
            self.seg_row.min() < 0
            or self.seg_row.max() >= self.slots
            or self.seg_col.min() < 0
            or self.seg_length.min() < 1
            or (self.seg_col + self.seg_length).max() > self.width
        ):
            raise ValueError("BatchStep: a segment falls outside the slots x width grid")

    # ---- sizes ---------------------------------------------------------------------------------------

    @property
    def occupied_rows(self) -> int:
        """Rows holding at least one segment; only these are computed."""
        return int(np.unique(self.seg_row).size)

    @property
    def computed_cells(self) -> int:
        return self.occupied_rows * self.width

    @property
    def useful_cells(self) -> int:
        return int(self.seg_length.sum())

    @property
    def padded_cells(self) -> int:
        return self.computed_cells - self.useful_cells

    @property
    def invocations(self) -> int:
        return 1 if self.fused else self.width

    @property
    def seg_end_col(self) -> np.ndarray:
        """One past the column of each segment's last cell."""
        return self.seg_col + self.seg_length

    # ---- views ---------------------------------------------------------------------------------------

    def dense(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(request, position, reset)`` arrays of shape ``[slots, width]``; padding holds request -1.

        Raises ``ValueError`` when two segments overlap.
        """
        request = np.full((self.slots, self.width), -1, dtype=np.int64)
        position = np.full((self.slots, self.width), -1, dtype=np.int64)
        reset = np.zeros((self.slots, self.width), dtype=bool)
        step = 1 if self.direction == 0 else -1
        for row, col, req, start, length, rst in zip(
            self.seg_row, self.seg_col, self.seg_request, self.seg_start, self.seg_length, self.seg_reset
        ):
            cells = slice(col, col + length)
            if np.any(request[row, cells] >= 0):
                raise ValueError(f"BatchStep: segments overlap in row {row}")
            request[row, cells] = req
            position[row, cells] = start + step * np.arange(length)
            reset[row, col] = rst
        return request, position, reset

    def prefix(self, columns: int) -> BatchStep:
        """The first ``columns`` columns of a non-fused step (what ran when a run was cut short)."""
        if self.fused:
            raise ValueError("BatchStep.prefix: only a non-fused run of invocations can be cut")
        if not 1 <= columns <= self.width:
            raise ValueError(f"BatchStep.prefix: columns must be in 1..{self.width}, got {columns}")
        if columns == self.width:
            return self
        keep = self.seg_col < columns
        return BatchStep(
            layer=self.layer,
            direction=self.direction,
            width=columns,
            slots=self.slots,
            seg_row=self.seg_row[keep],
            seg_col=self.seg_col[keep],
            seg_request=self.seg_request[keep],
            seg_start=self.seg_start[keep],
            seg_length=np.minimum(self.seg_length[keep], columns - self.seg_col[keep]),
            seg_reset=self.seg_reset[keep],
            fused=False,
            notify=self.notify,
        )
