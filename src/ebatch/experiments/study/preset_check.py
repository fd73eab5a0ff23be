"""A host preset against measurements: its predicted wall time for measured runtime runs, and its parameters
beside those ``ebatch calibrate`` fitted on the machine (:mod:`ebatch.experiments.report.preset_check`
renders them).

:func:`predict_runs` takes the benchmark rows of ``scripts/gpu_check.py`` (lstm-2x512, LibriSpeech
test-clean lengths, seed 0, offline, B and policy per row) and simulates each row's plan on the preset:
the same policy, B and T over the same lengths, so the simulated makespan is the preset's prediction of
the measured wall time. Rows the host model does not describe (torch.nn peers, the limit, the executor's
column loop without CUDA graphs) are left out. :func:`implied_overheads` fits a per-step and a per-column
cost to the measured runs themselves (least squares on relative error, the plans' step and column counts
from the simulator), which says which of the preset's overheads is off. :func:`parameter_rows` lines up
two presets' parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebatch.hardware.host import HostSpec, load_hardware
from ebatch.sim.api import simulate
from ebatch.workload import Workload

__all__ = ["ParameterRow", "PredictedRun", "implied_overheads", "parameter_rows", "predict_runs"]


@dataclass(frozen=True)
class PredictedRun:
    """One measured run and the preset's prediction of its wall time."""

    name: str
    batch_size: int
    measured_s: float
    predicted_s: float

    @property
    def measured_over_predicted(self) -> float:
        return self.measured_s / self.predicted_s


@dataclass(frozen=True)
class ParameterRow:
    """One parameter as calibrated (measured) and as the reference preset has it."""

    name: str
    measured: float
    reference: float
    reference_source: str


def _policy(name: str) -> tuple[str, dict] | None:
    """``padding`` -> padding; ``ebatch T=16`` -> ebatch with T=16; anything else -> None (not modelled)."""
    if name == "padding":
        return "padding", {}
    if name.startswith("ebatch T=") and name[len("ebatch T="):].isdigit():
        return "ebatch", {"timesteps": int(name[len("ebatch T="):])}
    return None


def _modelled(rows: list[dict]) -> list[tuple[dict, str, dict]]:
    out = []
    for row in rows:
        policy = _policy(row["name"])
        if policy is not None and "wall_s" in row:
            out.append((row, *policy))
    return out


def _makespan_s(row: dict, policy: str, params: dict, spec: HostSpec, model: str, dataset: str, seed: int) -> float:
    """The simulated makespan of ``row``'s run on ``spec``; its request count is ``sequences_per_s x wall_s``."""
    workload = Workload.from_dataset(dataset, n=round(row["sequences_per_s"] * row["wall_s"]), seed=seed)
    return simulate(model, workload, policy, spec, seed=seed, batch_size=row["batch_size"], **params
                    ).summary()["makespan_s"]


def predict_runs(rows: list[dict], hardware: str | HostSpec = "h200", model: str = "lstm-2x512",
                 dataset: str = "librispeech-test-clean", seed: int = 0) -> list[PredictedRun]:
    """The preset's predicted wall time for each modelled row (``name``, ``batch_size``, ``wall_s``,
    ``sequences_per_s``)."""
    spec = hardware if isinstance(hardware, HostSpec) else load_hardware(hardware)
    if not isinstance(spec, HostSpec):
        raise ValueError(f"hardware: {hardware} is an accelerator preset; give a host preset (kind: host)")
    return [PredictedRun(row["name"], row["batch_size"], row["wall_s"],
                         _makespan_s(row, policy, params, spec, model, dataset, seed))
            for row, policy, params in _modelled(rows)]


def implied_overheads(rows: list[dict], model: str = "lstm-2x512", dataset: str = "librispeech-test-clean",
                      seed: int = 0) -> tuple[float, float, float]:
    """``(step_s, column_s, rel_rms_error)``: ``wall_s ~ steps x step_s + columns x column_s`` fitted to the
    modelled rows (flop terms left out: at these sizes they are far below the overheads)."""
    per_step, per_column = HostSpec(1.0, 0.0, 0.0, 0.0, 0.0), HostSpec(0.0, 1.0, 0.0, 0.0, 0.0)
    modelled = _modelled(rows)
    counts = np.array([[_makespan_s(row, p, q, spec, model, dataset, seed) for spec in (per_step, per_column)]
                       for row, p, q in modelled])
    wall = np.array([row["wall_s"] for row, _, _ in modelled])
    coef = np.linalg.lstsq(counts / wall[:, None], np.ones(len(wall)), rcond=None)[0]
    rel = float(np.sqrt(np.mean((counts @ coef / wall - 1.0) ** 2)))
    return float(coef[0]), float(coef[1]), rel


def parameter_rows(measured: HostSpec, reference: HostSpec) -> list[ParameterRow]:
    """Every parameter of the host model, calibrated beside the reference preset's."""
    return [ParameterRow(n, getattr(measured, n), getattr(reference, n), reference.sources.get(n, ""))
            for n in HostSpec.parameter_names()]
