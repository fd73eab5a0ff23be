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

A step's *layout* (:meth:`BatchStep.layout_key`) is everything but where each segment starts in its
request: consecutive steps that move the same requests on by the same columns share one. Executors keep
what they derive from a layout for the last :data:`LAYOUTS_KEPT` layouts (:class:`RecentLayouts`), and the
host cost model charges for a layout that is not among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LAYOUTS_KEPT", "BatchStep", "RecentLayouts"]

#: how many recent step layouts an executor keeps its plans for (window policies repeat one layout for
#: every layer; cellular runs under light load repeat one for every column)
LAYOUTS_KEPT = 4

_SEGMENT_FIELDS = ("seg_row", "seg_col", "seg_request", "seg_start", "seg_length", "seg_reset")


_INT64, _BOOL = np.dtype(np.int64), np.dtype(bool)


def _least(values: np.ndarray):
    """``values.min()`` of a non-empty array, through argmin (several times faster on small arrays)."""
    return values[values.argmin()]


def _readonly(values, dtype: np.dtype) -> np.ndarray:
    """A flat, contiguous, read-only array of ``dtype``: ``values`` itself when it already is one, else a copy."""
    if type(values) is np.ndarray and values.dtype == dtype and values.ndim == 1:
        if not values.flags.writeable and values.flags.c_contiguous:
            return values  # already read-only (e.g. shared with another step)
        array = values.copy()
    else:
        array = np.array(values, dtype=dtype)
        if array.ndim != 1:
            array = array.reshape(-1).copy()
    array.setflags(write=False)
    return array


def _taken(values, dtype: np.dtype) -> np.ndarray:
    """``values`` itself, made read-only, when it is a flat contiguous array of ``dtype`` that owns its data
    (so no other array can change it); else what :func:`_readonly` gives."""
    if (type(values) is np.ndarray and values.base is None and values.dtype == dtype and values.ndim == 1
            and values.flags.c_contiguous):
        values.setflags(write=False)
        return values
    return _readonly(values, dtype)


