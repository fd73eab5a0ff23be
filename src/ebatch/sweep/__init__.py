"""Sweeps: a spec's cross product of runs on dask.distributed (or serially), results in Parquet.

Layers, each importable on its own: :mod:`~ebatch.sweep.config` (one run as a frozen, checked
:class:`RunConfig`, its hash, the single-run path), :mod:`~ebatch.sweep.spec` (the YAML spec),
:mod:`~ebatch.sweep.plan` (its cross product), :mod:`~ebatch.sweep.execute` (configs on workers, results as
they finish), and, with the ``dask`` extra's pyarrow, :mod:`~ebatch.sweep.store` (the Parquet folder),
:mod:`~ebatch.sweep.run` (spec -> folder, resuming) and :mod:`~ebatch.sweep.plot`. Importing this package
imports neither dask nor pyarrow.
"""

from ebatch.sweep.config import RunConfig, WorkloadConfig, simulate_config
from ebatch.sweep.execute import RunResult, local_cluster, run_batches, run_configs
from ebatch.sweep.plan import plan
from ebatch.sweep.spec import SweepSpec, load_spec, parse_spec

__all__ = [
    "RunConfig", "RunResult", "SweepSpec", "WorkloadConfig", "load_spec", "local_cluster", "parse_spec", "plan",
    "run_batches", "run_configs", "simulate_config",
]
