"""``timesteps="auto"``: an online controller that picks E-BATCH's window length T for every window.

The controller sees only what the policy sees: the queue (ids, lengths, arrival times), the slots' state,
and the times at which it is asked for work (``now_s``). It never reads the hardware's cost. It learns
how long a window takes from its own history: a window formed at ``now_s = t0`` ends exactly when the
policy is next asked to form one (the backend asks as soon as it is free), so each window gives one
sample ``(width, rows, duration)``. A least-squares fit ``duration = a + b x width + c x rows x width``
(coefficients kept >= 0) over the last :data:`HISTORY` windows predicts the next window's duration.

Rule, per window:

1. **Fill**: ``T_fill = ceil(work / B)`` where ``work`` is the queued time-steps within the policy's
   look-ahead (plus, when slots stream, what the slots still hold), clamped to ``[min_timesteps,
   max_timesteps]``. A window of ``T_fill`` spreads the queue evenly over the B slots: deep queue, long
   windows (weights loaded once for many sequences); shallow queue, short windows (low latency). Without
   ``latency_slo_s`` (or before the first window has been timed) this is the choice.
2. **Latency cap** (with ``latency_slo_s``): start from ``T_fill`` (whole-sequence packing) or from
   ``max_timesteps`` (streaming slots, where a longer window means fewer weight loads) and halve T while
   the oldest waiting request's age plus the predicted window duration exceeds ``MARGIN x latency_slo_s``
   (streaming: half of that budget, since a queued request still needs its own time-steps afterwards;
   with ``bidirectional="stream"`` and S stages, ``1 / (S + 1)`` of it, as each stage adds windows).
3. **Overload**: if even ``min_timesteps`` cannot meet that bound, the SLO is already lost for the oldest
   request; use ``T_fill`` to drain the queue at the best rate.
4. **Hold** (with ``latency_slo_s``, after two timed windows): when fewer than B sequences are queued and
   no slot holds a sequence in flight, do not start yet; wait for arrivals until the latest start that
   still lets the oldest request finish within ``MARGIN x latency_slo_s`` (``wake_time_s``; streaming:
   the longest queued sequence's whole run within half of it). Fuller windows share each time-step's
   weight reads and recurrence among more sequences.

Life cycle: the policy builds one controller per run in ``start()`` and calls :meth:`AutoTimesteps.form`
from ``_form_window``. :func:`check_timestep_params` validates the policy's parameters (``ValueError``).
"""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np

from ebatch.policies.base import check_positive_int

__all__ = ["AutoTimesteps", "DEFAULT_MAX_TIMESTEPS", "HISTORY", "MARGIN", "check_timestep_params"]

DEFAULT_MAX_TIMESTEPS = 4096
HISTORY = 32
MARGIN = 0.8


def check_timestep_params(timesteps, latency_slo_s, min_timesteps, max_timesteps):
    """Validate E-BATCH's T parameters; returns them normalised. Raises ``ValueError`` naming the field."""
    if isinstance(timesteps, str):
        if timesteps != "auto":
            raise ValueError(f"timesteps: must be an integer >= 1 or 'auto', got {timesteps!r}")
    else:
        timesteps = check_positive_int("timesteps", timesteps)
        given = {"latency_slo_s": latency_slo_s, "min_timesteps": min_timesteps, "max_timesteps": max_timesteps}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise ValueError(f"{extra[0]}: only used with timesteps='auto'; drop it or set timesteps='auto'")
        return timesteps, None, None, None
    if latency_slo_s is not None:
        if isinstance(latency_slo_s, bool) or not isinstance(latency_slo_s, (int, float)) or not latency_slo_s > 0:
            raise ValueError(f"latency_slo_s: must be a number of seconds > 0, got {latency_slo_s!r}")
        latency_slo_s = float(latency_slo_s)
    if min_timesteps is not None:
        min_timesteps = check_positive_int("min_timesteps", min_timesteps)
    if max_timesteps is not None:
        max_timesteps = check_positive_int("max_timesteps", max_timesteps)
    low, high = min_timesteps or 1, max_timesteps or max(DEFAULT_MAX_TIMESTEPS, min_timesteps or 1)
    if low > high:
        raise ValueError(f"min_timesteps: {low} is above max_timesteps {high}; give min_timesteps <= max_timesteps")
    return timesteps, latency_slo_s, min_timesteps, max_timesteps


