"""Tune E-BATCH's window T and batch size B: sweep, Pareto front of p99 latency vs energy, pick a point.

Life cycle::

    result = tune("eesen", "epur", "librispeech-test-clean", requests=500, rate_rps=20.0,
                  objective="energy", latency_slo_s=2.0)
    result.points    # one row per (B, T): throughput, energy per request, p50/p99 latency, on_front, ...
    result.front     # the Pareto-optimal rows (lower p99 and lower energy), by p99
    result.best      # the chosen row (a dict)
    write_tune(result, "results/tune")   # ebatch.experiments.report.tune: CSVs, tune.json, tune.png

Objectives (among the points meeting ``latency_slo_s`` when given): ``energy`` minimum energy per
request (the default), ``throughput`` maximum throughput, ``edp`` minimum energy per request x p99
latency. Ties go to the lower p99 latency, then the smaller T, then the smaller B. When no point meets
the SLO, the point with the lowest p99 latency is chosen and ``result.slo_met`` is False.
Raises ``ValueError`` for an unknown objective, an empty grid or a bad SLO.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ebatch.experiments.study.phases import PhaseRunner
from ebatch.experiments.study.tune_load import DEFAULT_LOAD_FRACTION, poisson_at_load
from ebatch.hardware import HardwareSpec
from ebatch.model import RNNModel, get_model
from ebatch.sim import simulate
from ebatch.sweep import RunConfig, WorkloadConfig
from ebatch.workload import Workload

__all__ = [
    "DEFAULT_LOAD_FRACTION", "OBJECTIVES", "OBJECTIVE_MEANINGS", "TuneResult", "choose", "load_label", "pareto_front",
    "timestep_grid", "tune", "tune_configs", "tune_from_summaries",
]

OBJECTIVES = ("energy", "throughput", "edp")
#: What each objective chooses, in words (for reports).
OBJECTIVE_MEANINGS = {
    "energy": "minimum energy per request",
    "throughput": "maximum throughput",
    "edp": "energy per request x p99 latency",
}
DEFAULT_BATCH_SIZES = (8, 16, 32, 64, 128)


def timestep_grid(longest: int) -> list[int]:
    """T values 1, 2, 4, ... up to the first power of two >= ``longest`` (the longest sequence)."""
    if longest < 1:
        raise ValueError(f"longest: must be >= 1 time-step, got {longest}")
    grid = [1]
    while grid[-1] < longest:
        grid.append(grid[-1] * 2)
    return grid


def pareto_front(points: pd.DataFrame, x: str = "latency_p99_s", y: str = "energy_per_request_j") -> pd.Series:
    """Boolean mask of the rows no other row beats on both ``x`` and ``y`` (both lower is better).

    Of identical rows only the first in (x, y, timesteps, batch_size) order is kept on the front.
    """
    keys = [x, y] + [k for k in ("timesteps", "batch_size") if k in points]
    order = points.sort_values(keys, kind="stable").index
    mask = pd.Series(False, index=points.index)
    best_y = np.inf
    for idx in order:
        value = points.at[idx, y]
        if value < best_y:
            mask[idx] = True
            best_y = value
    return mask


def choose(points: pd.DataFrame, objective: str = "energy", latency_slo_s: float | None = None) -> tuple[int, bool]:
    """Index of the row the objective picks, and whether it meets the SLO (see the module docstring)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: unknown {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if points.empty:
        raise ValueError("tune: no points to choose from; give at least one batch size and one T")
    eligible = points
    if latency_slo_s is not None:
        eligible = points[points["latency_p99_s"] <= latency_slo_s]
    if eligible.empty:
        ranked = points.sort_values(["latency_p99_s", "energy_per_request_j", "timesteps", "batch_size"], kind="stable")
        return int(ranked.index[0]), False
    score = {
        "energy": eligible["energy_per_request_j"],
        "throughput": -eligible["throughput_rps"],
        "edp": eligible["energy_per_request_j"] * eligible["latency_p99_s"],
    }[objective]
    ranked = eligible.assign(_score=score).sort_values(
        ["_score", "latency_p99_s", "timesteps", "batch_size"], kind="stable"
    )
    return int(ranked.index[0]), True


@dataclass(frozen=True)
class TuneResult:
    """The sweep's table, its Pareto front and the chosen point, with the settings that produced them.

    ``to_json()``: the settings, the objective and SLO, the chosen point, the front and every point."""

    points: pd.DataFrame
    objective: str
    latency_slo_s: float | None
    best_index: int
    slo_met: bool
    settings: dict = field(default_factory=dict)

    @property
    def front(self) -> pd.DataFrame:
        return self.points[self.points["on_front"]].sort_values("latency_p99_s")

    @property
    def best(self) -> dict:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.points.loc[self.best_index].items()}

    def to_json(self) -> dict:
        return {
            "settings": self.settings,
            "objective": self.objective,
            "latency_slo_s": self.latency_slo_s,
            "slo_met": self.slo_met,
            "best": self.best,
            "front": self.front.to_dict(orient="records"),
            "points": self.points.to_dict(orient="records"),
        }


