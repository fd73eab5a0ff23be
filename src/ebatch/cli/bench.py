"""``ebatch bench``: the runtime benchmark (wall clock) on real LSTM/GRU weights, with torch.nn peers.

Prints a table, and with ``--out FILE`` also writes it as that Markdown file's ``runtime`` section (``make bench``
passes docs/benchmarks.md); or with
``--format json`` a JSON list of rows (``name``, ``batch_size``, ``sequences_per_s``, ``useful_cells_per_s``,
``latency_p50_s``, ``latency_p99_s``, ``efficiency``, ``energy_per_request_j`` with ``energy_source`` and
more). ``--quick`` is what ``make bench`` runs: fewer requests and configurations, one run each. Needs the
``torch`` extra (the peers and the limit are torch).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

__all__ = ["register"]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small version (2-3 minutes here): fewer requests and rows.")]
    = False,
    out: Annotated[str | None, typer.Option("--out", help="Also rewrite this Markdown file's 'runtime' section "
                                            "(e.g. docs/benchmarks.md).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json.")] = "table",
    models: Annotated[str, typer.Option("--models", help="Comma-separated: zoo names or gru-2x512 (deepspeech2 "
                                        "and gnmt-enc run as whole torch models, 4 and 8 requests unless -n).")]
    = "lstm-2x512,gru-2x512,eesen",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="B for every policy and peer.")] = 16,
    timesteps: Annotated[str, typer.Option("--timesteps", "-t", help="E-BATCH window lengths T, comma-separated.")]
    = "16,64",
    backends: Annotated[str, typer.Option("--backends", help="Runtime executors (the first runs every policy): "
                                          "compiled,torch,numpy.")] = "compiled,torch,numpy",
    requests: Annotated[int, typer.Option("--requests", "-n", help="Requests per model (0: 128, quick 32).")] = 0,
    eesen_requests: Annotated[int, typer.Option("--eesen-requests", help="Requests for eesen (0: 48, quick 16).")]
    = 0,
    threads: Annotated[int, typer.Option("--threads", help="torch (and OpenBLAS) threads for every row.")] = 1,
    load: Annotated[float, typer.Option("--load", help="Poisson rate as a fraction of the limit's capacity.")]
    = 0.6,
    repeats: Annotated[int, typer.Option("--repeats", help="Runs per configuration, the fastest kept.")]
    = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of lengths, features and weights.")] = 0,
    energy: Annotated[str, typer.Option("--energy", help="Energy meter for J/request: auto (RAPL where readable, "
                                        "else an estimate) | rapl | estimate | off.")] = "auto",
    hardware: Annotated[str | None, typer.Option("--hardware", help="Host preset whose power_w prices the energy "
                                                 "estimate (default: an assumed 15 W).")] = None,
    thread_scaling: Annotated[bool | None, typer.Option(
        "--thread-scaling/--no-thread-scaling",
        help="Also time E-BATCH (first backend) and torch.nn packed with 2 threads over 1 (default: full run only).")]
    = None,
) -> None:
    """Benchmark the runtime: every policy vs torch.nn.LSTM/GRU padded and packed, offline and under load."""
    from ebatch.bench.runtime import BenchConfig, timed
    from ebatch.bench.runtime_report import markdown
    from ebatch.experiments.report.sections import write_section

    if fmt not in ("table", "json"):
        raise ValueError(f"format: unknown format {fmt!r}; choose table or json")
    for name, value in (("batch-size", batch_size), ("threads", threads), ("repeats", repeats)):
        if value < 1:
            raise ValueError(f"{name}: must be >= 1, got {value}")
    if not load > 0:
        raise ValueError(f"load: must be > 0, got {load}")
    try:
        t_values = tuple(int(t) for t in _csv(timesteps))
    except ValueError:
        raise ValueError(f"timesteps: give integers separated by commas, got {timesteps!r}") from None
    if not t_values or min(t_values) < 1:
        raise ValueError(f"timesteps: give integers >= 1, got {timesteps!r}")
    chosen = _csv(backends)
    if not chosen or any(b not in ("compiled", "torch", "numpy") for b in chosen):
        raise ValueError(f"backends: choose from compiled,torch,numpy, got {backends!r}")
    from ebatch.bench.runtime import bench_model

    for name in _csv(models):
        bench_model(name)  # unknown or unsupported names raise ValueError here, before anything runs
    cfg = BenchConfig(
        quick=quick, models=_csv(models), batch_size=batch_size, timesteps=t_values, backends=chosen,
        requests=requests or None, eesen_requests=eesen_requests or None, threads=threads, load=load,
        repeats=repeats, seed=seed, thread_scaling=(not quick) if thread_scaling is None else thread_scaling,
        energy=energy, hardware=hardware,
    )
    progress = None if fmt == "json" else (lambda text: typer.echo(f"  {text}", err=True))
    rows, elapsed_s = timed(cfg, progress)
    given = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "bench" else []
    command = " ".join(["ebatch bench", *given])
    text = markdown(rows, cfg, command, elapsed_s)
    if out:
        write_section(out, "runtime-quick" if quick else "runtime", text)
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    """Add ``ebatch bench`` to ``app``."""
    app.command("bench")(bench)
