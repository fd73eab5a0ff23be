"""``ebatch tune``: sweep E-BATCH's T and B, print the Pareto front of p99 latency vs energy, pick a point."""

from __future__ import annotations

from pathlib import Path

import typer

from ebatch.experiments.study.tune_load import DEFAULT_LOAD_FRACTION

__all__ = ["register"]


def _int_list(text: str | None, field: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{field}: expected comma-separated whole numbers like 8,16,32, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{field}: give at least one whole number >= 1, got {text!r}")
    return values


def register(app: typer.Typer) -> None:
    """Add ``tune`` to ``app``."""

    @app.command()
    def tune(
        model: str = typer.Option(..., "--model", help="Zoo model name, e.g. eesen, gnmt-enc."),
        hardware: str = typer.Option(..., "--hardware", help="Preset (epur, tpu-v1) or a YAML path."),
        workload: str = typer.Option(..., "--workload", help="Data set name or CSV path with request lengths."),
        requests: int = typer.Option(500, "--requests", help="Requests drawn from the workload (seeded)."),
        rate: float = typer.Option(None, "--rate", help="Poisson arrivals at this many requests/s."),
        load_fraction: float = typer.Option(
            DEFAULT_LOAD_FRACTION, "--load-fraction",
            help="Without --rate: Poisson at this fraction of the saturation S, the best offline throughput of "
            "padding, sorted padding and cellular at the largest B (as ebatch reproduce).",
        ),
        offline: bool = typer.Option(False, "--offline", help="Every request queued at 0 instead (no load)."),
        objective: str = typer.Option("energy", "--objective", help="energy | throughput | edp (energy x p99)."),
        latency_slo_s: float = typer.Option(None, "--latency-slo-s", help="p99 latency bound in seconds."),
        batch_sizes: str = typer.Option("8,16,32,64,128", "--batch-sizes", help="B values to sweep."),
        timesteps: str = typer.Option(
            None, "--timesteps", help="T values to sweep; default 1, 2, 4, ... up to the longest request."
        ),
        frame_rate_hz: float = typer.Option(100.0, "--frame-rate-hz", help="Speech data sets: frames per second."),
        seed: int = typer.Option(0, "--seed", help="Seed of the request draw and arrivals."),
        out: Path = typer.Option(None, "--out", help="Write points.csv, front.csv, tune.json and tune.png here."),
        workers: int = typer.Option(0, "--workers", help="Run on a local dask cluster of N workers (0: serially)."),
        scheduler: str = typer.Option(None, "--scheduler", help="Run on the dask scheduler at this address."),
    ) -> None:
        """Sweep T (1, 2, 4, ...) and B for E-BATCH under a stated load (default: Poisson at 0.7 x the best
        baseline's offline throughput); print the p99-latency / energy Pareto front and the pick."""
        from rich.console import Console
        from rich.table import Table

        from ebatch.experiments.study.tune import tune as run_tune

        if offline and rate is not None:
            raise ValueError("rate: --offline queues every request at 0; give either --offline or --rate")
        result = run_tune(
            model, hardware, workload, requests=requests, rate_rps=rate,
            load_fraction=None if offline else load_fraction,
            batch_sizes=_int_list(batch_sizes, "batch_sizes"), timesteps=_int_list(timesteps, "timesteps"),
            objective=objective, latency_slo_s=latency_slo_s, seed=seed, frame_rate_hz=frame_rate_hz,
            workers=workers, scheduler=scheduler,
        )
        console = Console(width=max(Console().width, 120))
        s = result.settings
        table = Table(title=f"Pareto front, {s['model']} on {s['hardware']}, {s['requests']} requests, {s['load']}")
        for col in ("B", "T", "p99 latency s", "p50 latency s", "energy mJ/req", "throughput req/s", "padding"):
            table.add_column(col, justify="right")
        best = result.best
        for _, r in result.front.iterrows():
            chosen = r["batch_size"] == best["batch_size"] and r["timesteps"] == best["timesteps"]
            style = "bold green" if chosen else None
            table.add_row(str(r["batch_size"]), str(r["timesteps"]), f"{r['latency_p99_s']:.4g}",
                          f"{r['latency_p50_s']:.4g}", f"{r['energy_per_request_j'] * 1e3:.4g}",
                          f"{r['throughput_rps']:.4g}", f"{r['padding_fraction']:.2f}", style=style)
        console.print(table)
        console.print(f"load: {s['load']}")
        slo = f" under p99 <= {latency_slo_s:g} s" if latency_slo_s is not None else ""
        console.print(
            f"objective {objective}{slo}: B={best['batch_size']}, T={best['timesteps']} "
            f"(p99 {best['latency_p99_s']:.4g} s, {best['energy_per_request_j'] * 1e3:.4g} mJ/request, "
            f"{best['throughput_rps']:.4g} req/s) out of {len(result.points)} points"
        )
        if not result.slo_met:
            console.print("[red]no point meets the SLO; chose the lowest p99 latency[/red]")
        if out is not None:
            from ebatch.experiments.report.tune import write_tune

            paths = write_tune(result, out)
            console.print(f"wrote {', '.join(str(p) for p in paths)}")