class _DurationModel:
    """Least-squares ``duration = a + b w + c r w`` with non-negative coefficients, over recent windows."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float, float]] = deque(maxlen=HISTORY)
        self._coef: np.ndarray | None = None

    def add(self, width: int, rows: int, duration_s: float) -> None:
        self.samples.append((float(width), float(rows), float(duration_s)))
        self._coef = None

    def predict(self, width: float, rows: float) -> float:
        """Predicted duration in seconds; 0 before the first sample (nothing is known yet)."""
        if not self.samples:
            return 0.0
        if self._coef is None:
            self._coef = self._fit()
        return float(self._coef @ np.array([1.0, width, rows * width]))

    def _fit(self) -> np.ndarray:
        data = np.array(self.samples)
        x = np.column_stack([np.ones(len(data)), data[:, 0], data[:, 1] * data[:, 0]])
        y = data[:, 2]
        best, best_err = np.array([0.0, float(np.mean(y / data[:, 0])), 0.0]), math.inf
        for keep in itertools.chain.from_iterable(itertools.combinations(range(3), k) for k in (1, 2, 3)):
            cols = list(keep)
            coef, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
            if np.any(coef < 0):
                continue
            err = float(np.sum((x[:, cols] @ coef - y) ** 2))
            if err < best_err - 1e-18 * max(1.0, best_err):
                best, best_err = np.zeros(3), err
                best[cols] = coef
        return best


class AutoTimesteps:
    """Chooses T for each window of one E-BATCH policy run (see the module docstring for the rule).

    The policy calls :meth:`form` with the filler of the window to form (its streaming slots or its
    whole-sequence packer, :mod:`ebatch.policies.fillers`) and a ``key`` naming it: with
    ``bidirectional="stream"`` every stage of the model has its own filler, and window durations are
    learnt per key. ``chosen`` and ``chosen_at_s`` record every window's T and start, in order.
    """

    def __init__(self, latency_slo_s: float | None, min_timesteps: int | None, max_timesteps: int | None) -> None:
        self.latency_slo_s = latency_slo_s
        self.min_timesteps = min_timesteps or 1
        self.max_timesteps = max_timesteps or max(DEFAULT_MAX_TIMESTEPS, self.min_timesteps)
        self.models: dict[int, _DurationModel] = {}
        self.chosen: list[int] = []  # T of every formed window, in order (for tests and studies)
        self.chosen_at_s: list[float] = []  # when each of those windows was formed
        self._pending: tuple[int, float, int, int] | None = None
        self._wake_s: float | None = None
        self.held = 0  # times the controller chose to wait for a fuller window

    @property
    def model(self) -> _DurationModel:
        """The duration model of the first filler (the only one unless stages stream separately)."""
        return self.models.setdefault(0, _DurationModel())

    def wake_time_s(self) -> float | None:
        """When a held window must start at the latest (the policy's ``wake_time_s``)."""
        return self._wake_s

    def form(self, filler, lengths: np.ndarray, arrivals_s: np.ndarray, now_s: float, key: int = 0,
             busy_elsewhere: bool = False, stages: int = 1):
        """Form ``filler``'s next window with an automatically chosen T (or ``None`` to wait).

        ``busy_elsewhere``: other stages hold sequences in flight (then the controller never holds).
        ``stages``: how many stages a request passes through one after the other (streaming only): each
        of them adds windows to its latency, so a streaming window gets ``1 / (stages + 1)`` of the
        budget (half of it with one stage, as in a unidirectional model).
        """
        share = 1.0 / (stages + 1)
        if self._pending is not None:  # the previous window just ended: asked again as soon as it did
            pending_key, start_s, width, rows = self._pending
            self.models.setdefault(pending_key, _DurationModel()).add(width, rows, now_s - start_s)
            self._pending = None
        self._wake_s = None
        model = self.models.setdefault(key, _DurationModel())
        t = self.choose(filler, lengths, arrivals_s, now_s, model, share)
        if t is None:
            return None
        if not busy_elsewhere and self._hold(filler, lengths, arrivals_s, now_s, t, model, share):
            return None
        window = filler.form(t, lengths)
        if window is not None:
            self.chosen.append(t)
            self.chosen_at_s.append(now_s)
            rows = int(np.unique(window.rows).size)
            self._pending = (key, now_s, int(window.width), rows)
        return window

    def choose(self, filler, lengths: np.ndarray, arrivals_s: np.ndarray, now_s: float,
               model: _DurationModel | None = None, share: float = 0.5) -> int | None:
        """T for the window formed now, or ``None`` when there is nothing to run. ``share``: the part of the
        SLO budget a streaming window may take (see :meth:`form`)."""
        model = model or self.model
        b = filler.slots
        queue = filler.queue
        waiting = [queue[i] for i in range(min(len(queue), max(filler.lookahead, b)))]
        active, held = filler.in_flight()
        if not waiting and active.size == 0:
            return None
        work = int(lengths[waiting].sum())
        if active.size:
            work += int((lengths[active] - held).sum())
        low, high = self.min_timesteps, self.max_timesteps
        t_fill = min(high, max(low, math.ceil(work / b)))
        if self.latency_slo_s is None or not model.samples:
            return t_fill  # no objective, or nothing learnt yet about window times
        ids = np.concatenate([active, np.asarray(waiting[:1], dtype=np.int64)])
        age_s = now_s - float(arrivals_s[ids].min())
        longest = int(lengths[waiting[:b]].max()) if waiting else 0
        budget_s = MARGIN * self.latency_slo_s - age_s
        t = t_fill
        if not filler.packs:
            # streaming: a longer window only delays the queued requests' start (they then need their own
            # time-steps too, hence half the budget) and loads every layer's weights fewer times
            t, budget_s = high, budget_s * share
        while True:
            if _predict(model, t, longest, work, b, filler.packs) <= budget_s:
                return t
            if t <= low:
                return t_fill  # overloaded: the oldest request misses anyway; drain at the best rate
            t = max(low, t // 2)

    def _hold(self, filler, lengths, arrivals_s, now_s: float, t: int, model: _DurationModel,
              share: float) -> bool:
        """Wait for more arrivals when slots would stay empty and the SLO leaves time (sets the wake time)."""
        if self.latency_slo_s is None or len(model.samples) < 2 or len(filler.queue) >= filler.slots:
            return False
        if filler.in_flight()[0].size:
            return False  # sequences in flight: never stall them
        waiting = list(filler.queue)
        work = int(lengths[waiting].sum())
        longest = int(lengths[waiting].max())
        budget_s = MARGIN * self.latency_slo_s
        if filler.packs:  # every held sequence completes in the window formed at the deadline
            duration_s = _predict(model, t, longest, work, filler.slots, True)
        else:  # streaming: the longest must run all its time-steps, within half the budget (as in choose)
            duration_s = _predict(model, max(t, longest), longest, work, filler.slots, False)
            budget_s *= share
        deadline_s = float(arrivals_s[waiting[0]]) + budget_s - duration_s
        if now_s >= deadline_s - 1e-12:
            return False
        self._wake_s = deadline_s
        self.held += 1
        return True


def _predict(model: _DurationModel, t: int, longest: int, work: int, b: int, packs: bool) -> float:
    width = max(t, longest) if packs else t
    rows = min(b, max(1, math.ceil(work / max(width, 1))))
    return model.predict(width, rows)
