"""The ``Workload``: an immutable table of requests (length in time-steps, arrival time in seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ebatch.workload.datasets import (
    DATASETS,
    DEFAULT_FRAME_RATE_HZ,
    DEFAULT_SUBWORD_FACTOR,
    dataset_lengths,
    trace_arrivals,
)

__all__ = ["Workload", "make_arrivals"]


def _frozen(values, dtype) -> np.ndarray:
    array = np.array(values, dtype=dtype, copy=True).reshape(-1)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class Workload:
    """Requests sorted by arrival; request ``i`` has ``lengths[i]`` time-steps and arrives at ``arrivals_s[i]``.

    Build one with :meth:`from_dataset`, :meth:`from_lengths` or :meth:`from_csv`. Raises ``ValueError``
    for an empty workload, non-positive lengths, negative or non-finite arrival times.
    """

    lengths: np.ndarray
    arrivals_s: np.ndarray
    name: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        lengths = np.asarray(self.lengths)
        arrivals = np.asarray(self.arrivals_s, dtype=np.float64)
        if lengths.size == 0:
            raise ValueError("workload: no requests; give at least one length")
        if lengths.shape != arrivals.shape:
            raise ValueError(f"arrivals_s: {arrivals.size} arrival times for {lengths.size} lengths")
        if not np.issubdtype(lengths.dtype, np.number) or not np.all(np.isfinite(lengths)):
            raise ValueError("lengths: must be finite numbers of time-steps")
        if np.any(lengths != np.round(lengths)) or np.any(lengths < 1):
            bad = lengths[(lengths != np.round(lengths)) | (lengths < 1)][0]
            raise ValueError(f"lengths: every length must be a whole number >= 1, got {bad}")
        if not np.all(np.isfinite(arrivals)) or np.any(arrivals < 0):
            raise ValueError("arrivals_s: arrival times must be finite and >= 0")
        order = np.argsort(arrivals, kind="stable")
        object.__setattr__(self, "lengths", _frozen(lengths[order], np.int64))
        object.__setattr__(self, "arrivals_s", _frozen(arrivals[order], np.float64))

    # ---- constructors -------------------------------------------------------------------------------

    @classmethod
    def from_lengths(cls, lengths, arrivals_s=None, name: str = "custom") -> Workload:
        """Requests with explicit lengths (time-steps); all arrive at 0 unless ``arrivals_s`` is given."""
        lengths = np.asarray(lengths)
        arrivals = np.zeros(lengths.shape) if arrivals_s is None else np.asarray(arrivals_s, dtype=float)
        return cls(lengths, arrivals, name=name)

    @classmethod
    def from_dataset(
        cls,
        name: str,
        n: int | None = None,
        arrival: str = "offline",
        rate_rps: float | None = None,
        seed: int = 0,
        frame_rate_hz: float = DEFAULT_FRAME_RATE_HZ,
        subword_factor: float = DEFAULT_SUBWORD_FACTOR,
        cv: float | None = None,
    ) -> Workload:
        """Lengths from a shipped data set, arrivals from ``arrival`` (and ``cv`` for gamma; see
        :func:`make_arrivals`).

        ``n=None`` takes every request in file order; otherwise ``n`` requests are drawn with the seed
        (without replacement while ``n`` <= the set's size).
        """
        all_lengths = dataset_lengths(name, frame_rate_hz, subword_factor)
        rng = np.random.default_rng(seed)
        if n is None:
            lengths = all_lengths
        else:
            if n < 1:
                raise ValueError(f"requests: must be >= 1, got {n}")
            lengths = rng.choice(all_lengths, size=n, replace=n > all_lengths.size)
        arrivals = make_arrivals(arrival, lengths.size, rate_rps, rng, cv)
        meta = {"dataset": name, "arrival": arrival, "rate_rps": rate_rps, "seed": seed} | _cv_meta(arrival, cv)
        if DATASETS[name].kind == "speech":
            meta["frame_rate_hz"] = frame_rate_hz
        else:
            meta["subword_factor"] = subword_factor
        return cls(lengths, arrivals, name=name, meta=meta)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        n: int | None = None,
        arrival: str = "offline",
        rate_rps: float | None = None,
        seed: int = 0,
        frame_rate_hz: float = DEFAULT_FRAME_RATE_HZ,
        cv: float | None = None,
    ) -> Workload:
        """A user's CSV with a ``length`` (time-steps) or ``duration_s`` column, and optionally ``arrival_s``."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"workload: file {str(path)!r} does not exist; give a dataset name or a CSV path")
        try:
            table = pd.read_csv(path)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise ValueError(f"workload: {path.name} is not a CSV with a header row ({exc})") from None
        if "length" in table:
            lengths = table["length"].to_numpy()
        elif "duration_s" in table:
            durations = pd.to_numeric(table["duration_s"], errors="coerce").to_numpy(float)
            if not (np.all(np.isfinite(durations) & (durations > 0)) and frame_rate_hz > 0):
                raise ValueError(f"duration_s: {path.name} needs durations > 0 s (and frame_rate_hz > 0)")
            lengths = np.maximum(1, np.ceil(np.round(durations * frame_rate_hz, 6)))
        else:
            raise ValueError(
                f"workload: {path.name} has no usable column (found {list(table.columns)}); "
                "add a 'length' (time-steps) or 'duration_s' column"
            )
        rng = np.random.default_rng(seed)
        if n is not None:
            lengths = lengths[:n]
        if "arrival_s" in table and arrival == "offline":
            arrivals = pd.to_numeric(table["arrival_s"], errors="coerce").to_numpy(float)[: lengths.size]
        else:
            arrivals = make_arrivals(arrival, lengths.size, rate_rps, rng, cv)
        meta = {"csv": str(path), "arrival": arrival, "seed": seed} | _cv_meta(arrival, cv)
        return cls(lengths, arrivals, name=path.stem, meta=meta)

    @classmethod
    def load(cls, spec: str, **kwargs) -> Workload:
        """A shipped data set by name, or a CSV file by path."""
        if spec in DATASETS:
            return cls.from_dataset(spec, **kwargs)
        if spec.endswith(".csv") or Path(spec).exists():
            kwargs.pop("subword_factor", None)
            return cls.from_csv(spec, **kwargs)
        raise ValueError(
            f"workload: unknown dataset {spec!r}; choose one of {', '.join(sorted(DATASETS))} or a CSV path"
        )

    # ---- views --------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.lengths.size)

    @property
    def total_timesteps(self) -> int:
        return int(self.lengths.sum())

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {"request_id": np.arange(len(self)), "length": self.lengths, "arrival_s": self.arrivals_s}
        )

    def describe(self) -> str:
        lengths = self.lengths
        span = self.arrivals_s[-1] - self.arrivals_s[0]
        return (
            f"{self.name}: {len(self)} requests, length min {lengths.min()} / mean {lengths.mean():.1f} / "
            f"max {lengths.max()}, arrivals over {span:.1f} s"
        )


