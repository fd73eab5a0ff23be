"""Cellular batching against a naive reference that decides every invocation from scratch.

The policy groups invocations into non-fused runs and the simulator cuts runs at arrivals; neither may
change what a per-invocation scheduler following DESIGN.md section 4 would do. Under the unit backend
(1 s per invocation) the reference below re-applies the rule before every invocation: among the requests
that have arrived, with ``priority="most-ready"`` the cell type (layer, direction) with the most ready
cells wins, ties to the type holding the oldest ready request, then the lower type; with
``priority="oldest"`` the type holding the oldest ready request wins, ties to the most ready cells, then
the lower type. It runs one time-step for the B oldest ready requests of that type. A cell of a
unidirectional layer at position p is ready once the layer below has produced position p (for a
bidirectional layer below: both directions); a bidirectional layer is ready only once the layer below is
done for every position.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import ebatch
from ebatch.model import Layer, RNNModel, get_model
from simtools import MIX, ONE, UNI_BI, UnitBackend, invocations

DEEP = RNNModel("deep-uni", (Layer("lstm", 4, 4), Layer("lstm", 4, 4), Layer("lstm", 4, 4)))


def reference_cellular(model: RNNModel, lengths, arrivals, batch_size: int, priority: str = "most-ready"):
    """(invocations as ``(start_s, layer, direction, sorted (request, position, reset))``, finish times)."""
    types = model.cell_types
    index = {t: i for i, t in enumerate(types)}
    n = len(lengths)
    progress = np.zeros((n, len(types)), dtype=np.int64)

    def available(r: int, layer: int) -> int:
        """Leading positions of ``layer``'s input that request ``r`` has produced."""
        if layer == 0:
            return lengths[r]
        below = layer - 1
        forward = progress[r, index[(below, 0)]]
        if model.layers[below].bidirectional:
            # position p needs the backward output at p; backward runs from the end, and the layer above
            # consumes positions from 0, so nothing is available until the backward direction is done
            return forward if progress[r, index[(below, 1)]] == lengths[r] else 0
        return forward

    def ready(r: int, c: int) -> bool:
        layer, _ = types[c]
        if progress[r, c] >= lengths[r]:
            return False
        if model.layers[layer].bidirectional:
            return available(r, layer) == lengths[r]
        return progress[r, c] < available(r, layer)

    t = float(min(arrivals))
    finish: dict[int, float] = {}
    out = []
    while len(finish) < n:
        known = [r for r in range(n) if arrivals[r] <= t and r not in finish]
        ready_sets = [[r for r in known if ready(r, c)] for c in range(len(types))]
        best = max(len(s) for s in ready_sets)
        if best == 0:
            t = float(min(a for a in arrivals if a > t))
            continue
        if priority == "most-ready":
            c = min((c for c in range(len(types)) if len(ready_sets[c]) == best), key=lambda c: (ready_sets[c][0], c))
        else:
            c = min((c for c in range(len(types)) if ready_sets[c]),
                    key=lambda c: (ready_sets[c][0], -len(ready_sets[c]), c))
        layer, direction = types[c]
        ids = ready_sets[c][:batch_size]
        cells = []
        for r in ids:
            p = int(progress[r, c])
            cells.append((r, p if direction == 0 else int(lengths[r]) - 1 - p, p == 0))
            progress[r, c] += 1
        out.append((t, layer, direction, sorted(cells)))
        t += 1.0
        for r in ids:
            if (progress[r] == lengths[r]).all():
                finish[r] = t
    return out, [finish[r] for r in range(n)]


@settings(max_examples=150, deadline=None)
@given(
    model=st.sampled_from(["tiny-lstm", "tiny-bilstm", ONE, DEEP, MIX, UNI_BI]),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=8),
    batch_size=st.integers(1, 4),
    quarters=st.one_of(st.none(), st.lists(st.integers(0, 60), min_size=8, max_size=8)),
    priority=st.sampled_from(["most-ready", "oldest"]),
)
def test_cellular_matches_the_per_invocation_reference(model, lengths, batch_size, quarters, priority):
    # arrivals on a quarter-second grid are exact in binary, so equal times compare equal
    arrivals = [0.0] * len(lengths) if quarters is None else sorted(q / 4 for q in quarters[: len(lengths)])
    workload = ebatch.Workload.from_lengths(lengths, arrivals_s=arrivals)
    result = ebatch.simulate(model, workload, "cellular", UnitBackend(), keep_plan=True, batch_size=batch_size,
                             priority=priority)
    got = [(t, layer, d, sorted(c[1:] for c in cells)) for t, layer, d, cells in invocations(result.plan)]
    expected, finish = reference_cellular(get_model(model), workload.lengths, workload.arrivals_s, batch_size,
                                          priority)
    assert got == expected
    assert result.requests["finish_s"].tolist() == finish
