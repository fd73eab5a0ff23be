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
   (streaming: half of that budget, since a queued request still needs its own time-steps afterwards).
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
    """Chooses T for each window of one E-BATCH policy run (see the module docstring for the rule)."""

    def __init__(self, latency_slo_s: float | None, min_timesteps: int | None, max_timesteps: int | None) -> None:
        self.latency_slo_s = latency_slo_s
        self.min_timesteps = min_timesteps or 1
        self.max_timesteps = max_timesteps or max(DEFAULT_MAX_TIMESTEPS, self.min_timesteps)
        self.model = _DurationModel()
        self.chosen: list[int] = []  # T of every formed window, in order (for tests and studies)
        self.chosen_at_s: list[float] = []  # when each of those windows was formed
        self._pending: tuple[float, int, int] | None = None
        self._wake_s: float | None = None
        self.held = 0  # times the controller chose to wait for a fuller window

    def wake_time_s(self) -> float | None:
        """When a held window must start at the latest (the policy's ``wake_time_s``)."""
        return self._wake_s

    def form(self, policy, now_s: float):
        """Form the policy's next window with an automatically chosen T (or ``None`` when idle)."""
        if self._pending is not None:  # the previous window just ended: asked again as soon as it did
            start_s, width, rows = self._pending
            self.model.add(width, rows, now_s - start_s)
            self._pending = None
        self._wake_s = None
        t = self.choose(policy, now_s)
        if t is None:
            return None
        if self._hold(policy, now_s, t):
            return None
        window = policy._pack_whole(t) if policy.model.bidirectional else policy._stream(t)
        if window is not None:
            self.chosen.append(t)
            self.chosen_at_s.append(now_s)
            rows = int(np.unique(window.rows).size)
            self._pending = (now_s, int(window.width), rows)
        return window

    def choose(self, policy, now_s: float) -> int | None:
        """T for the window formed now, or ``None`` when there is nothing to run."""
        b = policy.batch_size
        lookahead = policy.lookahead or 4 * b
        queue = policy.queue
        waiting = [queue[i] for i in range(min(len(queue), max(lookahead, b)))]
        lengths = policy.lengths
        active = np.zeros(0, dtype=np.int64)
        if not policy.model.bidirectional:
            active = policy._slot_request[policy._slot_request >= 0]
        if not waiting and active.size == 0:
            return None
        work = int(lengths[waiting].sum())
        if active.size:
            held = policy._slot_position[policy._slot_request >= 0]
            work += int((lengths[active] - held).sum())
        low, high = self.min_timesteps, self.max_timesteps
        t_fill = min(high, max(low, math.ceil(work / b)))
        if self.latency_slo_s is None or not self.model.samples:
            return t_fill  # no objective, or nothing learnt yet about window times
        ids = np.concatenate([active, np.asarray(waiting[:1], dtype=np.int64)])
        age_s = now_s - float(policy.arrivals_s[ids].min())
        longest = int(lengths[waiting[:b]].max()) if waiting else 0
        budget_s = MARGIN * self.latency_slo_s - age_s
        t = t_fill
        if not policy.model.bidirectional:
            # streaming: a longer window only delays the queued requests' start (they then need their own
            # time-steps too, hence half the budget) and loads every layer's weights fewer times
            t, budget_s = high, budget_s / 2
        while True:
            if self._predict(t, longest, work, b, policy.model.bidirectional) <= budget_s:
                return t
            if t <= low:
                return t_fill  # overloaded: the oldest request misses anyway; drain at the best rate
            t = max(low, t // 2)

    def _hold(self, policy, now_s: float, t: int) -> bool:
        """Wait for more arrivals when slots would stay empty and the SLO leaves time (sets the wake time)."""
        if self.latency_slo_s is None or len(self.model.samples) < 2 or len(policy.queue) >= policy.batch_size:
            return False
        if not policy.model.bidirectional and np.any(policy._slot_request >= 0):
            return False  # sequences in flight: never stall them
        waiting = list(policy.queue)
        work = int(policy.lengths[waiting].sum())
        longest = int(policy.lengths[waiting].max())
        bidirectional = policy.model.bidirectional
        budget_s = MARGIN * self.latency_slo_s
        if bidirectional:  # every held sequence completes in the window formed at the deadline
            duration_s = self._predict(t, longest, work, policy.batch_size, True)
        else:  # streaming: the longest must run all its time-steps, within half the budget (as in choose)
            duration_s = self._predict(max(t, longest), longest, work, policy.batch_size, False)
            budget_s /= 2
        deadline_s = float(policy.arrivals_s[waiting[0]]) + budget_s - duration_s
        if now_s >= deadline_s - 1e-12:
            return False
        self._wake_s = deadline_s
        self.held += 1
        return True

    def _predict(self, t: int, longest: int, work: int, b: int, bidirectional: bool) -> float:
        width = max(t, longest) if bidirectional else t
        rows = min(b, max(1, math.ceil(work / max(width, 1))))
        return self.model.predict(width, rows)
