"""Steady-state figures of a run: throughput and energy over the middle of its completions (docs/metrics.md).

A finite backlog has a fill transient (the first batches start together) and a drain transient (the last,
partly filled batches, and a tail of the longest requests run a few at a time), and both weigh more the
fewer requests a run has. The steady-state window drops them: with ``C`` completions sorted by finish time
``f_(0) <= ... <= f_(C-1)`` and ``k = floor(trim_fraction x C)``, the window is
``[t_lo, t_hi] = [f_(k), f_(C-1-k)]``. Inside it, every step counts in proportion to its time inside:

- ``steady_cells`` and ``steady_energy_j``: useful cells computed and energy spent in the window;
- ``steady_throughput_rps`` = ``steady_cells / (t_hi - t_lo) / cells_per_request``;
- ``steady_requests_per_j`` = ``steady_cells / steady_energy_j / cells_per_request``;

``cells_per_request`` being the run's useful cells over its completions. The figures count work, not
completions, because a policy that serves short requests first completes many of them mid-run and leaves
the long ones to the end: counting completions in the window would credit it with the short requests'
rate. ``steady_completed`` (completions with ``t_lo < finish_s <= t_hi``) is kept for information. With the
default ``trim_fraction = 0.1`` the window spans the middle 80% of completions. Figures are NaN when the
window is empty (fewer than 2 completions, or all finishing at once). Life cycle:
``steady_state(finish_s, start_s, time_s, energy_j, useful_cells)`` over the steps;
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
    steady_cells: float
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
                 step_energy_j: np.ndarray, step_useful_cells: np.ndarray,
                 trim_fraction: float = STEADY_TRIM_FRACTION) -> SteadyState:
    """The steady-state figures of a run from its requests' finish times and its steps."""
    lo, hi, count = steady_window(finish_s, trim_fraction)
    nan = float("nan")
    useful = np.asarray(step_useful_cells, dtype=float)
    completed = int(np.count_nonzero(np.isfinite(finish_s)))
    if not count or not hi > lo or not useful.sum() > 0:
        return SteadyState(lo, hi, 0, nan, nan, nan, nan)
    start = np.asarray(step_start_s, dtype=float)
    time = np.asarray(step_time_s, dtype=float)
    overlap = np.clip(np.minimum(start + time, hi) - np.maximum(start, lo), 0.0, None)
    share = np.divide(overlap, time, out=np.zeros_like(overlap), where=time > 0)
    cells = float(np.sum(useful * share))
    energy = float(np.sum(np.asarray(step_energy_j, dtype=float) * share))
    per_request = float(useful.sum()) / completed
    return SteadyState(lo, hi, count, cells, energy, cells / (hi - lo) / per_request,
                       cells / energy / per_request if energy > 0 else nan)
