"""The typed, frozen result of ``ebatch reproduce`` (:class:`ReproduceResult`) and its parts.

Each class holds one level of what was measured; ``to_json()`` gives the strict-JSON form written to
``reproduction.json`` (NaN as ``None``, parts left out where a study did not run). The report layer reads
the attributes, never the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ebatch.experiments.formatting import json_safe
from ebatch.experiments.study.reproduce_config import ReproduceConfig
from ebatch.model import RNNModel, get_model

__all__ = [
    "Assumption", "AutoCase", "Backlog", "Case", "ConvergenceRow", "CurvePoint", "FixedT", "LoadPoint", "PolicyRuns",
    "PolicyTiming", "ReproduceResult", "RunFigures", "SensitivityRow", "Timing", "Trajectory", "TuneRecord",
]


def _json(obj, drop_none: tuple[str, ...] = ()) -> dict:
    data = asdict(obj)
    return json_safe({k: v for k, v in data.items() if not (k in drop_none and v is None)})


@dataclass(frozen=True)
class RunFigures:
    """A policy's figures on one workload: the keys of ``SimulationResult.summary()`` the study keeps."""

    completed: int
    makespan_s: float
    throughput_rps: float
    cells_per_s: float
    energy_per_request_j: float
    requests_per_j: float
    latency_p50_s: float
    latency_p99_s: float
    padding_fraction: float
    dram_weight_bytes: float
    mac_utilisation: float
    energy_breakdown_j: Mapping[str, float]
    steady_throughput_rps: float
    steady_requests_per_j: float

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> RunFigures:
        return cls(**{f.name: summary[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class PolicyRuns:
    """One policy of a case: offline, under Poisson load, under the trace; ``overloaded`` when the load
    exceeds its offline throughput."""

    policy: str
    params: Mapping[str, Any]
    offline: RunFigures
    poisson: RunFigures
    trace: RunFigures
    overloaded: bool


@dataclass(frozen=True)
class LoadPoint:
    """A policy's latency and energy at one load point of the latency-versus-load curve."""

    latency_p50_s: float
    latency_p99_s: float
    energy_per_request_j: float


@dataclass(frozen=True)
class CurvePoint:
    """Every policy at ``fraction`` x saturation (Poisson at ``rate_rps``)."""

    fraction: float
    rate_rps: float
    policies: Mapping[str, LoadPoint]

    def to_json(self) -> dict:
        return json_safe({"fraction": self.fraction, "rate_rps": self.rate_rps,
                          **{label: asdict(point) for label, point in self.policies.items()}})


@dataclass(frozen=True)
class TuneRecord:
    """How T was tuned for a case: the objective, the load in words and every (B, T) point's row."""

    objective: str
    load: str
    points: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Backlog:
    """Every policy offline on one backlog of a case: ``factor`` x the test set (1: the test set itself),
    ``requests`` in all; E-BATCH's ratios over the whole run and over its steady-state window."""

    factor: int
    requests: int
    policies: Mapping[str, RunFigures]
    ratios: Mapping[str, float]
    steady_ratios: Mapping[str, float]


@dataclass(frozen=True)
class ConvergenceRow:
    """Geometric means over networks of E-BATCH's offline ratios on one preset, one backlog and one window
    (``whole``: the whole run; ``steady``: the middle 80% of completions)."""

    preset: str
    backlog_factor: int
    window: str
    ratios: Mapping[str, float]


@dataclass(frozen=True)
class Case:
    """Everything measured for one network on one preset; ``ratios`` are E-BATCH's figure over a baseline's
    (``throughput_vs_cellular``, ``p99_latency_trace_vs_padding``, ...)."""

    network: str
    dataset: str
    preset: str
    frame_rate_hz: float | None  # speech data sets only
    requests: int
    length_mean: float
    length_max: int
    saturation_rps: float
    saturation_policy: str
    load_rps: float
    tuned_timesteps: int
    tune: TuneRecord
    policies: Mapping[str, PolicyRuns]
    ratios: Mapping[str, float]
    curve: tuple[CurvePoint, ...]
    backlogs: tuple[Backlog, ...] = ()

    @property
    def model(self) -> RNNModel:
        """The zoo model of ``network``."""
        return get_model(self.network)

    def to_json(self) -> dict:
        data = _json(self)
        data["curve"] = [point.to_json() for point in self.curve]
        return data


@dataclass(frozen=True)
class SensitivityRow:
    """Geometric means over networks of E-BATCH's ratios with one parameter changed (``factor`` x the preset's
    value for hardware parameters, else None; ``value``: the parameter's value)."""

    preset: str
    parameter: str
    factor: float | None
    value: float
    throughput_vs_cellular: float
    energy_efficiency_vs_cellular: float
    throughput_vs_padding: float
    energy_efficiency_vs_padding: float


@dataclass(frozen=True)
class FixedT:
    """E-BATCH with one fixed T in the auto-T study."""

    timesteps: int
    latency_p99_s: float
    energy_per_request_j: float


@dataclass(frozen=True)
class Trajectory:
    """The auto-T controller's choices over time, and the arrivals it served (for the figure)."""

    time_s: tuple[float, ...]
    timesteps: tuple[int, ...]
    arrivals_s: tuple[float, ...]


@dataclass(frozen=True)
class AutoCase:
    """One (network, preset) of the ``timesteps="auto"`` study: every fixed T, the best one meeting the SLO,
    and the controller."""

    network: str
    preset: str
    dataset: str
    requests: int
    streaming: bool
    saturation_rps: float
    rate_rps: float
    latency_slo_s: float
    fixed: tuple[FixedT, ...]
    best_fixed_timesteps: int
    best_fixed_energy_per_request_j: float
    best_fixed_latency_p99_s: float
    auto_latency_p99_s: float
    auto_energy_per_request_j: float
    auto_meets_slo: bool
    auto_energy_vs_best_fixed: float
    auto_windows: int
    auto_held: int
    auto_timesteps_p10_p50_p90: tuple[float, float, float]
    auto_completed: int
    trajectory: Trajectory | None = None

    def to_json(self) -> dict:
        return _json(self, drop_none=("trajectory",))


@dataclass(frozen=True)
class Assumption:
    """A preset parameter whose source is an assumption."""

    parameter: str
    value: float
    source: str


@dataclass(frozen=True)
class PolicyTiming:
    """Wall time and simulated work of every simulation of one policy label."""

    runs: int
    wall_s: float
    cells: int
    requests: int
    cells_per_wall_s: float
    requests_per_wall_s: float


@dataclass(frozen=True)
class Timing:
    """Wall time of the study, per phase and per policy; ``command_wall_s`` is the whole command's, set by it."""

    wall_s: float
    phases: Mapping[str, float]
    per_policy: Mapping[str, PolicyTiming]
    command_wall_s: float | None = None

    def to_json(self) -> dict:
        return _json(self, drop_none=("command_wall_s",))


@dataclass(frozen=True)
class ReproduceResult:
    """The whole reproduction: its configuration, every case, the headline (per preset: geometric means over
    networks of E-BATCH's ratios, on the basis ``headline_basis`` says), the convergence of the offline
    ratios over backlogs and windows, the paper's figures, the presets' assumptions, and the optional studies."""

    command: str
    config: ReproduceConfig
    cases: tuple[Case, ...]
    headline: Mapping[str, Mapping[str, float]]
    paper: Mapping[str, Mapping[str, float]]
    assumptions: Mapping[str, tuple[Assumption, ...]]
    headline_basis: str = ""
    convergence: tuple[ConvergenceRow, ...] = ()
    sensitivity: tuple[SensitivityRow, ...] | None = None
    auto_study: tuple[AutoCase, ...] | None = None
    timing: Timing | None = None

    def cases_on(self, preset: str) -> list[Case]:
        """The cases run on ``preset`` (its name as the result gives it)."""
        return [c for c in self.cases if c.preset == preset]

    def to_json(self) -> dict:
        data = {
            "command": self.command,
            "config": asdict(self.config),
            "cases": [c.to_json() for c in self.cases],
            "headline": self.headline,
            "headline_basis": self.headline_basis,
            "convergence": [asdict(r) for r in self.convergence],
            "paper": self.paper,
            "assumptions": {p: [asdict(a) for a in items] for p, items in self.assumptions.items()},
        }
        if self.sensitivity is not None:
            data["sensitivity"] = [asdict(r) for r in self.sensitivity]
        if self.auto_study is not None:
            data["auto_study"] = [r.to_json() for r in self.auto_study]
        if self.timing is not None:
            data["timing"] = self.timing.to_json()
        return json_safe(data)
