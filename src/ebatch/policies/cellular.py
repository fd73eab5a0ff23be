"""``cellular``: cellular batching (BatchMaker, Gao et al., EuroSys 2018), as DESIGN.md section 4 specifies.

Each invocation runs one time-step of one cell type (layer, direction) for up to B requests whose next
cell of that type is ready. The type with the most ready cells is chosen (ties: the type holding the
oldest ready request, then the lower type index), and within it the B oldest ready requests. Requests
join at any invocation. Dependencies: a cell of a unidirectional layer at position t needs the layer
below's output at t; a bidirectional layer starts only once the layer below is done for all time-steps
(and a layer below that is bidirectional is done only when both of its directions are).

Consecutive invocations that would make the same choice are emitted as one *non-fused* step (a run of
single-time-step invocations; each invocation still pays its own weight access). A run ends when a
request of the set runs out of ready cells of the type, so the choice is provably the same throughout,
except that its first invocation may make cells of the next layer ready: then the run is one long. The
backend may cut a run short when a request arrives in the middle (``BatchStep.prefix``).
"""

from __future__ import annotations

import numpy as np

from ebatch.model import RNNModel
from ebatch.policies.base import Policy, check_positive_int, register
from ebatch.step import BatchStep

__all__ = ["Cellular"]


@register("cellular")
class Cellular(Policy):
    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)

    def start(self, model: RNNModel) -> None:
        super().start(model)
        types = model.cell_types
        self._type_layer = np.array([layer for layer, _ in types])
        self._type_direction = np.array([d for _, d in types])
        self._type_bi = np.array([model.layers[layer].bidirectional for layer, _ in types])
        index = {t: i for i, t in enumerate(types)}
        self._fwd = np.array([index[(layer, 0)] for layer in range(model.num_layers)])
        self._bwd = np.array([index.get((layer, 1), index[(layer, 0)]) for layer in range(model.num_layers)])
        self._layer_bi = np.array([layer.bidirectional for layer in model.layers])
        self._first_types = np.flatnonzero(self._type_layer == 0)
        capacity = 1024
        self._progress = np.zeros((len(types), capacity), dtype=np.int64)
        self._ready = np.zeros((len(types), capacity), dtype=bool)
        self._done = np.zeros(capacity, dtype=bool)
        self._counts = np.zeros(len(types), dtype=np.int64)
        self._oldest = 0  # lowest id not yet completed
        self._pending_type = -1

    def _enqueue(self, ids: np.ndarray) -> None:
        n = self.lengths.size
        if n > self._done.size:
            grow = max(n, 2 * self._done.size) - self._done.size
            self._progress = np.pad(self._progress, ((0, 0), (0, grow)))
            self._ready = np.pad(self._ready, ((0, 0), (0, grow)))
            self._done = np.pad(self._done, (0, grow))
        self._ready[np.ix_(self._first_types, ids)] = True
        self._counts[self._first_types] += ids.size

    def _input_available(self, progress: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """[layers, n]: how many leading positions of each layer's input are available."""
        forward, backward = progress[self._fwd], progress[self._bwd]
        out = np.where(self._layer_bi[:, None] & (backward != lengths), 0, forward)
        return np.vstack([lengths[None, :], out[:-1]])

    def next_step(self, now_s: float) -> BatchStep | None:
        counts = self._counts
        best = counts.max()
        if best == 0:
            return None
        lo, hi = self._oldest, self.lengths.size
        candidates = np.flatnonzero(counts == best)
        if candidates.size > 1:  # tie: the type holding the oldest ready request
            firsts = [np.argmax(self._ready[c, lo:hi]) for c in candidates]
            c = int(candidates[int(np.argmin(firsts))])
        else:
            c = int(candidates[0])
        ids = np.flatnonzero(self._ready[c, lo:hi])[: self.batch_size] + lo
        lengths = self.lengths[ids]
        progress = self._progress[:, ids]
        layer = int(self._type_layer[c])
        limit = self._input_available(progress, lengths)[layer]
        run = int((limit - progress[c]).min())
        # if the first invocation makes some of these requests' next-layer cells ready, re-decide after it
        feeds_unidirectional = layer + 1 < len(self._layer_bi) and not self._layer_bi[layer + 1]
        if run > 1 and not self._type_bi[c] and feeds_unidirectional:
            run = 1 if np.any(progress[self._fwd[layer + 1]] >= progress[c]) else run
        self._pending_type = c
        backward = self._type_direction[c] == 1
        positions = progress[c]
        return BatchStep(
            layer=layer,
            direction=int(self._type_direction[c]),
            width=run,
            slots=self.batch_size,
            seg_row=np.arange(ids.size),
            seg_col=np.zeros(ids.size, dtype=np.int64),
            seg_request=ids,
            seg_start=lengths - 1 - positions if backward else positions,
            seg_length=np.full(ids.size, run),
            seg_reset=positions == 0,
            fused=False,
        )

    def on_step_done(self, step: BatchStep) -> np.ndarray:
        c = self._pending_type
        ids = step.seg_request
        self._progress[c, ids] += step.width
        progress = self._progress[:, ids]
        lengths = self.lengths[ids]
        available = self._input_available(progress, lengths)[self._type_layer]
        ready = np.where(self._type_bi[:, None], (available == lengths) & (progress < lengths), progress < available)
        self._counts += ready.sum(axis=1) - self._ready[:, ids].sum(axis=1)
        self._ready[:, ids] = ready
        finished = ids[(progress == lengths).all(axis=0)]
        if finished.size:
            self._done[finished] = True
            n = self.lengths.size
            while self._oldest < n and self._done[self._oldest]:
                self._oldest += 1
        return finished
