"""``find_max_rate``: the highest request rate whose p99 latency meets the SLO, by probing a live server.

The search multiplies the rate from ``start_rps`` by ``growth`` (2 by default) while probes pass (or
divides it while they fail) to bracket the answer, then bisects until the bracket is within
``rel_tolerance``. Every probe is a bounded open-loop run: at most ``requests`` requests sent within
``duration_s`` seconds, each answered within ``timeout_s``, and at most ``max_probes`` probes in all.
A probe passes when its p99 (failures infinite) is within the SLO.

A probe whose requests are all sent within less than the SLO is one burst: a server that answers the whole
burst in time says nothing about the rate it sustains. The search stops growing at such a probe and flags
the answer (``probe_limited``): a lower bound, to be searched again with more requests or a longer duration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ebatch.bench.loadgen import LoadResult

__all__ = ["MaxRateSearch", "find_max_rate", "is_burst"]


@dataclass(frozen=True)
class MaxRateSearch:
    """The highest passing rate (0 if none passed) and every probe's result, in the order run;
    ``probe_limited``: the search stopped at a passing probe sent as one burst shorter than the SLO, so the
    answer is only a lower bound (see the module docstring)."""

    max_rate_rps: float
    probes: tuple[LoadResult, ...]
    probe_limited: bool = False


def is_burst(result: LoadResult) -> bool:
    """Whether a probe's requests were sent within less than its SLO, both as drawn (``offered_rps`` spans
    the sends) and at the rate asked for: a few requests drawn at a low rate may by chance fall within the
    SLO, or a short draw hold fewer of them than the rate asks, and such a probe is no burst."""
    gaps = result.requests - 1
    sent_span_s = gaps / result.offered_rps if result.offered_rps > 0 else 0.0
    return max(sent_span_s, gaps / result.rate_rps) < result.slo_p99_s


def find_max_rate(probe: Callable[[float], LoadResult], start_rps: float, rel_tolerance: float = 0.1,
                  max_probes: int = 8, growth: float = 2.0) -> MaxRateSearch:
    """Search with ``probe(rate_rps) -> LoadResult`` (one bounded run at that rate). A ``growth`` near 1
    suits a good ``start_rps`` (e.g. a simulated prediction): the bracket closes in fewer probes."""
    if not start_rps > 0:
        raise ValueError(f"rate: the search's starting rate must be > 0, got {start_rps}")
    if not 0 < rel_tolerance < 1:
        raise ValueError(f"tolerance: must be in (0, 1), got {rel_tolerance}")
    if max_probes < 2:
        raise ValueError(f"max-probes: must be >= 2, got {max_probes}")
    if not growth > 1:
        raise ValueError(f"growth: the bracketing factor must be > 1, got {growth}")
    probes: list[LoadResult] = []

    def passes(rate_rps: float) -> bool:
        result = probe(rate_rps)
        probes.append(result)
        return result.slo_met

    low, high = 0.0, None
    rate = start_rps
    if passes(rate):
        low = rate
        while len(probes) < max_probes:
            if is_burst(probes[-1]):
                return MaxRateSearch(low, tuple(probes), probe_limited=True)
            rate *= growth
            if not passes(rate):
                high = rate
                break
            low = rate
    else:
        high = rate
        while len(probes) < max_probes:
            rate /= growth
            if passes(rate):
                low = rate
                break
            high = rate
    while high is not None and low > 0 and len(probes) < max_probes and (high - low) > rel_tolerance * low:
        rate = (low + high) / 2
        if passes(rate):
            low = rate
        else:
            high = rate
    return MaxRateSearch(low, tuple(probes))
