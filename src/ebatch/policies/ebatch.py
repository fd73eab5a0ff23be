"""``ebatch``: E-BATCH (Silfa, Arnau, Gonzalez, arXiv 2009.10656), as DESIGN.md section 4 interprets it.

B slots, window of T time-steps. Each window is evaluated layer by layer (weights of a layer loaded
once per window), and the hardware notifies the runtime as soon as a sequence's last cell is done.

- Unidirectional models: slots *stream* (:class:`~ebatch.policies.fillers.StreamSlots`). At each window
  start every slot's window is filled with the rest of its current sequence, then queued sequences back
  to back (state reset at each start), until T columns are full or the queue is empty. A sequence
  spanning windows carries its state. The window is as wide as its fullest slot (at most T), so an
  emptying queue does not compute padding.
- Models with a bidirectional layer, ``bidirectional=`` (default ``"pack"``: on the reproduction's
  networks it has the lower p99 latency under load at every measured point and the higher offline
  throughput on E-PUR; ``"stream"`` wins offline on the TPU preset. docs/design.md has the figures):

  - ``"stream"``: the model is cut into *stages*: each direction of a bidirectional layer is a stage, and
    each run of consecutive unidirectional layers is one stage (evaluated layer by layer per window, as
    a unidirectional model is). Every stage has its own B streaming slots; a backward stage walks each
    sequence from its end. A sequence enters the stages of the next layer once every stage of its layer
    has finished it (both directions of a bidirectional layer). Which stage runs the next window is
    ``stage_order`` (below).
  - ``"pack"``: a sequence is not split across windows. Each window packs whole sequences into the B
    slots, first fit in FIFO order over the oldest ``lookahead`` queued sequences; the window is
    ``W = max(T, longest of the B oldest)`` columns and runs every layer and direction. T only acts
    above the longest of the B oldest, and slots run dry at window ends.

``stage_order`` (stream mode only, with more than one stage), evaluated among the stages holding work:

- ``"fullest"`` (the default): the stage whose window would hold the most useful cells (at most B x T);
  ties go to the deepest stage. Full windows need no padding and share each weight load among the
  most cells; going deepest first among equals moves sequences towards completion, so the layer
  outputs waiting between layers stay few.
- ``"full-oldest"``: a stage that fills a whole window, the deepest such; when none can, the stage
  holding the oldest request.
- ``"oldest"``: the stage holding the oldest request (ids increase in arrival order); ties deepest.
- ``"deepest"``: the deepest stage with work (a pipeline that drains before it fills).
- ``"shallowest"``: the shallowest stage with work (layer at a time: every stage runs with as many
  sequences as it will ever hold, so the fewest windows offline; deeper layers wait under load).

docs/design.md compares the rules (throughput, energy per request, p99 latency under load).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ebatch.model import RNNModel
from ebatch.policies.auto import AutoTimesteps, check_timestep_params
from ebatch.policies.base import check_positive_int, register
from ebatch.policies.fillers import PackedQueue, StreamSlots
from ebatch.policies.window import Window, WindowPolicy

__all__ = ["EBatch", "STAGE_ORDERS", "Stage"]

BIDIRECTIONAL_MODES = ("stream", "pack")
STAGE_ORDERS = ("fullest", "full-oldest", "oldest", "deepest", "shallowest")


@dataclass(frozen=True)
class Stage:
    """Cell types evaluated together per window, fed by one filler; ``group`` is its layer group's index.

    Every stage of a group must finish a sequence before it enters the next group.
    """

    cell_types: tuple[tuple[int, int], ...]
    filler: StreamSlots
    group: int


def build_stages(model: RNNModel, slots: int, lookahead: int | None) -> list[Stage]:
    """One stage per direction of each bidirectional layer, one per run of unidirectional layers."""
    stages: list[Stage] = []
    group, layer = 0, 0
    while layer < model.num_layers:
        if model.layers[layer].bidirectional:
            for direction in (0, 1):
                stages.append(Stage(((layer, direction),), StreamSlots(slots, direction == 1, lookahead), group))
            layer += 1
        else:
            run = [layer]
            while run[-1] + 1 < model.num_layers and not model.layers[run[-1] + 1].bidirectional:
                run.append(run[-1] + 1)
            stages.append(Stage(tuple((x, 0) for x in run), StreamSlots(slots, False, lookahead), group))
            layer = run[-1] + 1
        group += 1
    return stages


@register("ebatch")
class EBatch(WindowPolicy):
    notify = True
    example_params = ({"batch_size": 3, "timesteps": 4}, {"batch_size": 2, "timesteps": 6, "bidirectional": "stream"},
                      {"batch_size": 4, "timesteps": 3, "bidirectional": "stream", "stage_order": "oldest"},
                      {"batch_size": 2, "timesteps": 5, "bidirectional": "stream", "stage_order": "deepest"},
                      {"batch_size": 3, "timesteps": 2, "bidirectional": "stream", "stage_order": "full-oldest"},
                      {"batch_size": 2, "timesteps": 3, "bidirectional": "stream", "stage_order": "shallowest"})

    def __init__(
        self,
        batch_size: int = 64,
        timesteps: int | str = 16,
        bidirectional: str = "pack",
        stage_order: str | None = None,
        lookahead: int | None = None,
        latency_slo_s: float | None = None,
        min_timesteps: int | None = None,
        max_timesteps: int | None = None,
    ) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        # timesteps="auto": T chosen per window online (ebatch.policies.auto), within the bounds, for the SLO
        self.timesteps, self.latency_slo_s, self.min_timesteps, self.max_timesteps = check_timestep_params(
            timesteps, latency_slo_s, min_timesteps, max_timesteps
        )
        if bidirectional not in BIDIRECTIONAL_MODES:
            raise ValueError(f"bidirectional: must be one of {', '.join(BIDIRECTIONAL_MODES)}, got {bidirectional!r}")
        self.bidirectional = bidirectional
        if stage_order is not None and stage_order not in STAGE_ORDERS:
            raise ValueError(f"stage_order: must be one of {', '.join(STAGE_ORDERS)}, got {stage_order!r}")
        if stage_order is not None and bidirectional == "pack":
            raise ValueError("stage_order: only used with bidirectional='stream'; "
                             "drop it or set bidirectional='stream'")
        self.stage_order = stage_order  # None: "fullest"
        if lookahead is not None:
            lookahead = check_positive_int("lookahead", lookahead)
        self.lookahead = lookahead

    def start(self, model: RNNModel) -> None:
        super().start(model)
        self.packs = model.bidirectional and self.bidirectional == "pack"
        self._packed = PackedQueue(self.batch_size, self.lookahead) if self.packs else None
        self.stages = [] if self.packs else build_stages(model, self.batch_size, self.lookahead)
        self._groups = max((s.group for s in self.stages), default=0) + 1
        self._left: dict[int, int] = {}  # request -> stages of its current group that have not finished it
        self._running = -1  # the stage whose window is being evaluated
        self.auto = None
        if self.timesteps == "auto":
            self.auto = AutoTimesteps(self.latency_slo_s, self.min_timesteps, self.max_timesteps)

    def wake_time_s(self) -> float | None:
        return self.auto.wake_time_s() if self.auto is not None else None

    def _enqueue(self, ids: np.ndarray) -> None:
        if self.packs:
            self._packed.enqueue(ids, self.lengths)
        else:
            self._enter(ids, 0)

    def _cancel(self, ids: np.ndarray) -> None:
        super()._cancel(ids)  # the window being evaluated
        for filler in [s.filler for s in self.stages] + ([self._packed] if self._packed else []):
            filler.drop(ids, self.lengths)
        for request in ids.tolist():
            self._left.pop(request, None)

    def _enter(self, ids: np.ndarray, group: int) -> None:
        stages = [s for s in self.stages if s.group == group]
        for stage in stages:
            stage.filler.enqueue(ids, self.lengths)
        if len(self.stages) > 1:
            self._left.update(dict.fromkeys(ids.tolist(), len(stages)))

    # ---- forming windows ----------------------------------------------------------------------------

    def _form_window(self, now_s: float) -> Window | None:
        if self.packs:
            return self._fill(self._packed, now_s, 0, False)
        busy = [i for i, s in enumerate(self.stages) if s.filler.has_work()]
        if not busy:
            return None
        index = busy[0] if len(busy) == 1 else self._choose_stage(busy)
        stage = self.stages[index]
        window = self._fill(stage.filler, now_s, index, len(busy) > 1)
        if window is None:
            return None
        self._running = index
        return window if len(self.stages) == 1 else replace(window, cell_types=stage.cell_types)

    def _fill(self, filler, now_s: float, key: int, busy_elsewhere: bool) -> Window | None:
        if self.auto is not None:
            return self.auto.form(filler, self.lengths, self.arrivals_s, now_s, key, busy_elsewhere,
                                  max(1, len(self.stages)))
        return filler.form(self.timesteps, self.lengths)

    def _nominal_t(self) -> int:
        """T used to compare stages: the fixed T, or under ``auto`` the last T chosen (its lower bound first)."""
        if self.auto is None:
            return self.timesteps
        return self.auto.chosen[-1] if self.auto.chosen else self.auto.min_timesteps

    def _choose_stage(self, busy: list[int]) -> int:
        """The stage that runs the next window, by ``stage_order`` (see the module docstring)."""
        stages, order = self.stages, self.stage_order or STAGE_ORDERS[0]
        if order == "deepest":
            return max(busy, key=lambda i: (stages[i].group, -i))
        if order == "shallowest":
            return min(busy, key=lambda i: (stages[i].group, i))
        if order == "oldest":
            return min(busy, key=lambda i: (stages[i].filler.oldest(), -stages[i].group, i))
        t = self._nominal_t()
        cells = {i: stages[i].filler.window_cells(t, self.lengths) for i in busy}
        if order == "full-oldest":
            full = [i for i in busy if cells[i] == self.batch_size * t]
            if not full:
                return min(busy, key=lambda i: (stages[i].filler.oldest(), -stages[i].group, i))
            busy = full
        return max(busy, key=lambda i: (cells[i], stages[i].group, -i))

    # ---- a finished window --------------------------------------------------------------------------

    def _window_done(self, window: Window) -> np.ndarray:
        if self.packs or len(self.stages) == 1:
            return window.completes
        group = self.stages[self._running].group
        left, done, moving = self._left, [], []
        for request in window.completes.tolist():
            left[request] -= 1
            if left[request] == 0:
                (moving if group + 1 < self._groups else done).append(request)
        for request in done:
            del left[request]
        if moving:
            self._enter(np.array(moving, dtype=np.int64), group + 1)
        return np.array(done, dtype=np.int64)
