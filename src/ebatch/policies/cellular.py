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

_NONE = np.zeros(0, dtype=np.int64)  # no request completed
_NONE.flags.writeable = False


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
        last = model.num_layers - 1
        index = {t: i for i, t in enumerate(types)}
        # facts per type and per layer as Python lists: the per-step code reads them as scalars
        self._layer_bi = [layer.bidirectional for layer in model.layers]
        self._type_layer = [layer for layer, _ in types]
        self._type_backward = [d == 1 for _, d in types]
        self._type_bi = [self._layer_bi[layer] for layer, _ in types]
        self._fwd = [index[(layer, 0)] for layer in range(model.num_layers)]
        self._bwd = [index.get((layer, 1), index[(layer, 0)]) for layer in range(model.num_layers)]
        self._other = [index.get((layer, 1 - d), -1) for layer, d in types]  # the other direction, or -1
        self._first_types = [t for t, (layer, _) in enumerate(types) if layer == 0]
        # forward cells of these types feed a unidirectional layer above as they go (see next_step)
        self._feeds_unidirectional = [d == 0 and layer < last and not self._layer_bi[layer + 1] for layer, d in types]
        # progress of type c changes readiness only of c itself and of the types of the layer above
        self._above = [[t for t in range(len(types)) if types[t][0] == layer + 1] for layer, _ in types]
        # type c and the layer above are bidirectional: that layer becomes ready for a request exactly when
        # both directions of c's layer are complete for it (it needs its whole input)
        self._bi_under_bi = [self._type_bi[c] and layer < last and self._layer_bi[layer + 1]
                             for c, (layer, _) in enumerate(types)]
        self._progress = self.track(IdArray(np.int64, shape=(len(types),)))  # cells done, per type and request
        self._ready = self.track(IdArray(bool, shape=(len(types),)))  # next cell of the type is ready
        self._counts = [0] * len(types)  # ready cells per type
        self._first: list[int | None] = [None] * len(types)  # the oldest ready request per type, when known
        self._views_key: tuple[int, int] | None = None
        self._pending: tuple | None = None  # type, columns, their first id, lengths, input limit, positions

    def _enqueue(self, ids: np.ndarray) -> None:
        types = len(self._counts)
        self._progress.append(np.zeros((types, ids.size), dtype=np.int64))
        ready = np.zeros((types, ids.size), dtype=bool)
        ready[self._first_types] = True
        self._ready.append(ready)
        for t in self._first_types:
            self._counts[t] += ids.size
            self._first[t] = None

    def _cancel(self, ids: np.ndarray) -> None:
        ready = self._ready[:, ids]
        for t, n in enumerate(ready.sum(axis=1).tolist()):
            self._counts[t] -= n
        self._ready[:, ids] = False
        self._first = [None] * len(self._counts)

    def _views(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(lo, ready, progress, lengths, ids)``: the live requests' columns as views indexed by ``id - lo``
        (``ids`` holds the ids themselves: a gather is cheaper than adding ``lo``).

        Made again only when requests arrived or retired, the only events that grow or move the columns.
        """
        key = (self.live_from, self.lengths.size)
        if key != self._views_key:
            lo, size = key
            self._views_key = key
            self._view = (lo, self._ready.view(lo), self._progress.view(lo), self.lengths.view(lo), np.arange(lo, size))
        return self._view

    def _oldest(self, t: int, ready: np.ndarray, lo: int) -> int:
        """The column of type ``t``'s oldest ready request (it has one) in views starting at ``lo``; the id
        is kept until type ``t``'s readiness changes where it could move."""
        first = self._first[t]
        if first is None:
            first = self._first[t] = int(ready[t].argmax()) + lo
        return first - lo

    def next_step(self, now_s: float) -> BatchStep | None:
        counts = self._counts
        best = max(counts)
        if best == 0:
            return None
        lo, ready, progress, all_lengths, all_ids = self._views()
        if self.priority == "oldest":  # the type holding the oldest ready request; ties: most ready, lower type
            firsts = ready.argmax(axis=1).tolist()  # every type's at once: most types are busy
            c = min((firsts[t], -n, t) for t, n in enumerate(counts) if n)[2]
            self._first[c] = firsts[c] + lo
        else:  # most ready cells; ties: the type holding the oldest ready request, then the lower type
            c = t = counts.index(best)
            ties = counts.count(best) - 1
            if ties:
                oldest = self._oldest(c, ready, lo)
                for _ in range(ties):  # the other tied types, in index order
                    t = counts.index(best, t + 1)
                    first = self._oldest(t, ready, lo)
                    if first < oldest:
                        c, oldest = t, first
        # columns of the B oldest ready requests of type c: a window from its oldest ready one usually has them
        row, first = ready[c], self._first[c]
        window = row if first is None else row[: first - lo + 4 * self.batch_size]
        j = window.nonzero()[0][: self.batch_size]
        if j.size < self.batch_size and window.size < row.size:
            j = row.nonzero()[0][: self.batch_size]
        lengths = all_lengths[j]
        positions = progress[c][j]
        layer = self._type_layer[c]
        # these requests are ready: a bidirectional layer's (and layer 0's) whole input is there; else the
        # layer below's forward progress is (if that layer is bidirectional, its backward is done)
        limit = lengths if layer == 0 or self._type_bi[c] else progress[self._fwd[layer - 1]][j]
        # (on arrays this small NumPy's reductions cost several times its argmin and argmax)
        gap = limit - positions
        run = int(gap[gap.argmin()])
        # if the first invocation makes some of these requests' next-layer cells ready, re-decide after it
        if run > 1 and self._feeds_unidirectional[c]:
            # forward cells feed the layer above as they go (a bidirectional layer's once its backward is done)
            feeds = progress[self._fwd[layer + 1]][j] >= positions
            if self._type_bi[c]:
                feeds &= progress[self._bwd[layer]][j] == lengths
            run = 1 if feeds[feeds.argmax()] else run
        self._pending = (c, j, lo, lengths, limit, positions)
        backward = self._type_backward[c]
        return BatchStep.one_per_row(
            layer=layer,
            direction=int(backward),
            width=run,
            slots=self.batch_size,
            requests=all_ids[j],
            starts=lengths + ~positions if backward else positions,  # ~p == -p - 1
            resets=np.logical_not(positions),
        )

    def _step_done(self, step: BatchStep) -> np.ndarray:
        # a prefix keeps every segment, so these are the step's requests; arrivals since next_step did
        # not touch their progress, so the input limit computed there still holds
        c, j, lo, lengths, limit, positions = self._pending
        ids = step.seg_request
        if ids.size != j.size:
            raise RuntimeError("cellular: on_step_done got a step other than the one next_step returned")
        now_lo, ready, progress, _, _ = self._views()
        if now_lo != lo:  # requests retired in between (a cancel): the views start elsewhere now
            j = ids - now_lo
        progress_c = positions + step.width
        progress[c][j] = progress_c
        # readiness changes only for type c and the types of the layer above; the rest is as it was
        stopped = progress_c >= limit  # out of ready cells of type c (all of them were ready)
        ready[c][j] = ~stopped
        out = stopped.nonzero()[0]
        if out.size and not out[0]:  # the oldest ready request of type c ran out
            self._first[c] = None
        self._counts[c] -= out.size
        if self._bi_under_bi[c]:
            if out.size:  # a bidirectional type's input limit is the length: these ended type c
                self._layer_complete(c, ready, progress, j[out], lengths[out])
            return _NONE
        if self._above[c]:
            self._update_above(c, ready, progress, j, lengths, progress_c)
            return _NONE
        if not out.size:  # none ran out of ready cells, so none ended type c
            return _NONE
        # a request is complete once its last layer is: no cell of it is computed before the layer below
        # has produced its input, so the lower layers are complete by then
        ended = progress_c == lengths
        finished = j[ended]
        other = self._other[c]
        if other >= 0 and finished.size:
            finished = finished[progress[other][finished] == lengths[ended]]
        return finished + now_lo

    def _layer_complete(self, c: int, ready: np.ndarray, progress: np.ndarray, ended: np.ndarray,
                        lengths: np.ndarray) -> None:
        """Type ``c`` (bidirectional, under a bidirectional layer) ended for the requests at columns ``ended``
        (of these ``lengths``): those whose other direction is complete too are now ready in both directions
        of the layer above, where they have not started."""
        complete = ended[progress[self._other[c]][ended] == lengths]
        if complete.size:
            for t in self._above[c]:
                ready[t][complete] = True
                self._counts[t] += complete.size
                self._first[t] = None

    def _update_above(self, c: int, ready: np.ndarray, progress: np.ndarray, j: np.ndarray, lengths: np.ndarray,
                      progress_c: np.ndarray) -> None:
        """Readiness of the types above type ``c`` for the requests at columns ``j``."""
        layer = self._type_layer[c]
        available = progress_c  # the input the layer above has: a unidirectional layer's progress, or
        if self._layer_bi[layer]:  # a bidirectional layer's forward progress once its backward is done
            available = progress[self._fwd[layer]][j]
            available[progress[self._bwd[layer]][j] != lengths] = 0
        counts = self._counts
        whole = None  # the whole input is there (what a bidirectional type waits for)
        for t in self._above[c]:
            done, row = progress[t][j], ready[t]
            if self._type_bi[t]:
                whole = available == lengths if whole is None else whole
                now_ready = whole & (done < lengths)
            else:
                now_ready = done < available
            counts[t] += int(np.count_nonzero(now_ready)) - int(np.count_nonzero(row[j]))
            row[j] = now_ready
            self._first[t] = None