def _cv_meta(arrival: str, cv: float | None) -> dict:
    """The gaps' coefficient of variation, in a workload's description where its arrivals use one."""
    return {"cv": cv} if arrival == "gamma" else {}


def make_arrivals(arrival: str, n: int, rate_rps: float | None, rng: np.random.Generator,
                  cv: float | None = None) -> np.ndarray:
    """Arrival times for ``n`` requests.

    - ``offline``: all at 0 (every request queued before the run starts).
    - ``poisson``: exponential inter-arrival times at ``rate_rps`` requests per second.
    - ``gamma``: gamma inter-arrival times with mean ``1 / rate_rps`` and coefficient of variation ``cv``
      (shape ``1 / cv^2``, scale ``cv^2 / rate_rps``); cv > 1 is burstier than Poisson, cv = 1 is Poisson.
    - a trace name (``azure-conv``, ``azure-code``, ``mooncake``): the trace's first ``n`` arrivals (repeated
      back to back if it is shorter), time-scaled so the mean rate is ``rate_rps`` when given.
    """
    if rate_rps is not None and not rate_rps > 0:
        raise ValueError(f"rate: must be > 0 requests per second, got {rate_rps}")
    if arrival == "offline":
        return np.zeros(n)
    if arrival == "poisson":
        if rate_rps is None:
            raise ValueError("rate: poisson arrivals need a rate in requests per second (--rate)")
        return np.cumsum(rng.exponential(1.0 / rate_rps, size=n)) - 0.0
    if arrival == "gamma":
        if rate_rps is None:
            raise ValueError("rate: gamma arrivals need a rate in requests per second (--rate)")
        if cv is None or not cv > 0:
            raise ValueError(f"cv: gamma arrivals need a coefficient of variation of the gaps > 0 (--cv), got {cv}")
        return np.cumsum(rng.gamma(1.0 / cv**2, cv**2 / rate_rps, size=n))
    trace = trace_arrivals(arrival)
    span = trace[-1] + np.mean(np.diff(trace))
    repeats = -(-n // trace.size)
    arrivals = (trace[None, :] + span * np.arange(repeats)[:, None]).reshape(-1)[:n]
    arrivals = arrivals - arrivals[0]
    if rate_rps is not None and n > 1 and arrivals[-1] > 0:
        arrivals = arrivals * ((n - 1) / arrivals[-1]) / rate_rps
    return arrivals
