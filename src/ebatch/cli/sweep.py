"""``ebatch sweep SPEC.yaml --out DIR``: the cross product of a spec on dask.distributed, into Parquet;
``ebatch sweep DIR --plot``: its Pareto fronts and heatmaps.

Needs the ``dask`` extra (dask.distributed and pyarrow); the rest of ebatch does not import either.
Progress goes to stderr (a bar on a terminal, else a line every few seconds). Bad input is one line on
stderr with exit code 2 (:func:`ebatch.cli.main`), before anything runs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

_LINE_EVERY_S = 5.0


def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Progress:
    """``progress(done, total)`` on stderr: a rich bar on a terminal, else a plain line every few seconds."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.bar = None
        self.task = None
        self.t0 = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if total == 0:
            return
        if self.console.is_terminal:
            if self.bar is None:
                from rich import progress as bars

                self.bar = bars.Progress("sweep", bars.BarColumn(), bars.MofNCompleteColumn(), bars.TimeElapsedColumn(),
                                         bars.TimeRemainingColumn(), console=self.console, transient=True)
                self.bar.start()
                self.task = self.bar.add_task("sweep", total=total)
            self.bar.update(self.task, completed=done)
            return
        now = time.perf_counter()
        if done in (0, total) or now - self.last >= _LINE_EVERY_S:
            self.last = now
            typer.echo(f"sweep: {done}/{total} runs, {now - self.t0:.1f} s", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _run(spec: Path, out: Path | None, workers: int | None, scheduler: str | None, chunk_size: int | None) -> None:
    if out is None:
        raise ValueError("out: give --out DIR, the folder for results.parquet (a rerun into it resumes)")
    if workers is not None and scheduler is not None:
        raise ValueError("workers: give --workers (a local cluster) or --scheduler (a running one), not both")
    try:
        from ebatch.sweep.run import run_sweep
    except ImportError as exc:
        raise ValueError(f"sweep: needs the dask extra (pip install 'ebatch[dask]'): {exc}") from None
    workers = _default_workers() if workers is None else workers
    progress = _Progress()
    try:
        report = run_sweep(spec, out, workers=workers, scheduler=scheduler, chunk_size=chunk_size, progress=progress)
    finally:
        progress.close()
    if report.ran == 0:
        typer.echo(f"sweep: all {report.planned} runs of the spec are already in {report.results}", err=True)
        return
    where = f"the cluster at {scheduler}" if scheduler else \
        f"{workers} local workers" if workers > 1 else "this process (serially)"
    typer.echo(f"sweep: {report.planned} runs in the spec, {report.skipped} already in {report.results}, "
               f"{report.ran} run in {report.wall_s:.1f} s on {where}", err=True)


def _plot(folder: Path, out: Path | None, x: str, y: str, metric: str, axes: str | None) -> None:
    try:
        import pandas as pd

        from ebatch.sweep.plot import sweep_chart
        from ebatch.sweep.run import RESULTS
    except ImportError as exc:
        raise ValueError(f"sweep: needs the dask extra (pip install 'ebatch[dask]'): {exc}") from None
    results = folder if folder.name == RESULTS else folder / RESULTS
    if not results.is_dir() or not any(results.glob("part-*.parquet")):
        raise ValueError(f"plot: {str(folder)!r} holds no sweep results; give the --out folder of an "
                         "`ebatch sweep SPEC.yaml --out DIR` run")
    target = out if out is not None else results.parent / "sweep.png"
    chosen = [a.strip() for a in axes.split(",")] if axes else None
    path = sweep_chart(pd.read_parquet(results), target, x=x, y=y, metric=metric, axes=chosen)
    typer.echo(f"wrote {path}", err=True)


def sweep(
    path: Annotated[Path, typer.Argument(help="A spec (YAML) to run, or with --plot a sweep's --out folder.")],
    out: Annotated[Path | None, typer.Option(
        help="Run: the folder for results.parquet (rerunning into it resumes). Plot: the PNG "
             "(default DIR/sweep.png).")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Local dask workers (processes); 0 or 1 runs serially in this process. Default: one per core.")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of a running dask scheduler (e.g. from dask-jobqueue's SLURMCluster) instead of a local "
             "cluster.")] = None,
    chunk_size: Annotated[int | None, typer.Option(
        help="Runs per dask task (default: about 8 tasks per worker, at most 64 runs each).")] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Draw PATH's results: Pareto fronts and heatmaps.")] = False,
    x: Annotated[str, typer.Option(help="Plot: Pareto x column (lower is better).")] = "latency_p99_s",
    y: Annotated[str, typer.Option(help="Plot: Pareto y column (lower is better).")] = "energy_per_request_j",
    metric: Annotated[str, typer.Option(help="Plot: the heatmaps' column.")] = "energy_per_request_j",
    axes: Annotated[str | None, typer.Option(
        help="Plot: the heatmaps' one or two axis columns, e.g. param_timesteps,hardware_weight_buffer_bytes "
             "(default: the first two that vary).")] = None,
) -> None:
    """Run a sweep spec's cross product on dask.distributed into DIR/results.parquet (resuming), or plot it."""
    if plot:
        _plot(path, out, x, y, metric, axes)
    elif path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a folder; give a spec file to run, or add --plot to draw it")
    else:
        _run(path, out, workers, scheduler, chunk_size)


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to ``app``."""
    app.command("sweep")(sweep)
