"""``GateWeights``: one (layer, direction)'s weights laid out for the executors, prepared once.

Every executor evaluates a cell the same way: the input projection ``x @ W_ih^T + bias`` of all a step's
cells is one GEMM, then per column ``h_prev @ W_hh^T`` and the gate math. What they share is prepared here:

- **gate order**: LSTM blocks reordered from PyTorch's (i, f, g, o) to (i, f, o, g), so the three sigmoid
  gates are one contiguous slice; GRU keeps (r, z, n);
- **bias folding**: LSTM ``b_ih + b_hh`` goes into the input projection; GRU's recurrent biases of r and z
  too, while the n block's recurrent bias ``b_hn`` stays inside ``r * (h W_hn^T + b_hn)``, as in PyTorch;
- **per layer**: cell type, hidden size, LSTM projection ``w_hr`` and GRU variant may differ from layer to
  layer (a :class:`~ebatch.runtime.stages.ModelStages` stack);
- **half-sigmoid scaling** (optional): the sigmoid blocks' rows and biases scaled by 0.5 (exact in floating
  point), so one ``tanh`` over a column's gates gives every activation: ``sigmoid(x) = 0.5 * tanh(x / 2) + 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import RNNWeights

__all__ = ["GateWeights", "gate_weights"]


@dataclass(frozen=True, eq=False)
class GateWeights:
    """Float32, C-contiguous. ``G`` = 4 (LSTM: i, f, o, g) or 3 (GRU: r, z, n) gate blocks of ``H`` rows."""

    w_ih: np.ndarray  # [G*H, input]
    w_hh: np.ndarray  # [G*H, H]
    bias: np.ndarray  # [G*H], added to the input projection
    b_hn: np.ndarray  # [H], GRU's n-block recurrent bias (inside r * (...)); zeros for an LSTM
    half_sigmoid: bool  # sigmoid blocks scaled by 0.5 (see the module docstring)
    lstm: bool = True
    w_hr: np.ndarray | None = None  # [P, H], LSTM projection of the hidden state, or None
    reset_after: bool = True  # GRU: PyTorch's r * (W_hn h + b_hn); False: ONNX's W_hn (r * h) + b_hn

    @property
    def hidden(self) -> int:
        return len(self.b_hn)

    @property
    def plain(self) -> bool:
        """No projection and PyTorch's GRU variant: what every backend's fast path computes."""
        return self.w_hr is None and self.reset_after


def gate_weights(weights: RNNWeights | ModelStages, half_sigmoid: bool = False) -> list[GateWeights]:
    """One :class:`GateWeights` per cell type, in the model's ``cell_types`` order (layer, then direction)."""
    out = []
    for layer in ModelStages.of(weights).layers:
        h, lstm = layer.hidden_size, layer.cell == "lstm"
        sigmoid_rows = 3 * h if lstm else 2 * h
        gates = 4 * h if lstm else 3 * h
        order = np.r_[0 : 2 * h, 3 * h : 4 * h, 2 * h : 3 * h] if lstm else np.arange(3 * h)
        scale = np.ones(gates, dtype=np.float32)
        if half_sigmoid:
            scale[:sigmoid_rows] = 0.5
        for w in layer.directions:
            if lstm:
                bias = (w.b_ih + w.b_hh)[order]
                b_hn = np.zeros(h, np.float32)
            elif layer.reset_after:
                bias = w.b_ih + np.r_[w.b_hh[: 2 * h], np.zeros(h, np.float32)]
                b_hn = np.array(w.b_hh[2 * h :], dtype=np.float32)
            else:  # ONNX linear_before_reset=0: b_hn sits outside r * (...), so it folds into the projection
                bias = w.b_ih + w.b_hh
                b_hn = np.zeros(h, np.float32)
            out.append(GateWeights(
                w_ih=np.ascontiguousarray(w.w_ih[order] * scale[:, None], dtype=np.float32),
                w_hh=np.ascontiguousarray(w.w_hh[order] * scale[:, None], dtype=np.float32),
                bias=np.ascontiguousarray(bias * scale, dtype=np.float32),
                b_hn=b_hn,
                half_sigmoid=half_sigmoid,
                lstm=lstm,
                w_hr=None if w.w_hr is None else np.ascontiguousarray(w.w_hr, dtype=np.float32),
                reset_after=layer.reset_after,
            ))
    return out
