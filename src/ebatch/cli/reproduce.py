"""``ebatch reproduce``: the paper's comparison (networks x presets x policies), report and figures.

Prints the tables; writes files only where asked: ``--out DIR`` (JSON, CSV, PNG, Markdown), ``--doc FILE`` (the
Markdown report, e.g. docs/reproduction.md) and ``--benchmarks FILE`` (its wall time, in a section).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import replace
from pathlib import Path

import typer

from ebatch.experiments.report.sections import write_section
from ebatch.experiments.study.reproduce_results import ReproduceResult

__all__ = ["register"]


def _benchmark_markdown(result: ReproduceResult, command: str, total_s: float) -> str:
    timing = result.timing
    lines = [
        "## reproduce", "",
        f"Measured with `{command}` on this machine (2 cores, shared): whole command "
        f"{total_s:.1f} s wall from start to the last file written (Python start-up not included), of which "
        f"{timing.wall_s:.1f} s in the experiment itself ("
        + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" for k, v in timing.phases.items())
        + "; the rest is figures and files).", "",
        "| policy | simulations | wall s | simulated cells per wall s | requests per wall s |",
        "|---|---|---|---|---|",
    ]
    for label, t in timing.per_policy.items():
        lines.append(f"| {label} | {t.runs} | {t.wall_s:.2f} | {t.cells_per_wall_s:.3g} | "
                     f"{t.requests_per_wall_s:.3g} |")
    lines += ["", "A cell is one time-step of one request in one layer direction. Cellular batching simulates "
              "slower because it emits a step per run of single-time-step invocations, cut at every arrival."]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``reproduce`` to ``app``."""

    @app.command()
    def reproduce(
        quick: bool = typer.Option(False, "--quick", help="Fewer requests and load points (about a minute)."),
        out: Path = typer.Option(None, "--out", help="Write JSON, CSV, PNG and Markdown into this directory."),
        doc: str = typer.Option(None, "--doc", help="Also write the Markdown report here (docs/reproduction.md)."),
        benchmarks: Path = typer.Option(
            None, "--benchmarks", help="Write the wall time and simulation speed into this file's 'reproduce' section."
        ),
        sensitivity: bool = typer.Option(True, help="Run the sensitivity study."),
        auto_study: bool = typer.Option(True, "--auto-study/--no-auto-study", help="Run the timesteps='auto' study."),
        seed: int = typer.Option(0, help="Seed of the request draws."),
        workers: int = typer.Option(
            0, "--workers", help="Run each phase on a local dask cluster of N worker processes (0: serially here; "
            "needs the dask extra). The numbers do not depend on it."),
        scheduler: str = typer.Option(
            None, "--scheduler", help="Run on the dask scheduler at this address (tcp://host:8786) instead."),
    ) -> None:
        """Reproduce the paper: eesen, deepspeech2, gnmt-enc x epur, tpu-v1 x padding, sorted padding, cellular,
        E-BATCH; prints tables, and with --out writes JSON, CSV, figures and the Markdown report."""
        from rich.console import Console
        from rich.table import Table

        from ebatch.experiments.report.reproduce import headline_rows, table_rows, write_outputs
        from ebatch.experiments.report.reproduce_text import report
        from ebatch.experiments.study.reproduce import run_reproduce
        from ebatch.experiments.study.reproduce_config import ReproduceConfig

        started = time.perf_counter()
        options = [
            "--quick" if quick else "", "" if out is None else f"--out {shlex.quote(str(out))}",
            "" if doc is None else f"--doc {shlex.quote(doc)}",
            "" if benchmarks is None else f"--benchmarks {shlex.quote(str(benchmarks))}",
            "" if sensitivity else "--no-sensitivity", "" if auto_study else "--no-auto-study",
            "" if seed == 0 else f"--seed {seed}", "" if not workers else f"--workers {workers}",
            "" if scheduler is None else f"--scheduler {shlex.quote(scheduler)}",
        ]
        command = " ".join(["ebatch reproduce", *(o for o in options if o)])
        config = (ReproduceConfig.quick if quick else ReproduceConfig)(
            seed=seed, sensitivity=sensitivity, auto_study=auto_study
        )
        err = Console(stderr=True)
        if quick:
            err.print("--quick: fewer requests and load points; its figures are not comparable to the paper's")
        result = run_reproduce(config, log=lambda msg: err.print(msg), command=command, workers=workers,
                               scheduler=scheduler)
        result = replace(result, timing=replace(result.timing, command_wall_s=time.perf_counter() - started))
        paths: list[Path] = []
        if out is not None:
            paths += write_outputs(result, out, doc=doc)
        elif doc is not None:
            Path(doc).parent.mkdir(parents=True, exist_ok=True)
            Path(doc).write_text(report(result))
            paths.append(Path(doc))

        console = Console(width=max(Console().width, 150))
        table = Table(title="Per network and preset (offline throughput and energy; p99 under Poisson load)")
        for col in ("network", "preset", "policy", "T", "req/s", "req/J", "p99 s", "p99 trace s",
                    "E-B thr x", "E-B req/J x", "E-B p99 x"):
            table.add_column(col)
        for r in table_rows(result):
            star = "*" if r["overloaded"] else ""
            own = r["policy"] == "ebatch"
            table.add_row(r["network"], r["preset"], r["policy"], str(r["T"] or ""), f"{r['throughput_rps']:.3g}",
                          f"{r['requests_per_j']:.3g}", f"{r['latency_p99_s']:.3g}{star}",
                          f"{r['trace_latency_p99_s']:.3g}{star}",
                          "" if own else f"{r['ebatch_throughput_ratio']:.2f}",
                          "" if own else f"{r['ebatch_energy_efficiency_ratio']:.2f}",
                          "" if own else f"{r['ebatch_p99_ratio']:.2f}")
        console.print(table)
        head = Table(title=f"E-BATCH, geometric mean over networks; throughput and requests/J: {result.headline_basis}"
                     " (paper: vs the state of the art)")
        for col in ("preset", "thr vs cellular", "paper", "req/J vs cellular", "paper", "thr vs padding",
                    "req/J vs padding", "p99 vs cellular", "req/J under load vs cellular"):
            head.add_column(col)
        for r in headline_rows(result):
            head.add_row(r["preset"], f"{r['throughput_vs_cellular']:.2f}x", f"{r['paper_throughput']}x",
                         f"{r['energy_efficiency_vs_cellular']:.2f}x", f"{r['paper_energy_efficiency']}x",
                         f"{r['throughput_vs_padding']:.2f}x", f"{r['energy_efficiency_vs_padding']:.2f}x",
                         f"{r['p99_latency_vs_cellular']:.2f}x",
                         f"{r['energy_efficiency_under_load_vs_cellular']:.2f}x")
        console.print(head)
        console.print("* overloaded: the offered load exceeds that policy's offline throughput")
        if config.quick_run:
            console.print("[bold]--quick: figures on fewer requests; not comparable to the paper's[/bold]")
        if benchmarks is not None:
            total_s = time.perf_counter() - started
            write_section(benchmarks, "reproduce", _benchmark_markdown(result, command, total_s))
            paths.append(benchmarks)
        if out is not None:
            console.print(f"wrote {len(paths)} files under {out}" + (f" and {doc}" if doc else ""))
        elif paths:
            console.print("wrote " + ", ".join(str(path) for path in paths))
