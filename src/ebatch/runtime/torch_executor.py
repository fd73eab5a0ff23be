"""``TorchExecutor``: the executor on PyTorch tensors (CPU, or CUDA where present); needs the ``torch`` extra.

The column loop, state handling and weight layout are the base class's
(:class:`~ebatch.runtime.executor.Executor`: one GEMM for a step's input projection, one per column for
the recurrence, padded cells skipped); this module gives torch's array primitives and cell arithmetic.
On CPU builds with MKL the recurrent matrices are packed once
(``torch.ops.mkl._mkl_reorder_linear_weight``, what TorchScript freezing uses) so the small per-column GEMM
does not re-pack W_hh every time; elsewhere (CUDA, no MKL, or if a check at construction disagrees with
``torch.mm``) a plain ``addmm``. Gate math uses in-place torch ops on the column's gates (LSTM blocks
reordered to i, f, o, g). All work runs under ``torch.inference_mode()``.
"""

from __future__ import annotations

import numpy as np

from ebatch.runtime.executor import Executor
from ebatch.runtime.gates import GateWeights
from ebatch.runtime.plan import StepPlan
from ebatch.runtime.weights import RNNWeights

__all__ = ["TorchExecutor"]

_PACKED_MAX_ROWS = 48  # above this many rows a plain GEMM is as fast (measured here, 1 thread)


class TorchExecutor(Executor):
    """``device``: ``"cpu"`` (default) or ``"cuda"``; ``threads``: ``torch.set_num_threads`` (process-wide);
    ``graphs``: run row-regular steps as one fixed-shape masked loop (:mod:`ebatch.runtime.graphs`),
    captured as CUDA graphs on CUDA; default: on CUDA only (on the CPU it runs eagerly, for tests).

    Raises ``ValueError`` when torch is missing or the device is not available.
    """

    name = "torch"

    def __init__(self, weights: RNNWeights, device: str | None = None, threads: int | None = None,
                 keep_outputs: bool = True, graphs: bool | None = None) -> None:
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
        self._graphs = self.device.type == "cuda" if graphs is None else bool(graphs)
        super().__init__(weights, keep_outputs=keep_outputs)
        self.name = "torch" if self.device.type == "cpu" else f"torch-{self.device.type}"
        self._graphs = self._graphs and self._uniform  # the graph loop needs one cell and size, no projection
        if self._graphs:
            from ebatch.runtime.graphs import GraphRecurrence

            self.graph = GraphRecurrence(torch, self._w_hh, self._b_hh, self._lstm, self._hidden,
                                         capture=self.device.type == "cuda")
            self._masks: dict[StepPlan, tuple] = {}

    def _load(self, cells: list[GateWeights]) -> None:
        torch, dev = self._torch, self.device

        def tensor(a: np.ndarray):
            return torch.from_numpy(np.array(a, dtype=np.float32, order="C")).to(dev)

        self._w_ih = [tensor(c.w_ih) for c in cells]
        self._w_hh = [tensor(c.w_hh) for c in cells]
        self._bias = [tensor(c.bias) for c in cells]
        # the recurrent GEMM's bias: GRU's n block (r * (h W_hn^T + b_hn)), zeros elsewhere
        self._b_hh = [tensor(np.r_[np.zeros(c.w_hh.shape[0] - len(c.b_hn), np.float32), c.b_hn]) for c in cells]
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
                x = torch.rand(n, self._w_hh[0].shape[1], generator=generator) - 0.5
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

    def _zeros(self, shape: tuple[int, int]):
        return self._torch.zeros(shape, device=self.device)

    def _split(self, x, counts: list[int]) -> list:
        return x.split_with_sizes(counts)

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

    def _frames(self, stage, x):
        return stage.torch(x)

    def _cell(self, cell_type: int, gates, h_prev, c_prev, h_out, c_out) -> None:
        torch, h, n = self._torch, self._hidden_of[cell_type], len(h_out)
        z = self._recurrent(cell_type, h_prev, n)
        if self._lstm_of[cell_type]:
            z += gates
            z[:, : 3 * h].sigmoid_()
            z[:, 3 * h :].tanh_()
            i, f, o, cand = z.view(n, 4, h).unbind(1)
            torch.addcmul(f.mul_(c_prev), i, cand, out=c_out)
            torch.mul(o, c_out.tanh(), out=h_out)
        else:
            rz = z[:, : 2 * h].add_(gates[:, : 2 * h]).sigmoid_()
            if self._reset_after[cell_type]:
                cand = torch.addcmul(gates[:, 2 * h :], rz[:, :h], z[:, 2 * h :]).tanh_()
            else:  # ONNX linear_before_reset=0: W_hn (r * h)
                cand = torch.addmm(gates[:, 2 * h :], rz[:, :h] * h_prev, self._w_hh[cell_type][2 * h :].t()).tanh_()
            torch.lerp(cand, h_prev, rz[:, h:], out=h_out)

    def _recur(self, cell_type: int, gates, plan: StepPlan, requests: list[int]):
        if not self._graphs or not plan.row_regular:
            return super()._recur(cell_type, gates, plan, requests)
        torch, h = self._torch, self._hidden
        masks = self._masks.get(plan)
        if masks is None:
            if len(self._masks) >= 8:
                self._masks.clear()
            masks = self._masks[plan] = (*self.graph.masks(plan, self.device), self._index(plan.cell_dense))
        keep, active, rows, segs, dense_index = masks
        grid = torch.zeros((plan.width * plan.slots, gates.shape[1]), device=self.device)
        grid.index_copy_(0, dense_index, gates)
        h0 = torch.zeros((plan.slots, h), device=self.device)
        c0 = torch.zeros((plan.slots, h), device=self.device) if self._lstm else None
        for row, k in zip(rows, segs):
            state = self._saved(cell_type, requests[k])
            h0[row] = state[0]
            if self._lstm:
                c0[row] = state[1]
        h_grid, c_grid = self.graph.run(cell_type, grid.view(plan.width, plan.slots, -1), keep, active, h0, c0)
        out = h_grid.view(-1, h).index_select(0, dense_index)
        c_all = c_grid.view(-1, h).index_select(0, dense_index) if self._lstm else None
        self._save_states(cell_type, plan, requests, out, c_all)
        return out
