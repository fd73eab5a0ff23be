"""The column loop every executor shares, and the array primitives and cell arithmetic a backend provides.

:meth:`ColumnLoop._recur` evaluates a step's recurrence over its plan's columns (:mod:`ebatch.runtime.plan`):
per column, the previous states of its cells (a slice of earlier outputs, zeros, or a mix with states saved
by earlier steps), then the backend's :meth:`ColumnLoop._cell`; at the end, each request's state at its last
cell of the step is saved. A backend (NumPy, torch, compiled) subclasses :class:`~ebatch.runtime.executor.
Executor`, which keeps the per-request data this loop reads (``_states``) and the per-cell-type shapes
(``_hidden_of``, ``_lstm_of``, ``_out_of``, ``_w_hr_t``), and implements the primitives below.
"""

from __future__ import annotations

import numpy as np

from ebatch.runtime.gates import GateWeights
from ebatch.runtime.plan import StepPlan

__all__ = ["ColumnLoop"]


class ColumnLoop:
    """The recurrence over a plan's columns; abstract array primitives and cell arithmetic."""

    # ---- the column loop ----------------------------------------------------------------------------

    def _recur(self, cell_type: int, gates, plan: StepPlan, requests: list[int]):
        """The recurrence over the plan's columns: outputs ``[n_cells, H]`` column-major; saves the states
        each request reached at its last cell of the step."""
        h, lstm, p = self._hidden_of[cell_type], self._lstm_of[cell_type], self._out_of[cell_type]
        w_hr_t = self._w_hr_t[cell_type]
        out = self._empty((plan.n_cells, p))
        c_all = self._empty((plan.n_cells, h)) if lstm else None
        g_cols, out_cols = self._split(gates, plan.counts), self._split(out, plan.counts)
        c_cols = self._split(c_all, plan.counts) if lstm else [None] * len(plan.counts)
        previous = None  # (offset, end) of the previous column
        for j, col in enumerate(plan.columns):
            n, source = col.count, col.source
            if source[0] == "slice" and previous == (source[1], source[2]):
                h_prev, c_prev = out_cols[j - 1], c_cols[j - 1]
            elif source[0] == "slice":
                h_prev = out[source[1] : source[2]]
                c_prev = c_all[source[1] : source[2]] if lstm else None
            else:
                h_prev, c_prev = self._gather_previous(cell_type, source, n, out, c_all, requests)
            previous = (col.offset, col.offset + n)
            if w_hr_t is None:
                self._cell(cell_type, g_cols[j], h_prev, c_prev, out_cols[j], c_cols[j])
            else:  # LSTM projection: h = (o * tanh(c)) W_hr^T
                unprojected = self._empty((n, h))
                self._cell(cell_type, g_cols[j], h_prev, c_prev, unprojected, c_cols[j])
                out_cols[j][...] = unprojected @ w_hr_t
        self._save_states(cell_type, plan, requests, out, c_all)
        return out

    def _gather_previous(self, cell_type: int, source: tuple, n: int, out, c_all, requests: list[int]):
        """Previous states of a column that is not one slice: zeros, earlier cells, saved states."""
        lstm = self._lstm_of[cell_type]
        h_prev = self._zeros((n, self._out_of[cell_type]))
        c_prev = self._zeros((n, self._hidden_of[cell_type])) if lstm else None
        if source[0] == "mixed":
            _, local, src, saved_local, saved_seg = source
            local, src = self._index(local), self._index(src)
            h_prev[local] = out[src]
            if lstm:
                c_prev[local] = c_all[src]
            for i, k in zip(saved_local.tolist(), saved_seg.tolist()):
                state = self._saved(cell_type, requests[k])
                h_prev[i] = state[0]
                if lstm:
                    c_prev[i] = state[1]
        return h_prev, c_prev

    def _save_states(self, cell_type: int, plan: StepPlan, requests: list[int], out, c_all) -> None:
        """Keep each request's state at its last cell of the step (a later segment of it overwrites)."""
        states, lstm = self._states[cell_type], self._lstm_of[cell_type]
        h_last = self._take(out, plan.last_cell)
        c_last = self._take(c_all, plan.last_cell) if lstm else None
        for k in plan.save_order:
            states[requests[k]] = (h_last[k], c_last[k] if lstm else None)

    def _saved(self, cell_type: int, request: int) -> tuple:
        state = self._states[cell_type].get(request)
        if state is None:
            raise ValueError(
                f"step: request {request} continues a sequence at a cell whose previous state was never computed"
            )
        return state

    # ---- what a subclass provides: array primitives ---------------------------------------------------

    def _load(self, cells: list[GateWeights]) -> None:
        """Keep the prepared weights (one per cell type) in the backend's arrays."""
        raise NotImplementedError

    def _to_device(self, x: np.ndarray):
        raise NotImplementedError

    def _to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def _empty(self, shape: tuple[int, int]):
        raise NotImplementedError

    def _zeros(self, shape: tuple[int, int]):
        raise NotImplementedError

    def _flip(self, x):
        raise NotImplementedError

    def _index(self, order: np.ndarray):
        """An index array as the backend's arrays take it."""
        raise NotImplementedError

    def _split(self, x, counts: list[int]) -> list:
        """Consecutive row blocks of ``x`` of ``counts`` rows (views)."""
        raise NotImplementedError

    def _gather(self, parts: list, order: np.ndarray | None):
        raise NotImplementedError

    def _take(self, x, order: np.ndarray | None):
        raise NotImplementedError

    # ---- what a subclass provides: arithmetic ---------------------------------------------------------

    def _project(self, cell_type: int, x):
        """The input projection of all a step's cells, one GEMM: ``x @ W_ih^T + bias``, ``[n_cells, G*H]``."""
        raise NotImplementedError

    def _cell(self, cell_type: int, gates, h_prev, c_prev, h_out, c_out) -> None:
        """One column: ``h_out`` (and LSTM ``c_out``) from the column's projected ``gates`` and previous states
        (``c_prev``/``c_out`` are None for a GRU). ``gates`` is this step's scratch and may be overwritten."""
        raise NotImplementedError
