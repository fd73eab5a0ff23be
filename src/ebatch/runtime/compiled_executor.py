"""``CompiledExecutor`` (backend ``"compiled"``): each step's whole recurrence in one call into C++.

The torch executor's data flow with the column loop moved out of Python: the input projection of all a
step's cells stays one GEMM (oneDNN's linear on W_ih reordered once; ``torch.addmm`` without oneDNN);
then one call of the extension built by :mod:`ebatch.runtime.compiled` runs every column of the step: it
gathers the active rows' previous states (slices of earlier outputs, zeros at resets, states saved by
earlier steps), multiplies them by W_hh reordered once for oneDNN, applies the fused, vectorised gate
math and writes h (and c) into the step's outputs, returning each segment's last state, which the base
class saves per request. Python work per step is per segment (saved states in, last states out), never
per column.

CPU only. Every activation is one Sleef ``expf`` (1 ulp): ``sigmoid(x) = 1 / (1 + exp(-x))``,
``tanh(x) = 2 * sigmoid(2x) - 1``. Needs torch and a C++ compiler; :func:`~ebatch.runtime.engine.make_executor`
falls back to :class:`~ebatch.runtime.torch_executor.TorchExecutor` with a one-line warning when the
extension cannot be built.
"""

from __future__ import annotations

import numpy as np

from ebatch.runtime.gates import GateWeights
from ebatch.runtime.plan import SAVED, StepPlan
from ebatch.runtime.torch_executor import TorchExecutor
from ebatch.runtime.weights import RNNWeights

__all__ = ["CompiledExecutor"]

_REORDER_ROWS_HINT = 16


def _onednn_agrees(torch, w) -> bool:
    """Whether oneDNN's linear on a reordered weight is there and equals ``torch.mm`` at a few row counts."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(w, _REORDER_ROWS_HINT)
        generator = torch.Generator().manual_seed(0)
        for n in (1, 5, 16, 33):
            x = torch.rand(n, w.shape[1], generator=generator) - 0.5
            got = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
            if not torch.allclose(got, x @ w.t(), atol=1e-5, rtol=1e-5):
                return False
    except Exception:
        return False
    return True


class CompiledExecutor(TorchExecutor):
    """``threads``: ``torch.set_num_threads`` (MKL's GEMM threads too). Raises
    :class:`~ebatch.runtime.compiled.CompileUnavailable` when the extension cannot be had and
    ``ValueError`` for a device other than the CPU."""

    name = "compiled"

    def __init__(self, weights: RNNWeights, threads: int | None = None, keep_outputs: bool = True) -> None:
        from ebatch.runtime.compiled import load_extension

        self._ext = load_extension()
        super().__init__(weights, device="cpu", threads=threads, keep_outputs=keep_outputs)
        self.name = "compiled"

    def _load(self, cells: list[GateWeights]) -> None:
        super()._load(cells)
        torch = self._torch
        self._b_hn = [torch.from_numpy(np.ascontiguousarray(c.b_hn)) for c in cells]
        self._dnn_ih = self._dnn_hh = None
        if _onednn_agrees(torch, self._w_hh[0]):
            reorder = torch.ops.mkldnn._reorder_linear_weight
            self._dnn_ih = [reorder(w, _REORDER_ROWS_HINT) for w in self._w_ih]
            self._dnn_hh = [reorder(w, _REORDER_ROWS_HINT) for w in self._w_hh]
        self._no_state = torch.empty(0)
        self._flat: dict[StepPlan, tuple] = {}

    def _project(self, cell_type: int, x):
        if self._dnn_ih is None:
            return super()._project(cell_type, x)
        with self._torch.inference_mode():
            return self._torch.ops.mkldnn._linear_pointwise(x, self._dnn_ih[cell_type], self._bias[cell_type],
                                                            "none", [], "")

    def _flat_plan(self, plan: StepPlan) -> tuple:
        """The plan's arrays as tensors, saved cells renumbered ``-2 - k`` (k: their rank), kept per plan."""
        flat = self._flat.get(plan)
        if flat is None:
            if len(self._flat) >= 8:
                self._flat.clear()
            torch = self._torch
            pred = plan.cell_pred.copy()
            saved = np.flatnonzero(pred == SAVED)
            pred[saved] = -2 - np.arange(saved.size)
            flat = self._flat[plan] = (
                torch.from_numpy(plan.col_offset), torch.from_numpy(plan.col_count),
                torch.from_numpy(plan.col_slice), torch.from_numpy(pred), torch.from_numpy(plan.last_cell),
                plan.cell_seg[saved].tolist(),
            )
        return flat

    def _recur(self, cell_type: int, gates, plan: StepPlan, requests: list[int]):
        if not self._plain[cell_type]:  # projections and ONNX's GRU variant: the torch column loop
            return super()._recur(cell_type, gates, plan, requests)
        torch, lstm = self._torch, self._lstm_of[cell_type]
        col_offset, col_count, col_slice, pred, last_cell, saved_segs = self._flat_plan(plan)
        h0 = c0 = self._no_state
        if saved_segs:
            states = [self._saved(cell_type, requests[k]) for k in saved_segs]
            h0 = torch.stack([s[0] for s in states])
            c0 = torch.stack([s[1] for s in states]) if lstm else self._no_state
        out, h_last, c_last = self._ext.recur(
            gates, self._no_state if self._dnn_hh is None else self._dnn_hh[cell_type], self._w_hh[cell_type],
            self._b_hn[cell_type], h0, c0, col_offset, col_count, col_slice, pred, last_cell, lstm,
        )
        states = self._states[cell_type]
        for k in plan.save_order:
            states[requests[k]] = (h_last[k], c_last[k] if lstm else None)
        return out