def load_label(workload: Workload) -> str:
    """How a workload's requests arrive, in words (for reports)."""
    arrivals = workload.arrivals_s
    if not np.any(arrivals > 0):
        return "offline (all requests queued at 0)"
    rate = (len(workload) - 1) / arrivals[-1] if len(workload) > 1 else float("nan")
    kind = workload.meta.get("arrival", "given arrival times")
    return f"{kind}, mean rate {rate:.4g} req/s"


def tune_configs(model: str, hardware: str, work: WorkloadConfig, batch_sizes: Sequence[int],
                 timesteps: Sequence[int] | None = None) -> list[RunConfig]:
    """E-BATCH at every (B, T) of the grid on ``work`` (T by default :func:`timestep_grid` of the longest request)."""
    grid_t = list(timesteps) if timesteps is not None else timestep_grid(int(work.load().lengths.max()))
    if not grid_t or not list(batch_sizes):
        raise ValueError("tune: the grid is empty; give at least one batch size and one T")
    return [RunConfig(model, hardware, work, "ebatch", {"batch_size": int(b), "timesteps": int(t)})
            for b in batch_sizes for t in grid_t]


def _row(b: int, t: int, s: Mapping) -> dict:
    return {
        "batch_size": int(b), "timesteps": int(t), "throughput_rps": s["throughput_rps"],
        "energy_per_request_j": s["energy_per_request_j"], "requests_per_j": s["requests_per_j"],
        "latency_p50_s": s["latency_p50_s"], "latency_p99_s": s["latency_p99_s"],
        "edp_j_s": s["energy_per_request_j"] * s["latency_p99_s"], "padding_fraction": s["padding_fraction"],
    }


def _result(rows: list[dict], objective: str, latency_slo_s: float | None, settings: dict) -> TuneResult:
    points = pd.DataFrame(rows)
    points["meets_slo"] = True if latency_slo_s is None else points["latency_p99_s"] <= latency_slo_s
    points["on_front"] = pareto_front(points)
    best, met = choose(points, objective, latency_slo_s)
    return TuneResult(points, objective, latency_slo_s, best, met, settings)


def tune_from_summaries(configs: Sequence[RunConfig], summaries: Mapping[RunConfig, dict], objective: str = "energy",
                        latency_slo_s: float | None = None, settings: dict | None = None) -> TuneResult:
    """The :class:`TuneResult` of the runs of :func:`tune_configs` (``summaries``: ``{RunConfig: summary}``)."""
    rows = []
    for config in configs:
        params = dict(config.policy_params)
        rows.append(_row(params["batch_size"], params["timesteps"], summaries[config]))
    return _result(rows, objective, latency_slo_s, dict(settings or {}))


