"""Executors: evaluate ``BatchStep``s on real weights, keeping every request's data between steps.

What an executor keeps per request (all of it freed when the request's last cell is done):

- its input ``[length, input_size]`` (asked from :attr:`Executor.source` the first time a step holds it),
  through the model's front end if it has one (applied once per step to all the requests the step admits);
- each layer's output ``[length, D*H]`` (forward in ``[:H]``, backward in ``[H:]``, as ``torch.nn`` concatenates
  them; ``H`` is the projection's size for a projected LSTM), kept until the layer above has read all of
  it; the last layer's output is the request's result;
- where a position-wise stage follows a layer (:class:`~ebatch.runtime.stages.ModelStages`), that stage's
  output, which the next layer reads (or which is the result, for the head). After each step the frames
  it finished (every direction done) are stacked across the step's requests and the stage runs once on
  them;
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

from ebatch.runtime.column_loop import ColumnLoop
from ebatch.runtime.gates import gate_weights
from ebatch.runtime.plan import StepPlan
from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import RNNWeights
from ebatch.step import BatchStep, RecentLayouts

__all__ = ["Executor"]


class Executor(ColumnLoop):
    """Per-request bookkeeping and a step's data flow around the one column loop
    (:class:`~ebatch.runtime.column_loop.ColumnLoop`); subclasses provide array primitives and cell
    arithmetic. Weights arrive prepared by :func:`~ebatch.runtime.gates.gate_weights` (gate order, folded
    biases) in ``_load``.
    """

    name = "base"
    #: whether the backend wants the sigmoid blocks pre-scaled by 0.5 (one tanh for every gate)
    half_sigmoid = False

    def __init__(self, weights: RNNWeights | ModelStages, keep_outputs: bool = True) -> None:
        self.weights = weights
        self.stages = ModelStages.of(weights)
        self.model = self.stages.model
        self.input_size, self.output_size = self.stages.input_size, self.stages.output_size
        self.keep_outputs = keep_outputs
        self.source: Callable[[int], np.ndarray] | None = None
        self._types = {t: i for i, t in enumerate(self.model.cell_types)}
        self._layer_types = [
            [self._types[(layer, d)] for d in range(x.directions)] for layer, x in enumerate(self.model.layers)
        ]
        cells = gate_weights(self.stages, half_sigmoid=self.half_sigmoid)
        # per cell type: hidden size, LSTM or not, features out (a projection's), fast path or not
        self._hidden_of = [c.hidden for c in cells]
        self._lstm_of = [c.lstm for c in cells]
        self._out_of = [c.hidden if c.w_hr is None else int(c.w_hr.shape[0]) for c in cells]
        self._plain = [c.plain for c in cells]
        self._reset_after = [c.reset_after for c in cells]
        self._hidden, self._lstm = self._hidden_of[0], self._lstm_of[0]
        self._uniform = len({(c.hidden, c.lstm) for c in cells}) == 1 and all(self._plain)
        self._load(cells)
        self._w_hr_t = [None if c.w_hr is None else self._to_device(np.ascontiguousarray(c.w_hr.T)) for c in cells]
        self.reset()

    # ---- life cycle ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every request."""
        self._inputs: dict[int, object] = {}
        self._lengths: dict[int, int] = {}
        self._outputs: list[dict[int, object]] = [{} for _ in self.model.layers]
        # per layer followed by a stage: the stage's output (the next layer's input, or the head's result),
        # and for bidirectional layers how many directions have finished each position
        self._staged: list[dict[int, object]] = [{} for _ in self.model.layers]
        self._done: list[dict[int, np.ndarray]] = [{} for _ in self.model.layers]
        self._states: list[dict[int, tuple]] = [{} for _ in self._types]
        self._progress: dict[int, np.ndarray] = {}
        self._results: dict[int, np.ndarray] = {}
        self._resumed: set[int] = set()  # requests whose first segments continue a given initial state
        self._keep_final: set[int] = set()  # requests whose final states are kept for final_state()
        self._final: dict[int, dict[int, tuple]] = {}
        self.useful_cells = 0
        self.steps = 0
        #: columns with at least one useful cell evaluated; useful_cells / columns_run = mean active rows per
        #: column, what the recurrent GEMM's efficiency depends on
        self.columns_run = 0
        #: seconds spent in the input projections, in the recurrences, and in whole steps (the rest is
        #: gathering, scattering and bookkeeping); for profiles such as the benchmark's
        self.project_s = self.recur_s = self.execute_s = 0.0
        self._plans = RecentLayouts()
        #: steps whose layout was not among the recent ones (their plan was built: index arrays for
        #: gathering and scattering, the recurrence's column schedule)
        self.plans_built = 0

    def _plan(self, step: BatchStep) -> StepPlan:
        """The step's plan, made once per layout among the recent ones (window policies repeat a layout
        for every layer)."""
        plan, new = self._plans.fetch(step, StepPlan.build)
        self.plans_built += new
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
        if initial_state is not None and len(initial_state) != len(self._types):
            raise ValueError(f"initial_state: needs one state per layer ({len(self._types)}), "
                             f"got {len(initial_state)}")
        self._admit([request], [x])
        if initial_state is not None:
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

    def _admit(self, requests: list[int], inputs: list[np.ndarray]) -> None:
        """Store the inputs of ``requests``, through the front end (one call for all of them) if any."""
        front = self.stages.frames[0]
        arrays = [np.ascontiguousarray(x, dtype=np.float32) for x in inputs]
        if front is not None:
            lengths = [len(x) for x in arrays]
            y = np.asarray(front.numpy(np.concatenate(arrays)), dtype=np.float32)
            arrays = np.split(y, np.cumsum(lengths)[:-1])
        for r, x in zip(requests, arrays):
            self._inputs[r] = self._to_device(np.ascontiguousarray(x))
            self._lengths[r] = int(len(x))
            self._progress[r] = np.zeros(len(self._types), dtype=np.int64)

    def _below(self, layer: int) -> dict:
        """The store layer ``layer`` reads its input from."""
        if layer == 0:
            return self._inputs
        return self._staged[layer - 1] if self.stages.after[layer - 1] is not None else self._outputs[layer - 1]

    def forget(self, request: int) -> None:
        """Drop everything kept for ``request`` (cancelled): its input, layer outputs, states and result."""
        self._inputs.pop(request, None)
        self._lengths.pop(request, None)
        self._progress.pop(request, None)
        self._results.pop(request, None)
        self._resumed.discard(request)
        self._keep_final.discard(request)
        self._final.pop(request, None)
        for store in [*self._outputs, *self._staged, *self._done, *self._states]:
            store.pop(request, None)

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
        new = [r for r in dict.fromkeys(requests) if r not in self._progress]
        if new:
            if self.source is None:
                raise ValueError(f"executor: request {new[0]} has no input; add() it or set a source")
            self._admit(new, [self.source(r) for r in new])
        below = self._below(step.layer)
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

        h = self._out_of[t]
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
        if self.stages.after[step.layer] is not None:
            self._run_stage(step.layer, requests, starts, lengths, backward)
        self.useful_cells += plan.n_cells
        self.steps += 1
        self.columns_run += len(plan.columns)
        finished = self._collect(step.layer, requests)
        self.execute_s += time.perf_counter() - begin
        return finished

    def _run_stage(self, layer: int, requests: list[int], starts: list[int], lengths: list[int],
                   backward: bool) -> None:
        """Apply the stage after ``layer`` to the frames this step finished, stacked across its requests."""
        stage = self.stages.after[layer]
        directions = self.model.layers[layer].directions
        raw, done, staged = self._outputs[layer], self._done[layer], self._staged[layer]
        parts, targets = [], []
        for r, s, n in zip(requests, starts, lengths):
            first, end = (s - n + 1, s + 1) if backward else (s, s + n)
            positions = slice(first, end)
            if directions > 1:
                count = done.get(r)
                if count is None:
                    count = done[r] = np.zeros(self._lengths[r], dtype=np.int8)
                count[first:end] += 1
                ready = np.flatnonzero(count[first:end] == directions) + first
                if ready.size == 0:
                    continue
                if ready[-1] - ready[0] + 1 == ready.size:
                    positions = slice(int(ready[0]), int(ready[-1]) + 1)
                else:
                    positions = self._index(ready)
            parts.append(raw[r][positions])
            targets.append((r, positions))
        if not parts:
            return
        y = self._frames(stage, self._gather(parts, None))
        offset = 0
        for (r, positions), part in zip(targets, parts):
            target = staged.get(r)
            if target is None:
                target = staged[r] = self._empty((self._lengths[r], stage.output_size))
            n = len(part)
            target[positions] = y[offset : offset + n]
            offset += n

    def _frames(self, stage, x):
        """``stage`` applied to frames ``x`` ``[n, features]`` in the backend's arrays."""
        return np.asarray(stage.numpy(x), dtype=np.float32)

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
            self._below(layer).pop(r, None)
            self._done[layer].pop(r, None)
            if self.stages.after[layer] is not None and layer < last:
                self._outputs[layer].pop(r, None)  # the next layer reads the stage's output
            if layer == last:
                output = self._outputs[last].pop(r)
                if self.stages.after[last] is not None:
                    output = self._staged[last].pop(r)
                if self.keep_outputs:
                    self._results[r] = self._to_numpy(output)
                del self._progress[r], self._lengths[r]
                self._resumed.discard(r)
                finished.append(r)
        return finished

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA), so a measured time covers it. Nothing to do on the CPU."""
