"""Run many :class:`RunConfig` on dask.distributed workers, or serially in this process, and yield results.

Life cycle::

    for result in run_configs(configs, workers=4):          # a LocalCluster of 4 worker processes
        result.config, result.summary["throughput_rps"]      # in completion order
    run_configs(configs, workers=0)                          # serially here; dask is not imported
    run_configs(configs, scheduler="tcp://head:8786")        # an existing cluster (dask-jobqueue, ...)

Configs travel in chunks (one dask task each, ``chunk_size`` configs, by default enough chunks for about 8
per worker and at most 64 configs per chunk), and at most ``max_in_flight`` chunks (by default 4 per worker
thread, at least 8) are submitted at a time, so the client's memory does not grow with the number of runs.
:func:`run_batches` yields each finished chunk's results together (the sweep writes one part file per
chunk). A run that raises stops the iteration with its exception; the cluster is shut down (or the
client disconnected) when the iteration ends, however it ends.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ebatch.sim.results import flat_summary
from ebatch.sweep.config import RunConfig, simulate_config

__all__ = ["RunResult", "default_chunk_size", "local_cluster", "run_batches", "run_chunk", "run_configs"]

MAX_CHUNK = 64
MIN_IN_FLIGHT = 8


@dataclass(frozen=True)
class RunResult:
    """One finished run: its config, ``SimulationResult.summary()``, and the simulation's wall time and CPU time
    (of the thread that ran it) on its worker; on a busy machine the CPU time is the fairer cost."""

    config: RunConfig
    summary: dict
    wall_s: float
    cpu_s: float

    def row(self) -> dict:
        """One flat table row: the config's columns, then every summary key (``params`` as ``param_<name>``,
        ``energy_breakdown_j`` as ``energy_<part>_j``; ``hardware`` is the preset's name, ``requests`` the
        number simulated), then ``sim_wall_s`` and ``sim_cpu_s``."""
        timing = {"sim_wall_s": self.wall_s, "sim_cpu_s": self.cpu_s}
        return {**self.config.columns(), **flat_summary(self.summary), **timing}


def run_chunk(configs: Sequence[RunConfig]) -> list[RunResult]:
    """Simulate each config in turn (what one dask task does)."""
    results = []
    for config in configs:
        t0, cpu0 = time.perf_counter(), time.thread_time()
        summary = simulate_config(config)
        results.append(RunResult(config, summary, time.perf_counter() - t0, time.thread_time() - cpu0))
    return results


def default_chunk_size(runs: int, workers: int) -> int:
    """About 8 chunks per worker, at most :data:`MAX_CHUNK` configs per chunk, at least 1."""
    return max(1, min(MAX_CHUNK, runs // (8 * max(1, workers))))


def run_configs(configs: Sequence[RunConfig], workers: int = 0, scheduler: str | None = None,
                chunk_size: int | None = None, max_in_flight: int | None = None,
                processes: bool = True) -> Iterator[RunResult]:
    """Each config's :class:`RunResult`, in completion order (see :func:`run_batches` for the arguments)."""
    for batch in run_batches(configs, workers, scheduler, chunk_size, max_in_flight, processes):
        yield from batch


def run_batches(configs: Sequence[RunConfig], workers: int = 0, scheduler: str | None = None,
                chunk_size: int | None = None, max_in_flight: int | None = None,
                processes: bool = True) -> Iterator[list[RunResult]]:
    """The results of each chunk of ``configs`` as it finishes.

    ``workers`` 0 or 1 with no ``scheduler``: serially in this process, in order, without dask. ``workers``
    >= 2: a ``LocalCluster`` of that many single-threaded workers (``processes=False``: threads, for tests)
    listening on 127.0.0.1. ``scheduler``: the address of a running scheduler (``workers`` is ignored).
    Raises ``ValueError`` for bad arguments, a scheduler that cannot be reached, or dask not installed.
    """
    for name, value in (("workers", workers), ("chunk_size", chunk_size), ("max_in_flight", max_in_flight)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name}: must be a whole number >= 0, got {value!r}")
    if chunk_size == 0 or max_in_flight == 0:
        raise ValueError("chunk_size, max_in_flight: must be >= 1 (leave them out for the defaults)")
    size = chunk_size or default_chunk_size(len(configs), workers)
    chunks = (list(configs[i:i + size]) for i in range(0, len(configs), size))
    if scheduler is None and workers <= 1:
        yield from map(run_chunk, chunks)
        return
    with _client(workers, scheduler, processes) as (client, as_completed):
        pending = as_completed()
        in_flight = 0
        while True:
            limit = max_in_flight or max(MIN_IN_FLIGHT, 4 * sum(client.nthreads().values()))
            for chunk in itertools.islice(chunks, max(0, limit - in_flight)):
                pending.add(client.submit(run_chunk, chunk, pure=False))
                in_flight += 1
            if in_flight == 0:
                return
            future = next(pending)
            results = future.result()
            future.release()
            in_flight -= 1
            yield results


@contextmanager
def _client(workers: int, scheduler: str | None, processes: bool):
    """``(client, as_completed)`` connected to ``scheduler`` or to a new ``LocalCluster``; closed on exit."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ValueError("workers: running on dask needs the dask extra (pip install 'ebatch[dask]'); "
                         "or run serially with --workers 0") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ValueError(f"scheduler: cannot connect to {scheduler!r} ({' '.join(str(exc).split())}); "
                             "give the address a running dask scheduler prints, e.g. tcp://10.0.0.1:8786") from None
        with client:
            yield client, as_completed
        return
    with local_cluster(workers, processes) as cluster, Client(cluster) as client:
        yield client, as_completed


@contextmanager
def local_cluster(workers: int, processes: bool = True):
    """A dask ``LocalCluster`` of ``workers`` single-threaded workers on 127.0.0.1, closed on exit.

    Pass its ``scheduler_address`` to :func:`run_configs` to run several batches of configs on the same
    warm workers (a study's dependent phases) without starting a cluster for each."""
    try:
        from distributed import LocalCluster
    except ImportError:
        raise ValueError("workers: running on dask needs the dask extra (pip install 'ebatch[dask]'); "
                         "or run serially with --workers 0") from None
    network = {"host": "127.0.0.1"} if processes else {}  # threads talk in process, through no port
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes, silence_logs=logging.ERROR,
                      dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                      **network) as cluster:
        yield cluster
