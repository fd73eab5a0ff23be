"""Results of a simulation: per-step log, per-request table and the run summary (docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ebatch.hardware.cost import ENERGY_KEYS, StepCost
from ebatch.model import RNNModel
from ebatch.policies.base import Policy
from ebatch.sim.steady import steady_state
from ebatch.step import BatchStep
from ebatch.workload import Workload

__all__ = ["SimulationResult", "StepLog", "flat_summary"]

STEP_COLUMNS = (
    "start_s", "time_s", "energy_j", "layer", "direction", "width", "rows", "useful_cells", "computed_cells",
    "fused", "dram_weight_bytes", "macs", "peak_macs", *ENERGY_KEYS,
)

_NO_ENERGY = (0.0,) * len(ENERGY_KEYS)  # what a breakdown without an energy key books for it


@dataclass
class StepLog:
    """One row per executed step (a non-fused run counts as one row); optionally the steps themselves."""

    keep_plan: bool = False
    rows: list[tuple] = field(default_factory=list)
    plan: list[tuple[float, BatchStep]] = field(default_factory=list)

    def record(self, step: BatchStep, cost: StepCost, start_s: float) -> None:
        b = cost.breakdown
        rows = step.occupied_rows
        self.rows.append((
            start_s, cost.time_s, cost.energy_j, step.layer, step.direction, step.width, rows,
            step.useful_cells, rows * step.width, step.fused, b.get("dram_weight_bytes", 0.0),
            b.get("macs", 0.0), b.get("peak_macs", 0.0), *map(b.get, ENERGY_KEYS, _NO_ENERGY),
        ))
        if self.keep_plan:
            self.plan.append((start_s, step))

    def columns(self) -> dict[str, np.ndarray]:
        """Each column of the log (:data:`STEP_COLUMNS`) as a NumPy array, without building the table."""
        if not self.rows:
            return {name: np.zeros(0) for name in STEP_COLUMNS}
        return {name: np.array(values) for name, values in zip(STEP_COLUMNS, zip(*self.rows))}

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns())


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


@dataclass(eq=False)
class SimulationResult:
    """What one run produced. ``requests`` and ``steps`` are pandas tables; ``summary()`` a dict."""

    policy: Policy
    model: RNNModel
    workload: Workload
    start_s: np.ndarray
    finish_s: np.ndarray
    energy_j: np.ndarray
    log: StepLog
    hardware: str = ""

    @property
    def plan(self) -> list[tuple[float, BatchStep]]:
        return self.log.plan

    @property
    def steps(self) -> pd.DataFrame:
        return self.log.frame()

    @property
    def requests(self) -> pd.DataFrame:
        w = self.workload
        return pd.DataFrame({
            "request_id": np.arange(len(w)),
            "length": w.lengths,
            "arrival_s": w.arrivals_s,
            "start_s": self.start_s,
            "finish_s": self.finish_s,
            "latency_s": self.finish_s - w.arrivals_s,
            "energy_j": self.energy_j,
        })

    def summary(self) -> dict:
        steps = self.log.columns()  # sums as the steps table's columns give them (pandas sums with NumPy)
        done = ~np.isnan(self.finish_s)
        completed = int(done.sum())
        latency = (self.finish_s - self.workload.arrivals_s)[done]
        makespan = float(np.nanmax(self.finish_s) - self.workload.arrivals_s.min()) if completed else 0.0
        energy = float(steps["energy_j"].sum())
        computed = float(steps["computed_cells"].sum())
        useful = float(steps["useful_cells"].sum())
        peak = float(steps["peak_macs"].sum())
        return {
            "policy": self.policy.name,
            "params": self.policy.params(),
            "model": self.model.name,
            "hardware": self.hardware,
            "workload": self.workload.name,
            "requests": len(self.workload),
            "completed": completed,
            "makespan_s": makespan,
            "busy_s": float(steps["time_s"].sum()),
            "throughput_rps": completed / makespan if makespan > 0 else float("nan"),
            "cells_per_s": useful / makespan if makespan > 0 else float("nan"),
            "latency_mean_s": float(latency.mean()) if completed else float("nan"),
            "latency_p50_s": _percentile(latency, 50),
            "latency_p90_s": _percentile(latency, 90),
            "latency_p99_s": _percentile(latency, 99),
            "energy_j": energy,
            "energy_per_request_j": energy / completed if completed else float("nan"),
            "requests_per_j": completed / energy if energy > 0 else float("nan"),
            "energy_breakdown_j": {k[:-2]: float(steps[k].sum()) for k in ENERGY_KEYS},
            "padding_fraction": (computed - useful) / computed if computed else 0.0,
            "useful_cells": int(useful),
            "computed_cells": int(computed),
            "steps": len(self.log.rows),
            "invocations": int(np.where(steps["fused"], 1, steps["width"]).sum()),
            "dram_weight_bytes": float(steps["dram_weight_bytes"].sum()),
            "mac_utilisation": float(steps["macs"].sum()) / peak if peak > 0 else float("nan"),
            **steady_state(self.finish_s, steps["start_s"], steps["time_s"], steps["energy_j"],
                           steps["useful_cells"]).to_dict(),
        }


def flat_summary(summary: dict) -> dict:
    """``summary`` with its nested entries spread into columns: ``params`` as ``param_<name>``,
    ``energy_breakdown_j`` as ``energy_<part>_j`` (for tables: CSV, Parquet)."""
    flat = {}
    for key, value in summary.items():
        if key == "params":
            flat.update({f"param_{k}": v for k, v in value.items()})
        elif key == "energy_breakdown_j":
            flat.update({f"energy_{k}_j": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat
