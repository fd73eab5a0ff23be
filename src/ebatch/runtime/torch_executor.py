"""``TorchExecutor``: the executor on PyTorch tensors (CPU, or CUDA where present); needs the ``torch`` extra.

Same data flow as :class:`~ebatch.runtime.executor.NumpyExecutor` (one GEMM for a step's input projection,
one per column for the recurrence, padded cells skipped). On CPU builds with MKL the recurrent matrices
are packed once (``torch.ops.mkl._mkl_reorder_linear_weight``, what TorchScript freezing uses) so the
small per-column GEMM does not re-pack W_hh every time; elsewhere (CUDA, no MKL, or if a check at
construction disagrees with ``torch.mm``) a plain ``addmm``. Gate math uses in-place torch ops on the
column's gates (LSTM blocks reordered to i, f, o, g). All work runs under ``torch.inference_mode()``.
"""

from __future__ import annotations

import numpy as np

from ebatch.runtime.executor import Executor
from ebatch.runtime.plan import StepPlan
from ebatch.runtime.weights import RNNWeights

__all__ = ["TorchExecutor"]

_PACKED_MAX_ROWS = 48  # above this many rows a plain GEMM is as fast (measured here, 1 thread)


class TorchExecutor(Executor):
    """``device``: ``"cpu"`` (default) or ``"cuda"``; ``threads``: ``torch.set_num_threads`` (process-wide).

    Raises ``ValueError`` when torch is missing or the device is not available.
    """

    name = "torch"

    def __init__(self, weights: RNNWeights, device: str | None = None, threads: int | None = None,
                 keep_outputs: bool = True) -> None:
        try:
            import torch
        except ImportError:
            raise ValueError("backend 'torch' needs PyTorch: pip install 'ebatch[torch]'") from None
        self._torch = torch
        device = device or "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device: {device!r} requested but CUDA is not available; use 'cpu'")
        self.device = torch.device(device)
        if threads is not None:
            torch.set_num_threads(int(threads))
        super().__init__(weights, keep_outputs=keep_outputs)
        self.name = "torch" if self.device.type == "cpu" else f"torch-{self.device.type}"

    def _prepare(self) -> None:
        torch, dev = self._torch, self.device
        h, lstm = self._hidden, self.weights.cell == "lstm"

        def tensor(a: np.ndarray):
            return torch.from_numpy(np.array(a, dtype=np.float32, order="C")).to(dev)

        # LSTM gate blocks reordered to (i, f, o, g) so the three sigmoid gates are one slice
        order = np.r_[0 : 2 * h, 3 * h : 4 * h, 2 * h : 3 * h] if lstm else np.arange(3 * h)
        self._w_ih, self._bias, self._w_hh, self._b_hh = [], [], [], []
        for layer in self.weights.cells:
            for w in layer:
                self._w_ih.append(tensor(w.w_ih[order]))
                self._w_hh.append(tensor(w.w_hh[order]))
                if lstm:
                    self._bias.append(tensor((w.b_ih + w.b_hh)[order]))
                    self._b_hh.append(tensor(np.zeros(4 * h, np.float32)))
                else:  # r and z recurrent biases fold into the input projection; n's stays inside r * (...)
                    self._bias.append(tensor(w.b_ih + np.r_[w.b_hh[: 2 * h], np.zeros(h, np.float32)]))
                    self._b_hh.append(tensor(np.r_[np.zeros(2 * h, np.float32), w.b_hh[2 * h :]]))
        self._packed = self._pack_recurrent()

    def _pack_recurrent(self) -> list | None:
        """MKL-packed recurrent matrices (CPU builds with MKL), or None to use plain ``torch.mm``.

        Packing once avoids re-packing W_hh in every small per-column GEMM (about 2x faster at 4-32 rows
        here). Used only if a check at several row counts agrees with ``torch.mm``.
        """
        torch = self._torch
        if self.device.type != "cpu" or not torch.backends.mkl.is_available():
            return None
        try:
            packed = [torch.ops.mkl._mkl_reorder_linear_weight(w, 16) for w in self._w_hh]
            generator = torch.Generator().manual_seed(0)
            for n in (1, 5, 16, 33):
                x = torch.rand(n, self._hidden, generator=generator) - 0.5
                got = torch.ops.mkl._mkl_linear(x, packed[0], self._w_hh[0], self._b_hh[0], n)
                want = torch.addmm(self._b_hh[0], x, self._w_hh[0].t())
                if not torch.allclose(got, want, atol=1e-5, rtol=1e-5):
                    return None
        except Exception:
            return None
        return packed

    def _recurrent(self, t: int, h_prev, n: int):
        """``h_prev @ W_hh^T + b`` (``b``: GRU's n-block recurrent bias, zeros for an LSTM)."""
        if self._packed is not None and n <= _PACKED_MAX_ROWS:
            return self._torch.ops.mkl._mkl_linear(h_prev, self._packed[t], self._w_hh[t], self._b_hh[t], n)
        return self._torch.addmm(self._b_hh[t], h_prev, self._w_hh[t].t())

    # ---- arrays -------------------------------------------------------------------------------------

    def _to_device(self, x: np.ndarray):
        if not x.flags.writeable:  # torch warns about read-only arrays; this one is only ever read
            x = x.copy()
        return self._torch.from_numpy(x).to(self.device)

    def _to_numpy(self, x) -> np.ndarray:
        return x.cpu().numpy()

    def _empty(self, shape: tuple[int, int]):
        return self._torch.empty(shape, device=self.device)

    def _flip(self, x):
        return x.flip(0)

    def _index(self, order: np.ndarray):
        return self._torch.from_numpy(order).to(self.device)

    def _gather(self, parts: list, order: np.ndarray | None):
        x = parts[0] if len(parts) == 1 else self._torch.cat(parts)
        return x if order is None else x.index_select(0, self._index(order))

    def _take(self, x, order: np.ndarray | None):
        return x if order is None else x.index_select(0, self._index(order))

    # ---- arithmetic ---------------------------------------------------------------------------------

    def _project(self, cell_type: int, x):
        with self._torch.inference_mode():
            return self._torch.addmm(self._bias[cell_type], x, self._w_ih[cell_type].t())

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def execute(self, step):
        with self._torch.inference_mode():
            return super().execute(step)

    def _recur(self, cell_type: int, gates, plan: StepPlan, requests: list[int]):
        torch = self._torch
        lstm = self.weights.cell == "lstm"
        h = self._hidden
        out = torch.empty((plan.n_cells, h), device=self.device)
        c_all = torch.empty((plan.n_cells, h), device=self.device) if lstm else None
        g_cols = gates.split_with_sizes(plan.counts)
        out_cols = out.split_with_sizes(plan.counts)
        c_cols = c_all.split_with_sizes(plan.counts) if lstm else None
        previous = None  # (offset, end) of the previous column
        for j, col in enumerate(plan.columns):
            off, n, source = col.offset, col.count, col.source
            if source[0] == "slice":
                a, b = source[1], source[2]
                if previous == (a, b):
                    h_prev = out_cols[j - 1]
                    c_prev = c_cols[j - 1] if lstm else None
                else:
                    h_prev = out[a:b]
                    c_prev = c_all[a:b] if lstm else None
            else:
                h_prev = torch.zeros((n, h), device=self.device)
                c_prev = torch.zeros((n, h), device=self.device) if lstm else None
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
            previous = (off, off + n)
            z = self._recurrent(cell_type, h_prev, n)
            if lstm:
                z += g_cols[j]
                z[:, : 3 * h].sigmoid_()
                z[:, 3 * h :].tanh_()
                i, f, o, cand = z.view(n, 4, h).unbind(1)
                c_new = c_cols[j]
                torch.addcmul(f.mul_(c_prev), i, cand, out=c_new)
                torch.mul(o, c_new.tanh(), out=out_cols[j])
            else:
                g = g_cols[j]
                rz = z[:, : 2 * h].add_(g[:, : 2 * h]).sigmoid_()
                cand = torch.addcmul(g[:, 2 * h :], rz[:, :h], z[:, 2 * h :]).tanh_()
                torch.lerp(cand, h_prev, rz[:, h:], out=out_cols[j])
        states = self._states[cell_type]
        last = self._index(plan.last_cell)
        h_last = out.index_select(0, last)
        c_last = c_all.index_select(0, last) if lstm else None
        for k in plan.save_order:
            states[requests[k]] = (h_last[k], c_last[k] if lstm else None)
        return out
