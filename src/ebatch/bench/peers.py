"""PyTorch peers for the runtime benchmark: ``torch.nn.LSTM``/``GRU`` on padded and on packed batches.

Both serve requests first come, first served in batches of up to B on a clock that advances by the
measured wall time of each batch (idle gaps until the next arrival are skipped, as in
:class:`~ebatch.runtime.backend.ExecutorBackend`), so their figures compare with the runtime's.
Every request of a batch completes when the batch ends. The time of a batch includes building the padded
(or packed) input and cutting each request's output out of the result. :func:`limit_cells_per_s` times
the module on a full batch of equal-length sequences: the no-padding limit of the machine.

Needs torch (the ``torch`` extra); imported lazily by the benchmark only.
"""

from __future__ import annotations

import time

import numpy as np

from ebatch.runtime.weights import RNNWeights

__all__ = ["PeerRun", "limit_cells_per_s", "run_peer", "torch_module", "torch_stack"]


def torch_module(weights: RNNWeights):
    """A ``torch.nn.LSTM``/``GRU`` holding ``weights`` (sequence-first, inference mode)."""
    import torch

    cls = torch.nn.LSTM if weights.cell == "lstm" else torch.nn.GRU
    extra = {"proj_size": weights.proj_size} if weights.proj_size else {}
    if weights.cell == "gru" and not weights.reset_after:
        raise ValueError("weights: a GRU with linear_before_reset=0 (ONNX's default) has no torch.nn module")
    module = cls(weights.input_size, weights.hidden_size, num_layers=len(weights.cells),
                 bidirectional=weights.bidirectional, **extra)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.state_dict().items()})
    return module.eval()


def torch_stack(modules):
    """``modules`` (RNNs and position-wise stages, :func:`ebatch.runtime.zoo.torch_stages`) as one module taking
    a padded ``[T, B, F]`` batch or a ``PackedSequence``, returning ``(output, None)`` like ``nn.LSTM``."""
    import torch
    from torch.nn.utils.rnn import PackedSequence

    class Stack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stages = torch.nn.ModuleList(modules)
            first = modules[0]
            self.input_size = getattr(first, "input_size", getattr(first, "in_features", None))
            self.cells_per_timestep = sum(m.num_layers * (2 if m.bidirectional else 1) for m in modules
                                          if isinstance(m, (torch.nn.LSTM, torch.nn.GRU)))

        def forward(self, x):
            for m in self.stages:
                if isinstance(m, (torch.nn.LSTM, torch.nn.GRU)):
                    x = m(x)[0]
                elif isinstance(x, PackedSequence):
                    x = PackedSequence(m(x.data), x.batch_sizes, x.sorted_indices, x.unsorted_indices)
                else:
                    x = m(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)
            return x, None

    return Stack().eval()


class PeerRun:
    """Result of one peer run: per-request finish times on the measured clock, and the wall time."""

    def __init__(self, finish_s: np.ndarray, arrivals_s: np.ndarray, wall_s: float, outputs: list | None) -> None:
        self.finish_s, self.arrivals_s, self.wall_s, self.outputs = finish_s, arrivals_s, wall_s, outputs

    @property
    def latency_s(self) -> np.ndarray:
        return self.finish_s - self.arrivals_s


def run_peer(module, sequences: list[np.ndarray], batch_size: int, mode: str, arrivals_s=None,
             keep_outputs: bool = False, device: str = "cpu") -> PeerRun:
    """Serve ``sequences`` (arriving at ``arrivals_s``, default all 0) with ``module`` in FIFO batches.

    ``mode``: ``"padded"`` (zero-padded ``[T_max, b, input]`` batch) or ``"packed"``
    (``pack_padded_sequence``, no sorting needed by the caller). ``device``: where the module runs (inputs
    are copied there as part of each batch's time). Raises ``ValueError`` for another mode.
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    if mode not in ("padded", "packed"):
        raise ValueError(f"mode: must be 'padded' or 'packed', got {mode!r}")
    n = len(sequences)
    arrivals = np.zeros(n) if arrivals_s is None else np.asarray(arrivals_s, dtype=np.float64)
    order = np.argsort(arrivals, kind="stable")
    tensors = [torch.from_numpy(x) for x in sequences]
    module = module.to(device)
    finish = np.full(n, np.nan)
    outputs: list | None = [None] * n if keep_outputs else None
    now = 0.0
    nxt = 0
    wall_start = time.perf_counter()
    with torch.inference_mode():
        while nxt < n:
            now = max(now, float(arrivals[order[nxt]]))
            ready = nxt
            while ready < n and arrivals[order[ready]] <= now and ready - nxt < batch_size:
                ready += 1
            batch = order[nxt:ready].tolist()
            nxt = ready
            start = time.perf_counter()
            lengths = [len(sequences[i]) for i in batch]
            padded = torch.nn.utils.rnn.pad_sequence([tensors[i] for i in batch]).to(device)
            if mode == "padded":
                result = module(padded)[0]
            else:
                packed = pack_padded_sequence(padded, torch.tensor(lengths), enforce_sorted=False)
                result = pad_packed_sequence(module(packed)[0])[0]
            result = result.cpu()  # waits for the device
            pieces = [result[:length, b] for b, length in enumerate(lengths)]
            if outputs is not None:
                for i, piece in zip(batch, pieces):
                    outputs[i] = piece.numpy().copy()
            now += time.perf_counter() - start
            finish[batch] = now
    return PeerRun(finish, arrivals, time.perf_counter() - wall_start, outputs)


def limit_cells_per_s(module, batch_size: int, timesteps: int, repeats: int = 3, seed: int = 0,
                      device: str = "cpu") -> float:
    """Cells per second of ``module`` on ``batch_size`` equal-length sequences of ``timesteps`` (best of
    ``repeats``): the no-padding limit. A cell is one time-step of one layer and direction."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(timesteps, batch_size, module.input_size, generator=generator).to(device)
    module = module.to(device)
    cuda = torch.device(device).type == "cuda"
    per_step = getattr(module, "cells_per_timestep", None)  # a torch_stack's
    cells = timesteps * batch_size * (per_step or module.num_layers * (2 if module.bidirectional else 1))
    best = np.inf
    with torch.inference_mode():
        module(x[: min(timesteps, 8)])  # warm up
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            if cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return cells / best