def tune(
    model: str | RNNModel,
    hardware: str | HardwareSpec,
    workload: str | Workload | WorkloadConfig,
    *,
    requests: int | None = 500,
    rate_rps: float | None = None,
    load_fraction: float | None = None,
    batch_sizes=DEFAULT_BATCH_SIZES,
    timesteps=None,
    objective: str = "energy",
    latency_slo_s: float | None = None,
    seed: int = 0,
    frame_rate_hz: float = 100.0,
    workers: int = 0,
    scheduler: str | None = None,
    runner: PhaseRunner | None = None,
) -> TuneResult:
    """Sweep E-BATCH over ``batch_sizes`` x ``timesteps`` (default :func:`timestep_grid` of the longest request).

    Every point serves the same requests: a :class:`Workload` or :class:`WorkloadConfig` as given, or
    ``requests`` of the data set (or CSV) ``workload`` drawn with ``seed``, arriving as Poisson at
    ``rate_rps`` when given, else as Poisson at ``load_fraction`` x the saturation of
    :func:`~ebatch.experiments.study.tune_load.poisson_at_load` when given (``ebatch tune``'s default:
    :data:`DEFAULT_LOAD_FRACTION`), else all queued at 0 (offline). Names (model, preset, data set) run on
    the sweep machinery (``workers``, ``scheduler``, or a study's ``runner``); objects run in this process.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: unknown {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if latency_slo_s is not None and not latency_slo_s > 0:
        raise ValueError(f"latency_slo_s: must be > 0 seconds, got {latency_slo_s}")
    if load_fraction is not None and not load_fraction > 0:
        raise ValueError(f"load_fraction: must be > 0, got {load_fraction}")
    rnn = get_model(model)
    hardware_name = hardware if isinstance(hardware, str) else hardware.name
    if not list(batch_sizes):
        raise ValueError("tune: the grid is empty; give at least one batch size and one T")
    if isinstance(workload, Workload) or not isinstance(model, str) or not isinstance(hardware, str):
        work = workload if isinstance(workload, Workload) else _load(workload, requests, rate_rps, seed, frame_rate_hz)
        grid_t = list(timesteps) if timesteps is not None else timestep_grid(int(work.lengths.max()))
        if not grid_t:
            raise ValueError("tune: the grid is empty; give at least one batch size and one T")
        rows = [_row(b, t, simulate(rnn, work, "ebatch", hardware, batch_size=int(b), timesteps=int(t)).summary())
                for b in batch_sizes for t in grid_t]
        settings = _settings(rnn.name, hardware_name, work, load_label(work), seed)
        return _result(rows, objective, latency_slo_s, settings)
    with ExitStack() as stack:
        run = runner or stack.enter_context(PhaseRunner(workers, scheduler))
        if isinstance(workload, WorkloadConfig):
            work, load = workload, load_label(workload.load())
        elif rate_rps is None and load_fraction is not None:
            work, load = poisson_at_load(model, hardware, workload, requests, seed, frame_rate_hz, max(batch_sizes),
                                         load_fraction, run)
        else:
            arrival = "offline" if rate_rps is None else "poisson"
            work = WorkloadConfig(workload, requests, arrival, rate_rps, seed, frame_rate_hz)
            load = load_label(work.load())
        configs = tune_configs(model, hardware, work, batch_sizes, timesteps)
        summaries = run.run("tune", configs)
    settings = _settings(rnn.name, hardware_name, work.load(), load, seed)
    return tune_from_summaries(configs, summaries, objective, latency_slo_s, settings)


def _load(workload, requests, rate_rps, seed, frame_rate_hz) -> Workload:
    if isinstance(workload, WorkloadConfig):
        return workload.load()
    arrival = "offline" if rate_rps is None else "poisson"
    return Workload.load(workload, n=requests, arrival=arrival, rate_rps=rate_rps, seed=seed,
                         frame_rate_hz=frame_rate_hz)


def _settings(model: str, hardware: str, work: Workload, load: str, seed: int) -> dict:
    return {"model": model, "hardware": hardware, "workload": work.name, "requests": len(work), "load": load,
            "seed": seed}
