"""Run a study's dependent phases on the sweep machinery: each phase one batch of independent runs.

Life cycle::

    with PhaseRunner(workers=2) as runner:                    # a LocalCluster of 2 workers, kept for every phase
        first = runner.run("saturation", configs)             # {RunConfig: summary}, whatever order they finished in
        second = runner.run("load", configs_that_need(first))  # the same warm workers
        rows = runner.map("auto study", auto_case, items)     # plain calls on the same workers, results in order
    runner.phases_s, runner.timing()                          # wall time per phase, per policy label

``workers`` 0 or 1 and no ``scheduler``: everything runs serially in this process (dask is not imported).
``workers`` >= 2: one ``LocalCluster`` (:func:`ebatch.sweep.local_cluster`) for the whole study, so workers
start and import once. ``scheduler``: a running dask scheduler's address. A config already run in an
earlier phase is not run again. Runs are handed out one per task, the costliest first (cellular batching,
then by number of requests), so that two workers finish a phase at about the same time. Results are keyed
by config, so a study's numbers do not depend on the number of workers or on completion order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack

from ebatch.experiments.study.reproduce_results import PolicyTiming
from ebatch.sweep import RunConfig, RunResult, local_cluster, run_configs

__all__ = ["PhaseRunner", "run_label"]

#: How much slower cellular batching simulates a request than the other policies (a rough factor, used
#: only to hand out the costliest runs first).
CELLULAR_COST_FACTOR = 10


def run_label(config: RunConfig) -> str:
    """The policy as the study names it: ``padding-sorted`` for padding with a sort window, else the policy."""
    sorted_padding = config.policy == "padding" and dict(config.policy_params).get("sort_window")
    return "padding-sorted" if sorted_padding else config.policy


def _cost(config: RunConfig) -> int:
    factor = CELLULAR_COST_FACTOR if config.policy == "cellular" else 1
    return factor * len(config.workload.load())


class PhaseRunner:
    """Runs phases of configs serially, on a local cluster or on a scheduler (see the module docstring)."""

    def __init__(self, workers: int = 0, scheduler: str | None = None, processes: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers: must be a whole number >= 0, got {workers!r}")
        self.workers, self.scheduler, self.processes = workers, scheduler, processes
        self.log = log or (lambda _msg: None)
        self.phases_s: dict[str, float] = {}
        self._results: dict[RunConfig, RunResult] = {}
        self._stack = ExitStack()
        self._address = scheduler

    def __enter__(self) -> PhaseRunner:
        if self.scheduler is None and self.workers >= 2:
            cluster = self._stack.enter_context(local_cluster(self.workers, self.processes))
            self._address = cluster.scheduler_address
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self._address = self.scheduler

    def run(self, phase: str, configs: Iterable[RunConfig]) -> dict[RunConfig, dict]:
        """Every config's ``summary()``, running those not run before as one batch (phase ``phase``)."""
        wanted = list(dict.fromkeys(configs))
        todo = sorted((c for c in wanted if c not in self._results), key=_cost, reverse=True)
        start = time.perf_counter()
        if todo:
            for result in run_configs(todo, workers=0, scheduler=self._address, chunk_size=1):
                self._results[result.config] = result
        self._add_time(phase, time.perf_counter() - start)
        self.log(f"{phase}: {len(todo)} runs ({len(wanted) - len(todo)} already done)")
        return {c: self._results[c].summary for c in wanted}

    def map(self, phase: str, fn: Callable, items: Sequence) -> list:
        """``[fn(item) for item in items]``, on the workers when there are any (``fn`` importable, items picklable)."""
        start = time.perf_counter()
        if self._address is None:
            results = [fn(item) for item in items]
        else:
            from distributed import Client

            with Client(self._address, timeout="10s") as client:
                results = client.gather(client.map(fn, items, pure=False))
        self._add_time(phase, time.perf_counter() - start)
        return results

    def _add_time(self, phase: str, wall_s: float) -> None:
        self.phases_s[phase] = self.phases_s.get(phase, 0.0) + wall_s

    def timing(self) -> dict[str, PolicyTiming]:
        """Per policy label: runs, their simulation wall time on the workers, cells and requests simulated."""
        totals: dict[str, list] = {}
        for config, result in self._results.items():
            entry = totals.setdefault(run_label(config), [0, 0.0, 0, 0])
            entry[0] += 1
            entry[1] += result.wall_s
            entry[2] += result.summary["useful_cells"]
            entry[3] += result.summary["completed"]
        return {
            label: PolicyTiming(runs, wall, cells, requests, cells / wall if wall > 0 else float("nan"),
                                requests / wall if wall > 0 else float("nan"))
            for label, (runs, wall, cells, requests) in sorted(totals.items())
        }
