"""Run a sweep spec into a results folder, skipping the runs already there (what ``ebatch sweep`` does).

Life cycle::

    report = run_sweep("sweep.yaml", "out", workers=4, progress=print_progress)
    report.planned, report.skipped, report.ran       # runs in the spec, already stored, run now
    pandas.read_parquet(report.results)              # out/results.parquet, one row per run

The spec is read and every run checked before the folder is touched or anything runs. Each finished
chunk of runs becomes one part file at once, so a killed sweep loses only the chunks in flight, and a
rerun of the same spec into the same folder runs only what is missing (runs are matched by
:attr:`RunConfig.config_hash`, which covers the preset's contents and ebatch's version).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ebatch.sweep.execute import run_batches
from ebatch.sweep.plan import plan
from ebatch.sweep.spec import SweepSpec, load_spec
from ebatch.sweep.store import ResultStore

__all__ = ["RESULTS", "Progress", "SweepReport", "run_sweep"]

#: The results folder's name inside the sweep's output folder.
RESULTS = "results.parquet"
#: ``progress(done, total)``: runs finished so far in this call, out of the runs it has to do.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SweepReport:
    """What one :func:`run_sweep` call did."""

    results: Path
    planned: int
    skipped: int
    ran: int
    wall_s: float


def run_sweep(spec: SweepSpec | str | Path, out_dir: str | Path, workers: int = 0, scheduler: str | None = None,
              chunk_size: int | None = None, max_in_flight: int | None = None, processes: bool = True,
              progress: Progress | None = None) -> SweepReport:
    """Run every run of ``spec`` not yet in ``out_dir/results.parquet`` and store its row.

    ``workers``, ``scheduler``, ``chunk_size``, ``max_in_flight`` and ``processes`` are those of
    :func:`ebatch.sweep.execute.run_batches`. Raises ``ValueError`` for a bad spec (before anything runs),
    an output folder that cannot be written, or a cluster that cannot be reached.
    """
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    configs = plan(spec)
    store = ResultStore(Path(out_dir) / RESULTS)
    done = store.config_hashes()
    todo = [c for c in configs if c.config_hash not in done]
    store.declare(c.columns() for c in configs)
    t0 = time.perf_counter()
    ran = 0
    if progress is not None:
        progress(0, len(todo))
    if todo:
        for batch in run_batches(todo, workers, scheduler, chunk_size, max_in_flight, processes):
            store.append([result.row() for result in batch])
            ran += len(batch)
            if progress is not None:
                progress(ran, len(todo))
    return SweepReport(store.path, len(configs), len(configs) - len(todo), ran, time.perf_counter() - t0)
