"""A load generator's schedule: every request's length and send time, drawn before the first is sent.

Open loop: the send times do not depend on the server's answers, so a slow server cannot slow the load
down and hide its queueing (no coordinated omission). Latency counts from the *scheduled* send time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebatch.workload.datasets import TRACES
from ebatch.workload.workload import Workload, make_arrivals

__all__ = ["ARRIVALS", "Schedule", "make_schedule", "send_times_s"]

ARRIVALS = ("poisson", "gamma", *sorted(TRACES))


@dataclass(frozen=True, eq=False)
class Schedule:
    """Request ``i`` has ``lengths[i]`` time-steps and is sent ``send_s[i]`` seconds after the start."""

    lengths: np.ndarray
    send_s: np.ndarray
    rate_rps: float
    arrival: str
    cv: float
    workload: str

    def __len__(self) -> int:
        return int(self.lengths.size)


def send_times_s(arrival: str, n: int, rate_rps: float, cv: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` send times at a mean of ``rate_rps`` per second, the first at 0.

    ``poisson``, ``gamma`` (gaps with coefficient of variation ``cv``) or a trace (``azure-conv``,
    ``azure-code``, ``mooncake``, time-scaled to ``rate_rps``): :func:`~ebatch.workload.workload.make_arrivals`, shifted
    so that the first request is sent at once.
    """
    if not rate_rps > 0:
        raise ValueError(f"rate: must be > 0 requests per second, got {rate_rps}")
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival: unknown {arrival!r}; choose one of {', '.join(ARRIVALS)}")
    times = make_arrivals(arrival, n, rate_rps, rng, cv)
    return times - times[0]


def make_schedule(workload: str, arrival: str, rate_rps: float, requests: int | None = None,
                  duration_s: float | None = None, cv: float = 1.0, seed: int = 0) -> Schedule:
    """Lengths drawn from ``workload`` (a shipped length table or a CSV) and send times from ``arrival``.

    ``requests`` bounds the count; ``duration_s`` keeps the requests sent within that many seconds; with
    both, whichever ends first. Raises ``ValueError`` naming the option when neither is given.
    """
    if requests is None and duration_s is None:
        raise ValueError("requests: give --requests or --duration-s (the load must be bounded)")
    if requests is not None and requests < 1:
        raise ValueError(f"requests: must be >= 1, got {requests}")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"duration-s: must be > 0 seconds, got {duration_s}")
    if not rate_rps > 0:
        raise ValueError(f"rate: must be > 0 requests per second, got {rate_rps}")
    n = requests if requests is not None else max(1, int(np.ceil(rate_rps * duration_s * 1.5)) + 10)
    rng = np.random.default_rng(seed)
    lengths = Workload.load(workload, n=n, seed=seed).lengths
    if lengths.size < n:  # a CSV shorter than the run: cycle through it
        lengths = np.resize(lengths, n)
    send = send_times_s(arrival, n, rate_rps, cv, rng)
    if duration_s is not None:
        keep = send < duration_s
        keep[0] = True
        lengths, send = lengths[keep], send[keep]
    return Schedule(np.asarray(lengths, dtype=np.int64), send, float(rate_rps), arrival, float(cv), workload)
