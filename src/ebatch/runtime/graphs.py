"""A step's recurrence as one fixed-shape loop over its dense ``[width, slots]`` grid, captured as a CUDA
graph per (cell type, slots, width) on CUDA and run eagerly elsewhere (the CPU tests run this same code).

The torch executor launches a handful of kernels per column; on a GPU at these sizes that is launch-bound.
Here every column has the same shape: the projected gates are scattered into the grid (padded cells hold
zeros), and two masks say per cell whether its row is active (``active``: else the row's state is left
unchanged) and whether it carries the row's state in (``keep``: 0 at a reset). Each row starts from
``h0``/``c0``: a saved state where the row's first cell continues a request from an earlier step, zeros
otherwise. That covers every *row-regular* step (``StepPlan.row_regular``), which is every step the window
and cellular policies emit; the executor runs any other step with its column loop.

:class:`GraphRecurrence` keeps, per shape, the static input and output tensors and (on CUDA) the captured
graph; a new shape is captured on first use (after one eager warm-up run, as CUDA graphs need), at most
``max_graphs`` are kept (least recently used dropped).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ebatch.runtime.plan import SAVED, ZERO, StepPlan

__all__ = ["GraphRecurrence"]


class GraphRecurrence:
    """Masked dense recurrence for one executor's weights (lists indexed by cell type, gate order i, f, o, g
    or r, z, n; ``b_hh``: the recurrent GEMM's bias). ``capture``: record CUDA graphs (CUDA only)."""

    def __init__(self, torch, w_hh: list, b_hh: list, lstm: bool, hidden: int, capture: bool,
                 max_graphs: int = 64) -> None:
        self._torch, self._w_hh, self._b_hh = torch, w_hh, b_hh
        self._lstm, self._hidden, self._capture = lstm, hidden, capture
        self._max_graphs = max_graphs
        self._shapes: OrderedDict[tuple, dict] = OrderedDict()
        self.captured = 0  # graphs recorded so far (0 when run eagerly)
        self.runs = 0  # steps run

    def masks(self, plan: StepPlan, device) -> tuple:
        """``keep``, ``active`` ``[width, slots, 1]`` and, per row, the segment whose saved state starts it."""
        torch = self._torch
        size = plan.width * plan.slots
        keep = np.ones(size, np.float32)
        keep[plan.cell_dense[plan.cell_pred == ZERO]] = 0.0
        active = np.zeros(size, np.float32)
        active[plan.cell_dense] = 1.0
        saved = np.flatnonzero(plan.cell_pred == SAVED)
        rows = plan.cell_dense[saved]  # column 0: the dense index is the row
        shape = (plan.width, plan.slots, 1)
        return (torch.from_numpy(keep).view(shape).to(device), torch.from_numpy(active).view(shape).to(device),
                rows.tolist(), plan.cell_seg[saved].tolist())

    def run(self, cell_type: int, gates_dense, keep, active, h0, c0) -> tuple:
        """``(h, c)`` of every grid cell ``[width, slots, H]`` (c is None for a GRU); inputs as in the module
        docstring: ``gates_dense [width, slots, G*H]``, ``h0``/``c0`` ``[slots, H]``."""
        self.runs += 1
        if not self._capture:
            return self._loop(cell_type, gates_dense, keep, active, h0, c0)
        key = (cell_type, tuple(gates_dense.shape))
        entry = self._shapes.get(key)
        if entry is None:
            entry = self._record(cell_type, gates_dense, keep, active, h0, c0)
            self._shapes[key] = entry
            while len(self._shapes) > self._max_graphs:
                self._shapes.popitem(last=False)
        else:
            self._shapes.move_to_end(key)
        for name, value in (("gates", gates_dense), ("keep", keep), ("active", active), ("h0", h0), ("c0", c0)):
            if value is not None:
                entry[name].copy_(value)
        entry["graph"].replay()
        return entry["h"].clone(), (entry["c"].clone() if self._lstm else None)

    def _record(self, cell_type: int, gates_dense, keep, active, h0, c0) -> dict:
        torch = self._torch
        entry = {"gates": gates_dense.clone(), "keep": keep.clone(), "active": active.clone(), "h0": h0.clone(),
                 "c0": c0.clone() if c0 is not None else None}
        args = (entry["gates"], entry["keep"], entry["active"], entry["h0"], entry["c0"])
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            self._loop(cell_type, *args)  # warm-up outside the graph
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            entry["h"], entry["c"] = self._loop(cell_type, *args)
        entry["graph"] = graph
        self.captured += 1
        return entry

    def _loop(self, cell_type: int, gates_dense, keep, active, h0, c0) -> tuple:
        """The fixed-shape column loop (what a graph records)."""
        torch, hid = self._torch, self._hidden
        w_t, b = self._w_hh[cell_type].t(), self._b_hh[cell_type]
        width = gates_dense.shape[0]
        h_all = torch.empty(gates_dense.shape[:2] + (hid,), device=gates_dense.device)
        c_all = torch.empty_like(h_all) if self._lstm else None
        h, c = h0, c0
        for j in range(width):
            hp = h * keep[j]
            z = torch.addmm(b, hp, w_t)
            g = gates_dense[j]
            if self._lstm:
                z += g
                sig = z[:, : 3 * hid].sigmoid()
                cand = z[:, 3 * hid :].tanh()
                c_new = sig[:, hid : 2 * hid] * (c * keep[j]) + sig[:, :hid] * cand
                h_new = sig[:, 2 * hid :] * c_new.tanh()
                c = torch.lerp(c, c_new, active[j])
                c_all[j] = c_new
            else:
                rz = (z[:, : 2 * hid] + g[:, : 2 * hid]).sigmoid()
                cand = torch.addcmul(g[:, 2 * hid :], rz[:, :hid], z[:, 2 * hid :]).tanh()
                h_new = torch.lerp(cand, hp, rz[:, hid:])
            h = torch.lerp(h, h_new, active[j])
            h_all[j] = h_new
        return h_all, c_all
