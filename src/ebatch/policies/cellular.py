"""``cellular``: cellular batching (BatchMaker, Gao et al., EuroSys 2018), as DESIGN.md section 4 specifies.

Each invocation runs one time-step of one cell type (layer, direction) for up to B requests whose next
cell of that type is ready; within the chosen type, the B oldest ready requests. Which type runs is
``priority``:

- ``"most-ready"``: the type with the most ready cells (ties: the type holding the oldest ready
  request, then the lower type index). Fullest batches; under load, requests deep in the model wait
  while new arrivals keep the first layer's count highest.
- ``"oldest"``: the type holding the oldest ready request (ties: the most ready cells, then the lower
  type index). Requests move through the model in arrival order.

docs/design.md compares the two and says which BatchMaker's paper describes and why the default is what
it is. Requests
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
from ebatch.policies.ids import IdArray
from ebatch.step import BatchStep

__all__ = ["Cellular", "PRIORITIES"]

PRIORITIES = ("most-ready", "oldest")


@register("cellular")
class Cellular(Policy):
    example_params = ({"batch_size": 3}, {"batch_size": 2, "priority": "most-ready"},
                      {"batch_size": 4, "priority": "oldest"})

    def __init__(self, batch_size: int = 64, priority: str = "most-ready") -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        if priority not in PRIORITIES:
            raise ValueError(f"priority: must be one of {', '.join(PRIORITIES)}, got {priority!r}")
        self.priority = priority

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
        # progress of type c changes readiness only of c itself and of the types of the layer above
        self._above = [
            [t for t in range(len(types)) if self._type_layer[t] == self._type_layer[c] + 1] for c in range(len(types))
        ]
        # a bidirectional layer above a bidirectional one sees its input only once both directions are
        # complete, so only requests whose cells of type c just ended can have changed readiness there
        self._above_only_ended = [
            bool(self._type_bi[c]) and self._type_layer[c] + 1 < model.num_layers
            and bool(self._layer_bi[self._type_layer[c] + 1])
            for c in range(len(types))
        ]
        self._progress = self.track(IdArray(np.int64, shape=(len(types),)))  # cells done, per type and request
        self._ready = self.track(IdArray(bool, shape=(len(types),)))  # next cell of the type is ready
        self._counts = np.zeros(len(types), dtype=np.int64)
        self._pending_type = -1
        self._pending: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # ids, lengths, input limit
        self._aranges: dict[int, np.ndarray] = {}  # read-only 0..k-1, shared by steps as rows
        self._zeros: dict[int, np.ndarray] = {}

    def _enqueue(self, ids: np.ndarray) -> None:
        types = len(self._counts)
        self._progress.append(np.zeros((types, ids.size), dtype=np.int64))
        ready = np.zeros((types, ids.size), dtype=bool)
        ready[self._first_types] = True
        self._ready.append(ready)
        self._counts[self._first_types] += ids.size

    def _cancel(self, ids: np.ndarray) -> None:
        ready = self._ready[:, ids]
        self._counts -= ready.sum(axis=1)
        self._ready[:, ids] = False

    def _layer_input(self, layer: int, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """How many leading positions of layer ``layer``'s input are available to requests ``ids``: all of
        them at layer 0; else the layer below's forward progress, or 0 while a bidirectional layer below is
        not done in both directions."""
        if layer == 0:
            return lengths
        below = layer - 1
        forward = self._progress[self._fwd[below], ids]
        if not self._layer_bi[below]:
            return forward
        return np.where(self._progress[self._bwd[below], ids] != lengths, 0, forward)

    def next_step(self, now_s: float) -> BatchStep | None:
        counts = self._counts
        best = counts.max()
        if best == 0:
            return None
        lo, hi = self.live_from, self.lengths.size
        if self.priority == "oldest":
            c = self._type_of_oldest(lo, hi)
        else:
            candidates = (counts == best).nonzero()[0]
            if candidates.size > 1:  # tie: the type holding the oldest ready request
                firsts = np.argmax(self._ready[candidates, lo:hi], axis=1)
                c = int(candidates[int(np.argmin(firsts))])
            else:
                c = int(candidates[0])
        ids = self._ready[c, lo:hi].nonzero()[0][: self.batch_size] + lo
        lengths = self.lengths[ids]
        positions = self._progress[c, ids]
        layer = int(self._type_layer[c])
        limit = self._layer_input(layer, ids, lengths)
        run = int((limit - positions).min())
        # if the first invocation makes some of these requests' next-layer cells ready, re-decide after it
        feeds_unidirectional = layer + 1 < len(self._layer_bi) and not self._layer_bi[layer + 1]
        if run > 1 and self._type_direction[c] == 0 and feeds_unidirectional:
            # forward cells feed the layer above as they go (a bidirectional layer's once its backward is done)
            feeding = self._progress[self._bwd[layer], ids] == lengths if self._type_bi[c] else True
            run = 1 if np.any(feeding & (self._progress[self._fwd[layer + 1], ids] >= positions)) else run
        self._pending_type = c
        self._pending = (ids, lengths, limit)
        backward = self._type_direction[c] == 1
        k = ids.size
        if k not in self._aranges:
            self._aranges[k], self._zeros[k] = np.arange(k), np.zeros(k, dtype=np.int64)
            self._aranges[k].flags.writeable = self._zeros[k].flags.writeable = False
        return BatchStep(
            layer=layer,
            direction=int(self._type_direction[c]),
            width=run,
            slots=self.batch_size,
            seg_row=self._aranges[k],
            seg_col=self._zeros[k],
            seg_request=ids,
            seg_start=lengths - 1 - positions if backward else positions,
            seg_length=np.full(ids.size, run),
            seg_reset=positions == 0,
            fused=False,
        )

    def _type_of_oldest(self, lo: int, hi: int) -> int:
        """The cell type holding the oldest ready request; ties: most ready cells, then the lower index."""
        busy = (self._counts > 0).nonzero()[0]
        firsts = np.argmax(self._ready[busy, lo:hi], axis=1)
        holders = busy[firsts == firsts.min()]
        return int(holders[int(np.argmax(self._counts[holders]))])

    def _step_done(self, step: BatchStep) -> np.ndarray:
        c = self._pending_type
        # a prefix keeps every segment, so these are the step's requests; arrivals since next_step did
        # not touch their progress, so the input limit computed there still holds
        ids = step.seg_request
        _, lengths, limit = self._pending
        if ids.size != limit.size:
            raise RuntimeError("cellular: on_step_done got a step other than the one next_step returned")
        progress_c = self._progress[c, ids] + step.width
        self._progress[c, ids] = progress_c
        # readiness changes only for type c and the types of the layer above; the rest is as it was
        ready = (limit == lengths) & (progress_c < lengths) if self._type_bi[c] else progress_c < limit
        self._counts[c] += int(np.count_nonzero(ready)) - ids.size  # all of them were ready
        self._ready[c, ids] = ready
        ended = progress_c == lengths
        finished = ids[ended]
        above = self._above[c]
        if above:
            changed, changed_lengths = (finished, lengths[ended]) if self._above_only_ended[c] else (ids, lengths)
            if changed.size:
                available = self._layer_input(int(self._type_layer[c]) + 1, changed, changed_lengths)
                for t in above:
                    progress = self._progress[t, changed]
                    if self._type_bi[t]:
                        ready = (available == changed_lengths) & (progress < changed_lengths)
                    else:
                        ready = progress < available
                    self._counts[t] += int(np.count_nonzero(ready)) - int(np.count_nonzero(self._ready[t, changed]))
                    self._ready[t, changed] = ready
        if finished.size:
            finished = finished[(self._progress[:, finished] == lengths[ended]).all(axis=0)]
        return finished