class _Shared:
    """Read-only arrays that steps share: ``0, 1, ..., k - 1`` and ``k`` zeros (views of one array grown on
    demand), and ``k`` copies of a width (the last :data:`_FILLED_ENTRIES` asked for)."""

    def __init__(self) -> None:
        self.counting = self.zeros = np.zeros(0, dtype=np.int64)
        self.views: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # by k (at most one per size up to the arrays')
        self.widths: dict[tuple[int, int], np.ndarray] = {}

    def get(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        views = self.views.get(k)
        if views is None:
            if k > self.counting.size:
                size = max(k, 2 * self.counting.size, 64)
                self.counting, self.zeros = np.arange(size), np.zeros(size, dtype=np.int64)
                self.counting.setflags(write=False)
                self.zeros.setflags(write=False)
                self.views.clear()
            views = self.views[k] = (self.counting[:k], self.zeros[:k])
        return views

    def filled(self, k: int, width: int) -> np.ndarray:
        array = self.widths.get((k, width))
        if array is None:
            if len(self.widths) >= _FILLED_ENTRIES:
                self.widths.clear()
            array = self.widths[k, width] = np.full(k, width, dtype=np.int64)
            array.setflags(write=False)
        return array


_FILLED_ENTRIES = 4096
_SHARED = _Shared()


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
        setattr_ = object.__setattr__
        row = _readonly(self.seg_row, _INT64)
        col = _readonly(self.seg_col, _INT64)
        request = _readonly(self.seg_request, _INT64)
        start = _readonly(self.seg_start, _INT64)
        length = _readonly(self.seg_length, _INT64)
        reset = _readonly(self.seg_reset, _BOOL)
        setattr_(self, "seg_row", row)
        setattr_(self, "seg_col", col)
        setattr_(self, "seg_request", request)
        setattr_(self, "seg_start", start)
        setattr_(self, "seg_length", length)
        setattr_(self, "seg_reset", reset)
        n = row.size
        if not (n == col.size == request.size == start.size == length.size == reset.size):
            raise ValueError("BatchStep: segment arrays must all have the same length")
        if self.direction not in (0, 1):
            raise ValueError(f"BatchStep direction: must be 0 (forward) or 1 (backward), got {self.direction}")
        if n == 0 or self.width < 1:
            raise ValueError("BatchStep: a step needs at least one segment and width >= 1")
        outside = "BatchStep: a segment falls outside the slots x width grid"
        try:  # segments per row (as many entries as the highest row + 1); bincount refuses a negative row
            per_row = np.bincount(row)
        except ValueError:
            raise ValueError(outside) from None
        end = col + length
        if per_row.size > self.slots or _least(col) < 0 or _least(length) < 1 or end[end.argmax()] > self.width:
            raise ValueError(outside)
        # sizes every backend and log asks for, computed once
        setattr_(self, "_occupied_rows", int(np.count_nonzero(per_row)))
        setattr_(self, "_useful_cells", int(length.sum()))

    @classmethod
    def one_per_row(cls, layer: int, direction: int, width: int, slots: int, requests, starts, resets,
                    fused: bool = False, notify: bool = False) -> BatchStep:
        """The step whose segment ``i`` fills row ``i`` over all ``width`` columns (cellular batching's shape:
        ``seg_row = 0..k-1``, ``seg_col = 0``, ``seg_length = width``). The same object the constructor would
        build, without the general layout checks that this shape passes by construction. It takes over
        ``requests``, ``starts`` and ``resets`` when they are arrays of its dtypes that own their data (it
        makes them read-only instead of copying them).

        Raises ``ValueError`` for a bad direction, width < 1, no segments, more segments than slots, or
        arrays of different lengths.
        """
        request, start, reset = _taken(requests, _INT64), _taken(starts, _INT64), _taken(resets, _BOOL)
        k = request.size
        if not k == start.size == reset.size:
            raise ValueError("BatchStep: segment arrays must all have the same length")
        if direction not in (0, 1):
            raise ValueError(f"BatchStep direction: must be 0 (forward) or 1 (backward), got {direction}")
        if k == 0 or width < 1:
            raise ValueError("BatchStep: a step needs at least one segment and width >= 1")
        if k > slots:
            raise ValueError("BatchStep: a segment falls outside the slots x width grid")
        row, col = _SHARED.get(k)
        length = _SHARED.filled(k, width)
        step = object.__new__(cls)
        vars(step).update(  # every field, as __init__ would set them (frozen: no __setattr__)
            layer=layer, direction=direction, width=width, slots=slots, seg_row=row, seg_col=col,
            seg_request=request, seg_start=start, seg_length=length, seg_reset=reset, fused=fused, notify=notify,
            _occupied_rows=k, _useful_cells=k * width,
        )
        return step

    # ---- sizes ---------------------------------------------------------------------------------------

    @property
    def occupied_rows(self) -> int:
        """Rows holding at least one segment; only these are computed."""
        return self._occupied_rows

    @property
    def computed_cells(self) -> int:
        return self.occupied_rows * self.width

    @property
    def useful_cells(self) -> int:
        return self._useful_cells

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

    def column_rows(self) -> np.ndarray:
        """Rows holding a cell in each column, ``[width]`` (segments of one row never overlap)."""
        ends = np.bincount(self.seg_end_col, minlength=self.width + 1)
        return np.cumsum(np.bincount(self.seg_col, minlength=self.width + 1) - ends)[: self.width]

    def layout_key(self) -> tuple:
        """Width, direction and every segment's row, column, length, reset flag and request: all an
        executor's plan of the step depends on (not the segments' start positions)."""
        return (self.width, self.direction) + tuple(
            a.tobytes() for a in (self.seg_row, self.seg_col, self.seg_length, self.seg_reset, self.seg_request))

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


class RecentLayouts:
    """The last :data:`LAYOUTS_KEPT` distinct step layouts, each with what was made for it (the oldest goes
    first)."""

    def __init__(self) -> None:
        self._made: dict[tuple, object] = {}

    def __contains__(self, step: BatchStep) -> bool:
        return step.layout_key() in self._made

    def fetch(self, step: BatchStep, make=lambda step: None) -> tuple[object, bool]:
        """What was made for ``step``'s layout, and whether it is new (then ``make(step)`` made it now)."""
        key = step.layout_key()
        if key in self._made:
            return self._made[key], False
        if len(self._made) >= LAYOUTS_KEPT:
            del self._made[next(iter(self._made))]
        made = self._made[key] = make(step)
        return made, True
