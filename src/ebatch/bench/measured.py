"""A cost model's figures next to measured ones: the same policies simulated on a hardware preset and run on a
real executor through :class:`~ebatch.runtime.backend.ExecutorBackend`."""

from __future__ import annotations

from collections.abc import Sequence

from ebatch.runtime.backend import ExecutorBackend

__all__ = ["measure_policies", "measured_vs_simulated"]


def measure_policies(executor, model, workload, policies: Sequence[tuple[str, dict]], seed: int = 0) -> list[dict]:
    """Each policy's ``summary()`` measured on ``executor`` (wall clock, through :class:`ExecutorBackend`), in
    the order of ``policies``; a fresh backend per policy, so no run sees another's clock."""
    from ebatch.sim.api import simulate

    return [simulate(model, workload, name, ExecutorBackend(executor, lengths=workload.lengths, seed=seed),
                     seed=seed, **params).summary()
            for name, params in policies]


def measured_vs_simulated(
    model,
    workload,
    policies: Sequence[tuple[str, dict]],
    hardware: str = "epur",
    backend: str = "numpy",
    seed: int = 0,
):
    """One row per policy: its summary on the ``hardware`` cost model and measured on a real executor.

    ``model``: a zoo name, an :class:`~ebatch.model.RNNModel` (random weights drawn with ``seed``) or
    :class:`~ebatch.runtime.RNNWeights`. Returns a pandas DataFrame with ``sim_*`` and ``measured_*``
    columns (throughput, cells/s, latency p50/p99). Raises ``ValueError`` for unknown names.
    """
    import pandas as pd

    from ebatch.model import get_model
    from ebatch.runtime.engine import make_executor
    from ebatch.runtime.weights import RNNWeights
    from ebatch.sim.api import simulate

    weights = model if isinstance(model, RNNWeights) else RNNWeights.random(get_model(model), seed=seed)
    executor = make_executor(weights, backend)
    rows = []
    measured_summaries = measure_policies(executor, weights.model, workload, policies, seed=seed)
    for (name, params), measured in zip(policies, measured_summaries):
        sim = simulate(weights.model, workload, name, hardware, seed=seed, **params).summary()
        row = {"policy": name, **params}
        for prefix, summary in (("sim", sim), ("measured", measured)):
            for key in ("throughput_rps", "cells_per_s", "latency_p50_s", "latency_p99_s"):
                row[f"{prefix}_{key}"] = summary[key]
        row["hardware"] = sim["hardware"]
        row["executor"] = executor.name
        rows.append(row)
    return pd.DataFrame(rows)
