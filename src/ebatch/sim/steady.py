"""Steady-state figures of a run: throughput and energy over the middle of its completions (docs/metrics.md).

A finite backlog has a fill transient (the first batches start together) and a drain transient (the last,
partly filled batches), and both weigh more the fewer requests a run has. The steady-state window drops
them: with ``C`` completions sorted by finish time ``f_(0) <= ... <= f_(C-1)`` and
``k = floor(trim_fraction x C)``, the window is ``[t_lo, t_hi] = [f_(k), f_(C-1-k)]``, and

- ``steady_completed`` = completions with ``t_lo < finish_s <= t_hi`` (ties at ``t_lo`` belong to the fill);
- ``steady_energy_j`` = every step's energy times the fraction of its duration inside the window;
- ``steady_throughput_rps`` = ``steady_completed / (t_hi - t_lo)``;
- ``steady_requests_per_j`` = ``steady_completed / steady_energy_j``.

With the default ``trim_fraction = 0.1`` the window spans the middle 80% of completions. Figures are NaN
when the window is empty (fewer than about ``1 / trim_fraction`` completions, or all of them finishing
at once). Life cycle: ``steady_state(finish_s, step_start_s, step_time_s, step_energy_j)``;
``SimulationResult.summary()`` adds its keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["STEADY_TRIM_FRACTION", "SteadyState", "steady_state", "steady_window"]

#: The fraction of completions dropped at each end: the window spans the middle 80%.
STEADY_TRIM_FRACTION = 0.1


@dataclass(frozen=True)
class SteadyState:
    """The window and the figures inside it (NaN when it is empty)."""

    steady_window_start_s: float
    steady_window_end_s: float
    steady_completed: int
    steady_energy_j: float
    steady_throughput_rps: float
    steady_requests_per_j: float

    def to_dict(self) -> dict:
        return asdict(self)


def steady_window(finish_s: np.ndarray, trim_fraction: float = STEADY_TRIM_FRACTION) -> tuple[float, float, int]:
    """``(t_lo, t_hi, completions in (t_lo, t_hi])`` over the finite finish times (see the module docstring)."""
    if not 0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction: must be in [0, 0.5), got {trim_fraction}")
    done = np.sort(np.asarray(finish_s, dtype=float)[np.isfinite(finish_s)])
    if done.size < 2:
        return float("nan"), float("nan"), 0
    k = int(np.floor(trim_fraction * done.size))
    lo, hi = float(done[k]), float(done[done.size - 1 - k])
    count = int(np.count_nonzero((done > lo) & (done <= hi)))
    return lo, hi, count


def steady_state(finish_s: np.ndarray, step_start_s: np.ndarray, step_time_s: np.ndarray,
                 step_energy_j: np.ndarray, trim_fraction: float = STEADY_TRIM_FRACTION) -> SteadyState:
    """The steady-state figures of a run from its requests' finish times and its steps (start, duration, energy)."""
    lo, hi, count = steady_window(finish_s, trim_fraction)
    nan = float("nan")
    if not count or not hi > lo:
        return SteadyState(lo, hi, 0, nan, nan, nan)
    start = np.asarray(step_start_s, dtype=float)
    time = np.asarray(step_time_s, dtype=float)
    energy = np.asarray(step_energy_j, dtype=float)
    overlap = np.clip(np.minimum(start + time, hi) - np.maximum(start, lo), 0.0, None)
    share = np.divide(overlap, time, out=np.zeros_like(overlap), where=time > 0)
    inside_j = float(np.sum(energy * share))
    return SteadyState(lo, hi, count, inside_j, count / (hi - lo), count / inside_j if inside_j > 0 else nan)
