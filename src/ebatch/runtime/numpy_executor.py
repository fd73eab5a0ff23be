"""``NumpyExecutor``: the executor on NumPy arrays (float32, the BLAS NumPy links); no torch needed.

The column loop, state handling and weight layout are the base class's
(:class:`~ebatch.runtime.executor.Executor`); this module gives the array primitives and the cell
arithmetic. Weights come with the sigmoid blocks scaled by 0.5 (:mod:`ebatch.runtime.gates`), so one
``tanh`` over a column's gates gives every activation.
"""

from __future__ import annotations

import numpy as np

from ebatch.runtime.executor import Executor
from ebatch.runtime.gates import GateWeights

__all__ = ["NumpyExecutor"]


class NumpyExecutor(Executor):
    """The executor that needs NumPy only (the slowest; the fallback when torch is not installed)."""

    name = "numpy"
    half_sigmoid = True

    def _load(self, cells: list[GateWeights]) -> None:
        self._w_ih_t = [np.ascontiguousarray(c.w_ih.T) for c in cells]
        self._w_hh_t = [np.ascontiguousarray(c.w_hh.T) for c in cells]
        self._bias = [c.bias for c in cells]
        self._b_hn = [c.b_hn for c in cells]
        self._scratch = [np.empty((0, c.w_hh.shape[0]), dtype=np.float32) for c in cells]

    # ---- arrays -------------------------------------------------------------------------------------

    def _to_device(self, x: np.ndarray) -> np.ndarray:
        return x

    def _to_numpy(self, x: np.ndarray) -> np.ndarray:
        return x

    def _empty(self, shape: tuple[int, int]) -> np.ndarray:
        return np.empty(shape, dtype=np.float32)

    def _zeros(self, shape: tuple[int, int]) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    def _flip(self, x: np.ndarray) -> np.ndarray:
        return x[::-1]

    def _index(self, order: np.ndarray) -> np.ndarray:
        return order

    def _split(self, x: np.ndarray, counts: list[int]) -> list:
        return np.split(x, np.cumsum(counts)[:-1])

    def _gather(self, parts: list, order: np.ndarray | None) -> np.ndarray:
        x = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return x if order is None else np.take(x, order, axis=0)

    def _take(self, x: np.ndarray, order: np.ndarray | None) -> np.ndarray:
        return x if order is None else np.take(x, order, axis=0)

    # ---- arithmetic ---------------------------------------------------------------------------------

    def _project(self, cell_type: int, x: np.ndarray) -> np.ndarray:
        gates = np.matmul(x, self._w_ih_t[cell_type])
        gates += self._bias[cell_type]
        return gates

    def _cell(self, cell_type: int, gates, h_prev, c_prev, h_out, c_out) -> None:
        h, n = self._hidden_of[cell_type], len(h_out)
        if len(self._scratch[cell_type]) < n:
            self._scratch[cell_type] = np.empty((n, gates.shape[1]), dtype=np.float32)
        z = self._scratch[cell_type][:n]
        np.matmul(h_prev, self._w_hh_t[cell_type], out=z)
        if self._lstm_of[cell_type]:
            z += gates
            np.tanh(z, out=z)
            sig = z[:, : 3 * h]
            sig *= 0.5
            sig += 0.5
            i, f, o, cand = z[:, :h], z[:, h : 2 * h], z[:, 2 * h : 3 * h], z[:, 3 * h :]
            np.multiply(f, c_prev, out=c_out)
            i *= cand
            c_out += i
            np.tanh(c_out, out=i)
            np.multiply(o, i, out=h_out)
        else:
            rz = z[:, : 2 * h]
            rz += gates[:, : 2 * h]
            np.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            r, u, cand = z[:, :h], z[:, h : 2 * h], z[:, 2 * h :]
            if self._reset_after[cell_type]:
                cand += self._b_hn[cell_type]
                cand *= r
            else:  # ONNX linear_before_reset=0: W_hn (r * h)
                np.matmul(r * h_prev, self._w_hh_t[cell_type][:, 2 * h :], out=cand)
            cand += gates[:, 2 * h :]
            np.tanh(cand, out=cand)
            np.subtract(h_prev, cand, out=h_out)
            h_out *= u
            h_out += cand
