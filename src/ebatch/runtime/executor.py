"""Executors: evaluate ``BatchStep``s on real weights, keeping every request's data between steps.

What an executor keeps per request (all of it freed when the request's last cell is done):

- its input ``[length, input_size]`` (asked from :attr:`Executor.source` the first time a step holds it);
- each layer's output ``[length, D*H]`` (forward in ``[:H]``, backward in ``[H:]``, as ``torch.nn`` concatenates
  them), kept until the layer above has read all of it; the last layer's output is the request's result;
- its recurrent state per (layer, direction), saved at the end of each segment and restored at the start
  of the next one unless that segment resets it. State belongs to requests, not rows.

One step: gather the inputs of the step's useful cells from the layer below (slices of each request's
stored sequence, reversed for backward segments), reorder them column-major (:mod:`ebatch.runtime.plan`),
**one GEMM** for the input projection of all of them, then the recurrence column by column: one GEMM for
the recurrent product of the column's active rows and vectorised gate math. Padded cells and empty rows
are not computed. The results are written back into each request's output at its positions.

Life cycle: ``executor.reset()``; ``executor.execute(step)`` for each step a policy emits, in order; it
returns the requests the step completed, whose results :meth:`Executor.pop_result` hands over.
Raises ``ValueError`` when a step holds a request with no input or a step is inconsistent with the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ebatch.runtime.plan import StepPlan
from ebatch.runtime.weights import RNNWeights
from ebatch.step import BatchStep

__all__ = ["Executor", "NumpyExecutor"]


class Executor:
    """Shared bookkeeping; subclasses provide the arrays (NumPy, torch) and the arithmetic."""

    name = "base"

    def __init__(self, weights: RNNWeights, keep_outputs: bool = True) -> None:
        self.weights = weights
        self.model = weights.model
        self.keep_outputs = keep_outputs
        self.source: Callable[[int], np.ndarray] | None = None
        self._hidden = weights.hidden_size
        self._types = {t: i for i, t in enumerate(self.model.cell_types)}
        self._layer_types = [
            [self._types[(layer, d)] for d in range(x.directions)] for layer, x in enumerate(self.model.layers)
        ]
        self._prepare()
        self.reset()

    # ---- life cycle ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every request."""
        self._inputs: dict[int, object] = {}
        self._lengths: dict[int, int] = {}
        self._outputs: list[dict[int, object]] = [{} for _ in self.model.layers]
        self._states: list[dict[int, tuple]] = [{} for _ in self._types]
        self._progress: dict[int, np.ndarray] = {}
        self._results: dict[int, np.ndarray] = {}
        self._resumed: set[int] = set()  # requests whose first segments continue a given initial state
        self._keep_final: set[int] = set()  # requests whose final states are kept for final_state()
        self._final: dict[int, dict[int, tuple]] = {}
        self.useful_cells = 0
        self.steps = 0
        #: seconds spent in the input projections, in the recurrences, and in whole steps (the rest is
        #: gathering, scattering and bookkeeping); for profiles such as the benchmark's
        self.project_s = self.recur_s = self.execute_s = 0.0
        self._plans: dict[tuple, StepPlan] = {}

    def _plan(self, step: BatchStep) -> StepPlan:
        """The step's plan; window policies repeat a layout for every layer, so recent plans are kept."""
        key = (step.width, step.direction) + tuple(
            a.tobytes() for a in (step.seg_row, step.seg_col, step.seg_length, step.seg_reset, step.seg_request)
        )
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 4:
                del self._plans[next(iter(self._plans))]
            plan = self._plans[key] = StepPlan.build(step)
        return plan

    def add(self, request: int, x: np.ndarray, initial_state: tuple | None = None, keep_state: bool = False) -> None:
        """Give request ``request`` its (already validated) input ``[length, input_size]``.

        Streams (unidirectional models only): ``initial_state``, a :meth:`final_state` of an earlier
        request, is the state its first cells continue instead of zeros; ``keep_state=True`` keeps its
        final state for :meth:`final_state`. So a sequence run chunk by chunk gives the whole one's outputs.
        """
        if (initial_state is not None or keep_state) and self.model.bidirectional:
            raise ValueError(f"model {self.model.name!r}: a bidirectional layer needs the whole sequence; "
                             "it cannot continue a stream's state")
        self._inputs[request] = self._to_device(np.ascontiguousarray(x, dtype=np.float32))
        self._lengths[request] = int(len(x))
        self._progress[request] = np.zeros(len(self._types), dtype=np.int64)
        if initial_state is not None:
            if len(initial_state) != len(self._types):
                raise ValueError(f"initial_state: needs one state per layer ({len(self._types)}), "
                                 f"got {len(initial_state)}")
            for states, state in zip(self._states, initial_state):
                states[request] = state
            self._resumed.add(request)
        if keep_state:
            self._keep_final.add(request)
            self._final[request] = {}

    def final_state(self, request: int) -> tuple:
        """The state per (layer, direction) a request added with ``keep_state=True`` ended in (once)."""
        final = self._final.pop(request)
        self._keep_final.discard(request)
        return tuple(final[t] for t in range(len(self._types)))

    def forget(self, request: int) -> None:
        """Drop everything kept for ``request`` (cancelled): its input, layer outputs, states and result."""
        self._inputs.pop(request, None)
        self._lengths.pop(request, None)
        self._progress.pop(request, None)
        self._results.pop(request, None)
        self._resumed.discard(request)
        self._keep_final.discard(request)
        self._final.pop(request, None)
        for store in self._outputs:
            store.pop(request, None)
        for states in self._states:
            states.pop(request, None)

    def pop_result(self, request: int) -> np.ndarray:
        """The last layer's output ``[length, output_size]`` of a completed request (once)."""
        return self._results.pop(request)

    @property
    def live_requests(self) -> int:
        return len(self._progress)

    # ---- one step -----------------------------------------------------------------------------------

    def execute(self, step: BatchStep) -> list[int]:
        """Evaluate ``step``; returns the ids of the requests whose last cell it evaluated."""
        if step.layer >= self.model.num_layers or step.direction >= self.model.layers[step.layer].directions:
            raise ValueError(f"step: layer {step.layer} direction {step.direction} is not in the model")
        begin = time.perf_counter()
        if self._resumed:  # a resumed stream's first segment continues its initial state, not zeros
            resumed = np.isin(step.seg_request, list(self._resumed))
            if np.any(step.seg_reset & resumed):
                step = replace(step, seg_reset=step.seg_reset & ~resumed)
        plan = self._plan(step)
        requests = step.seg_request.tolist()
        starts, lengths = step.seg_start.tolist(), step.seg_length.tolist()
        backward = step.direction == 1
        for r in requests:
            if r not in self._progress:
                if self.source is None:
                    raise ValueError(f"executor: request {r} has no input; add() it or set a source")
                self.add(r, self.source(r))
        below = self._inputs if step.layer == 0 else self._outputs[step.layer - 1]
        parts = []
        for r, s, n in zip(requests, starts, lengths):
            first, end = (s - n + 1, s + 1) if backward else (s, s + n)
            if first < 0 or end > self._lengths[r]:
                raise ValueError(
                    f"step: request {r} has {self._lengths[r]} time-steps; the step holds positions {first}..{end - 1}"
                )
            source = below.get(r)
            if source is None:
                raise ValueError(f"step: request {r} reaches layer {step.layer} before layer {step.layer - 1} ran")
            parts.append(self._flip(source[first:end]) if backward else source[first:end])
        x = self._gather(parts, plan.cm_from_seg)
        t = self._types[(step.layer, step.direction)]
        t0 = time.perf_counter()
        gates = self._project(t, x)
        t1 = time.perf_counter()
        out = self._recur(t, gates, plan, requests)
        t2 = time.perf_counter()
        self.project_s += t1 - t0
        self.recur_s += t2 - t1
        out = self._take(out, plan.seg_from_cm)

        h = self._hidden
        block = slice(step.direction * h, (step.direction + 1) * h)
        store = self._outputs[step.layer]
        width = h * self.model.layers[step.layer].directions
        offsets = plan.seg_offset.tolist()
        for k, (r, s, n) in enumerate(zip(requests, starts, lengths)):
            target = store.get(r)
            if target is None:
                target = store[r] = self._empty((self._lengths[r], width))
            part = out[offsets[k] : offsets[k] + n]
            if backward:
                target[s - n + 1 : s + 1, block] = self._flip(part)
            else:
                target[s : s + n, block] = part
            self._progress[r][t] += n
        self.useful_cells += plan.n_cells
        self.steps += 1
        finished = self._collect(step.layer, requests)
        self.execute_s += time.perf_counter() - begin
        return finished

    def _collect(self, layer: int, requests: list[int]) -> list[int]:
        """Free what is no longer needed; move finished requests' outputs to the results."""
        finished = []
        types = self._layer_types[layer]
        last = self.model.num_layers - 1
        for r in dict.fromkeys(requests):
            progress, length = self._progress[r], self._lengths[r]
            if not all(progress[t] == length for t in types):
                continue
            for t in types:
                state = self._states[t].pop(r, None)
                if r in self._keep_final:
                    self._final[r][t] = state
            if layer == 0:
                self._inputs.pop(r, None)
            else:
                self._outputs[layer - 1].pop(r, None)
            if layer == last:
                output = self._outputs[last].pop(r)
                if self.keep_outputs:
                    self._results[r] = self._to_numpy(output)
                del self._progress[r], self._lengths[r]
                self._resumed.discard(r)
                finished.append(r)
        return finished

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA), so a measured time covers it. Nothing to do on the CPU."""

    # ---- what a subclass provides -------------------------------------------------------------------

    def _prepare(self) -> None:
        raise NotImplementedError

    def _to_device(self, x: np.ndarray):
        raise NotImplementedError

    def _to_numpy(self, x) -> np.ndarray:
        raise NotImplementedError

    def _empty(self, shape: tuple[int, int]):
        raise NotImplementedError

    def _flip(self, x):
        raise NotImplementedError

    def _gather(self, parts: list, order: np.ndarray | None):
        raise NotImplementedError

    def _take(self, x, order: np.ndarray | None):
        raise NotImplementedError

    def _project(self, cell_type: int, x):
        raise NotImplementedError

    def _recur(self, cell_type: int, gates, plan: StepPlan, requests: list[int]):
        """The recurrence over the plan's columns: outputs ``[n_cells, H]`` column-major; saves the states
        each request reached at its last cell of the step."""
        raise NotImplementedError

    def _saved(self, cell_type: int, request: int) -> tuple:
        state = self._states[cell_type].get(request)
        if state is None:
            raise ValueError(
                f"step: request {request} continues a sequence at a cell whose previous state was never computed"
            )
        return state


class NumpyExecutor(Executor):
    """The default executor: NumPy (float32, the BLAS NumPy links) only, no torch needed.

    Weights are prepared once: LSTM gate blocks reordered to (i, f, o, g) and GRU kept as (r, z, n), the
    sigmoid blocks scaled by 0.5 (exact in floating point) so that one ``tanh`` over a column's gates gives
    every activation (``sigmoid(x) = 0.5 * tanh(x / 2) + 0.5``); LSTM biases are folded into the input
    projection, GRU's recurrent bias of the n block stays inside the reset gate's product, as in torch.
    """

    name = "numpy"

    def _prepare(self) -> None:
        h, lstm = self._hidden, self.weights.cell == "lstm"
        self._w_ih_t, self._bias, self._w_hh_t, self._b_hn = [], [], [], []
        for layer in self.weights.cells:
            for w in layer:
                if lstm:
                    order = np.r_[0:2 * h, 3 * h:4 * h, 2 * h:3 * h]  # i, f, o, g
                    scale = np.r_[np.full(3 * h, 0.5), np.ones(h)].astype(np.float32)
                    bias = (w.b_ih + w.b_hh)[order] * scale
                    b_hn = None
                else:
                    order = np.arange(3 * h)
                    scale = np.r_[np.full(2 * h, 0.5), np.ones(h)].astype(np.float32)
                    bias = (w.b_ih + np.r_[w.b_hh[: 2 * h], np.zeros(h, np.float32)]) * scale
                    b_hn = np.array(w.b_hh[2 * h :])
                self._w_ih_t.append(np.ascontiguousarray((w.w_ih[order] * scale[:, None]).T))
                self._w_hh_t.append(np.ascontiguousarray((w.w_hh[order] * scale[:, None]).T))
                self._bias.append(bias.astype(np.float32))
                self._b_hn.append(b_hn)

    def _to_device(self, x: np.ndarray) -> np.ndarray:
        return x

    def _to_numpy(self, x: np.ndarray) -> np.ndarray:
        return x

    def _empty(self, shape: tuple[int, int]) -> np.ndarray:
        return np.empty(shape, dtype=np.float32)

    def _flip(self, x: np.ndarray) -> np.ndarray:
        return x[::-1]

    def _gather(self, parts: list, order: np.ndarray | None) -> np.ndarray:
        x = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return x if order is None else np.take(x, order, axis=0)

    def _take(self, x: np.ndarray, order: np.ndarray | None) -> np.ndarray:
        return x if order is None else np.take(x, order, axis=0)

    def _project(self, cell_type: int, x: np.ndarray) -> np.ndarray:
        gates = np.matmul(x, self._w_ih_t[cell_type])
        gates += self._bias[cell_type]
        return gates

    def _recur(self, cell_type: int, gates, plan: StepPlan, requests: list[int]):
        h, lstm = self._hidden, self.weights.cell == "lstm"
        w_hh_t, b_hn = self._w_hh_t[cell_type], self._b_hn[cell_type]
        out = np.empty((plan.n_cells, h), dtype=np.float32)
        c_all = np.empty((plan.n_cells, h), dtype=np.float32) if lstm else None
        buffer = np.empty((max(plan.counts), gates.shape[1]), dtype=np.float32)
        for col in plan.columns:
            off, n, source = col.offset, col.count, col.source
            if source[0] == "slice":
                h_prev = out[source[1] : source[2]]
                c_prev = c_all[source[1] : source[2]] if lstm else None
            else:
                h_prev = np.zeros((n, h), dtype=np.float32)
                c_prev = np.zeros((n, h), dtype=np.float32) if lstm else None
                if source[0] == "mixed":
                    _, local, src, saved_local, saved_seg = source
                    h_prev[local] = out[src]
                    if lstm:
                        c_prev[local] = c_all[src]
                    for i, k in zip(saved_local.tolist(), saved_seg.tolist()):
                        state = self._saved(cell_type, requests[k])
                        h_prev[i] = state[0]
                        if lstm:
                            c_prev[i] = state[1]
            z = buffer[:n]
            g = gates[off : off + n]
            h_out = out[off : off + n]
            np.matmul(h_prev, w_hh_t, out=z)
            if lstm:
                z += g
                np.tanh(z, out=z)
                sig = z[:, : 3 * h]
                sig *= 0.5
                sig += 0.5
                i, f, o, cand = z[:, :h], z[:, h : 2 * h], z[:, 2 * h : 3 * h], z[:, 3 * h :]
                c_new = c_all[off : off + n]
                np.multiply(f, c_prev, out=c_new)
                i *= cand
                c_new += i
                np.tanh(c_new, out=i)
                np.multiply(o, i, out=h_out)
            else:
                rz = z[:, : 2 * h]
                rz += g[:, : 2 * h]
                np.tanh(rz, out=rz)
                rz *= 0.5
                rz += 0.5
                r, u, cand = z[:, :h], z[:, h : 2 * h], z[:, 2 * h :]
                cand += b_hn
                cand *= r
                cand += g[:, 2 * h :]
                np.tanh(cand, out=cand)
                np.subtract(h_prev, cand, out=h_out)
                h_out *= u
                h_out += cand
        states = self._states[cell_type]
        h_last = out[plan.last_cell]
        c_last = c_all[plan.last_cell] if lstm else None
        for k in plan.save_order:
            states[requests[k]] = (h_last[k], c_last[k] if lstm else None)
        return out
