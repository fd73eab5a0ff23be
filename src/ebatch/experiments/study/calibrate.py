"""``calibrate``: time this machine's executor on fused steps and fit a :class:`~ebatch.hardware.host.HostSpec`.

For every (rows, columns) of a small grid, ``rows`` requests of ``columns`` time-steps each run as one
fused step per layer direction of the model (a warm-up pass first); each step's wall time is kept. The
host cost model's four coefficients (per step, per column, per recurrent flop, per input flop) are then
fitted by non-negative least squares over those steps. Bounded: ``len(rows) x len(columns) x repeats``
passes over the model.
"""

from __future__ import annotations

import datetime
import platform
import time
from dataclasses import asdict, dataclass

import numpy as np

from ebatch.experiments.formatting import json_safe
from ebatch.hardware.energy import ASSUMED_POWER_W
from ebatch.hardware.host import HostSpec, cpu_name
from ebatch.model import RNNModel, get_model
from ebatch.step import BatchStep

__all__ = ["Calibration", "StepTiming", "calibrate", "fit_host", "measure_steps"]


@dataclass(frozen=True)
class StepTiming:
    """One measured fused step: its layer, rows (requests), columns (time-steps) and wall time."""

    layer: int
    rows: int
    columns: int
    time_s: float


@dataclass(frozen=True)
class Calibration:
    """The fitted spec, the timings it was fitted on, and the fit's relative RMS error."""

    spec: HostSpec
    timings: tuple[StepTiming, ...]
    rel_rms_error: float

    def to_json(self) -> dict:
        """The spec's name and fitted parameters, the fit's error and every timing."""
        return json_safe({
            "name": self.spec.name,
            "parameters": {name: getattr(self.spec, name) for name in HostSpec.parameter_names()},
            "rel_rms_error": self.rel_rms_error,
            "timings": [asdict(t) for t in self.timings],
        })



def _features(model: RNNModel, t: StepTiming) -> list[float]:
    layer = model.layers[t.layer]
    cells = t.rows * t.columns
    return [1.0, float(t.columns), cells * 2.0 * layer.gate_rows * layer.output_size,
            cells * 2.0 * layer.gate_rows * layer.input_size]


def _nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0: drop the most negative coefficient and refit until none is."""
    keep = list(range(a.shape[1]))
    while True:
        coef = np.zeros(a.shape[1])
        coef[keep] = np.linalg.lstsq(a[:, keep], b, rcond=None)[0]
        if coef.min() >= 0 or len(keep) == 1:
            return np.maximum(coef, 0.0)
        keep.remove(int(np.argmin(coef)))


def measure_steps(model: str | RNNModel, backend: str = "torch", threads: int | None = 1,
                  rows: tuple[int, ...] = (1, 4, 16), columns: tuple[int, ...] = (4, 16, 64), repeats: int = 2,
                  seed: int = 0, device: str | None = None) -> list[StepTiming]:
    """Wall time of each fused step (one per layer direction) over the grid, the first pass not kept
    (on CUDA it captures the step shapes' graphs). ``device``: ``"cuda"`` for the torch backend on a GPU."""
    from ebatch.runtime.engine import make_executor
    from ebatch.runtime.weights import RNNWeights

    model = get_model(model) if isinstance(model, str) else model
    executor = make_executor(RNNWeights.random(model, seed=seed), backend, device=device, threads=threads)
    rng = np.random.default_rng(seed)
    timings, request = [], 0
    for repeat in range(repeats + 1):
        for r in rows:
            for c in columns:
                ids = list(range(request, request + r))
                request += r
                for i in ids:
                    executor.add(i, rng.standard_normal((c, model.layers[0].input_size), dtype=np.float32))
                for layer_index, layer in enumerate(model.layers):
                    for direction in range(layer.directions):
                        step = BatchStep(layer_index, direction, c, r, range(r), [0] * r, ids, [0] * r, [c] * r,
                                         [True] * r)
                        start = time.perf_counter()
                        executor.execute(step)
                        executor.synchronize()
                        if repeat:
                            timings.append(StepTiming(layer_index, r, c, time.perf_counter() - start))
                for i in ids:
                    executor.pop_result(i)
    return timings


def fit_host(model: str | RNNModel, timings: list[StepTiming], name: str, source: str,
             power_w: float, machine: str | None = None) -> Calibration:
    """The non-negative least-squares fit of the host cost model to ``timings`` (``machine``: what ran them,
    for the description; this CPU by default)."""
    model = get_model(model) if isinstance(model, str) else model
    a = np.array([_features(model, t) for t in timings])
    b = np.array([t.time_s for t in timings])
    weights = 1.0 / b  # relative error: short steps count as much as long ones
    coef = _nnls(a * weights[:, None], b * weights)
    rel = float(np.sqrt(np.mean(((a @ coef) - b) ** 2 / b**2)))
    names = ["step_overhead_s", "column_overhead_s", "recurrent_s_per_flop", "input_s_per_flop"]
    sources = {n: f"{source}; fit of {len(timings)} steps, relative RMS error {rel:.1%}" for n in names}
    sources["power_w"] = "assumption: estimated energy only (power x time), not measured; set with --power-w"
    sources["weight_bandwidth_bytes_per_s"] = "not fitted: 0 leaves the weight-read roofline out"
    spec = HostSpec(*map(float, coef), power_w=float(power_w), name=name,
                    description=f"ebatch executor on {machine or cpu_name()}, fitted by ebatch calibrate",
                    sources=sources)
    return Calibration(spec, tuple(timings), rel)


def calibrate(model: str, backend: str = "torch", threads: int | None = 1, repeats: int = 2,
              power_w: float = ASSUMED_POWER_W, rows: tuple[int, ...] = (1, 4, 16),
              columns: tuple[int, ...] = (4, 16, 64), device: str | None = None) -> Calibration:
    """Measure and fit; the preset's sources name the CPU (or GPU), backend, threads and date."""
    if repeats < 1:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    if not power_w >= 0:
        raise ValueError(f"power-w: must be >= 0 watts, got {power_w}")
    timings = measure_steps(model, backend, threads, rows, columns, repeats, device=device)
    machine = cpu_name()
    if device is not None and str(device).startswith("cuda"):
        import torch

        machine = f"{torch.cuda.get_device_name(torch.device(device))} (host CPU {machine})"
    today = datetime.date.today().isoformat()
    source = f"measured by ebatch calibrate on {machine} ({backend} backend, {threads or 'default'} threads, " \
             f"{model}), {today}"
    name = f"{platform.node() or 'host'}-{backend}{'-' + str(device) if device else ''}-{threads or 0}t"
    return fit_host(model, timings, name, source, power_w, machine)
