"""``StepPlan``: how an executor lays out the cells of one ``BatchStep`` (index work only, no arithmetic).

The executor evaluates only useful cells: padded cells and empty rows are skipped. It keeps the step's
cells in *column-major* order (column 0's cells, then column 1's, ...), so each column's cells are one
contiguous slice of the input projection, of the output and of the LSTM cell state. Occupied rows are
ordered by (first active column ascending, last active column descending): in every plan the window
policies emit (rows filled from column 0 forward, or ending at the last column backward) the rows active
in a column are then a contiguous range, and so are their predecessors in the previous column.

Each cell's recurrent input is its *predecessor*: the previous cell of its segment, or for a segment's
first cell the state reset to zero (``seg_reset``), the last cell of an earlier segment of the same
request in this step, or the request's state saved by an earlier step. Per column the plan says where
the previous state comes from: one slice of earlier outputs (the common case), all zeros, or a mix.

Cells are gathered *segment-major* (segment 0's cells in processing order, then segment 1's, ...), which
is what slicing each request's stored sequence gives; ``cm_from_seg`` reorders them to column-major and
``seg_from_cm`` back (``None`` when the two orders coincide).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebatch.step import BatchStep

__all__ = ["Column", "StepPlan", "ZERO", "SAVED"]

ZERO, SAVED = -1, -2  # predecessor codes: state reset to zero / the request's state saved by an earlier step


@dataclass(frozen=True)
class Column:
    """One column with at least one useful cell: its cells are ``offset .. offset + count - 1``.

    ``source`` gives their previous states: ``("slice", a, b)`` cells ``a..b-1`` (earlier in this step);
    ``("zeros",)``; or ``("mixed", local, src, saved_local, saved_seg)``: cells ``local`` take cells ``src``,
    cells ``saved_local`` the saved state of the request of segments ``saved_seg``, the others start from
    zero.
    """

    offset: int
    count: int
    source: tuple


@dataclass(frozen=True, eq=False)
class StepPlan:
    n_cells: int
    seg_offset: np.ndarray  # first cell of each segment, segment-major
    cm_from_seg: np.ndarray | None
    seg_from_cm: np.ndarray | None
    columns: tuple[Column, ...]
    counts: list[int]  # cells per column with at least one (the columns' sizes, in order)
    last_cell: np.ndarray  # column-major index of each segment's last cell
    save_order: list[int]  # segments by end column: saving states in this order leaves each request's last
    # the same layout as flat arrays, for compiled loops (one entry per column in ``columns``, per cell):
    col_offset: np.ndarray  # first cell of each column
    col_count: np.ndarray  # cells of each column
    col_slice: np.ndarray  # first cell of the slice holding the column's previous states, or -1 (not one slice)
    cell_pred: np.ndarray  # each cell's predecessor: a cell index, ZERO (reset) or SAVED (an earlier step's state)
    cell_seg: np.ndarray  # each cell's segment
    # the step's dense [width, slots] grid, for fixed-shape loops (CUDA graphs):
    slots: int
    width: int
    cell_dense: np.ndarray  # each cell's position column * slots + row in the grid
    row_regular: bool  # every cell's predecessor is zero, the cell left of it in its row, or a saved state at column 0

    @classmethod
    def build(cls, step: BatchStep) -> StepPlan:
        """Raises ``ValueError`` when two segments of the step overlap."""
        _, row_index = np.unique(step.seg_row, return_inverse=True)
        n_rows = int(row_index.max()) + 1
        first = np.full(n_rows, step.width, dtype=np.int64)
        last = np.zeros(n_rows, dtype=np.int64)
        np.minimum.at(first, row_index, step.seg_col)
        np.maximum.at(last, row_index, step.seg_end_col)
        rowpos_of_row = np.empty(n_rows, dtype=np.int64)
        rowpos_of_row[np.lexsort((-last, first))] = np.arange(n_rows)
        seg_rowpos = rowpos_of_row[row_index]

        lengths = step.seg_length
        n_seg = lengths.size
        n_cells = int(lengths.sum())
        seg_offset = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        cell_seg = np.repeat(np.arange(n_seg), lengths)
        cell_k = np.arange(n_cells) - seg_offset[cell_seg]
        cell_col = step.seg_col[cell_seg] + cell_k
        key = cell_col * n_rows + seg_rowpos[cell_seg]
        cm_from_seg = np.argsort(key, kind="stable")
        sorted_key = key[cm_from_seg]
        if sorted_key.size > 1 and np.any(sorted_key[1:] == sorted_key[:-1]):
            raise ValueError("BatchStep: segments overlap; a cell can hold only one request")
        seg_from_cm = np.empty(n_cells, dtype=np.int64)
        seg_from_cm[cm_from_seg] = np.arange(n_cells)
        last_cell = seg_from_cm[seg_offset + lengths - 1]

        # predecessor of each cell (segment-major), then in column-major order
        first_pred = np.where(step.seg_reset, ZERO, SAVED).astype(np.int64)
        by_end = np.argsort(step.seg_end_col, kind="stable")
        latest: dict[int, list[int]] = {}
        ends = step.seg_end_col
        for k in np.argsort(step.seg_col, kind="stable").tolist():
            request = int(step.seg_request[k])
            if not step.seg_reset[k]:
                # an earlier segment of the same request in this step, ending before this one starts
                earlier = [j for j in latest.get(request, ()) if ends[j] <= step.seg_col[k]]
                if earlier:
                    first_pred[k] = last_cell[max(earlier, key=lambda j: ends[j])]
            latest.setdefault(request, []).append(k)
        pred_seg = np.where(cell_k > 0, seg_from_cm[np.maximum(np.arange(n_cells) - 1, 0)], first_pred[cell_seg])
        pred = pred_seg[cm_from_seg]
        seg_of_cm = cell_seg[cm_from_seg]

        counts = np.bincount(cell_col, minlength=step.width)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # per column: cells whose predecessor is not the cell after the previous cell's predecessor
        col_cm = cell_col[cm_from_seg]
        broken = np.ones(n_cells, dtype=bool)
        broken[1:] = (col_cm[1:] == col_cm[:-1]) & (pred[1:] != pred[:-1] + 1)
        broken[offsets[counts > 0]] = False
        irregular = np.bincount(col_cm, weights=broken | (pred < 0), minlength=step.width)
        zeros = np.bincount(col_cm, weights=pred == ZERO, minlength=step.width)
        columns = []
        for c in np.flatnonzero(counts).tolist():
            off, n = int(offsets[c]), int(counts[c])
            if irregular[c] == 0:
                source = ("slice", int(pred[off]), int(pred[off]) + n)
            elif zeros[c] == n:
                source = ("zeros",)
            else:
                p = pred[off : off + n]
                local = np.flatnonzero(p >= 0)
                saved = np.flatnonzero(p == SAVED)
                source = ("mixed", local, p[local], saved, seg_of_cm[off + saved])
            columns.append(Column(off, n, source))
        cell_dense = (cell_col * step.slots + step.seg_row[cell_seg])[cm_from_seg].astype(np.int64)
        linked = pred >= 0
        row_regular = bool(np.all(cell_dense[pred[linked]] == cell_dense[linked] - step.slots)) and not bool(
            np.any((pred == SAVED) & (cell_dense >= step.slots)))
        nonempty = np.flatnonzero(counts)
        col_offset = offsets[nonempty].astype(np.int64)
        col_slice = np.where(irregular[nonempty] == 0, pred[col_offset], -1).astype(np.int64)
        identity = bool(np.all(cm_from_seg == np.arange(n_cells)))
        return cls(
            n_cells=n_cells,
            seg_offset=seg_offset,
            cm_from_seg=None if identity else cm_from_seg,
            seg_from_cm=None if identity else seg_from_cm,
            columns=tuple(columns),
            counts=[col.count for col in columns],
            last_cell=last_cell,
            save_order=by_end.tolist(),
            col_offset=col_offset,
            col_count=counts[nonempty].astype(np.int64),
            col_slice=col_slice,
            cell_pred=pred.astype(np.int64),
            cell_seg=seg_of_cm.astype(np.int64),
            slots=int(step.slots),
            width=int(step.width),
            cell_dense=cell_dense,
            row_regular=row_regular,
        )
