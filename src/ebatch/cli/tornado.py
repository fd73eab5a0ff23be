"""``ebatch tornado``: how far each assumption and modelling choice moves E-BATCH's headline ratios over cellular.

Prints the widest bars per preset; writes files only where asked: ``--out DIR`` (JSON, CSV, PNG, Markdown) and
``--doc FILE`` (the Markdown page with its chart beside it, e.g. docs/tornado.md).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

__all__ = ["register"]


def _pick(text: str | None, known: dict, field: str) -> tuple:
    if text is None:
        return tuple(known.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"{field}: unknown {', '.join(unknown) or 'empty list'}; choose among {', '.join(known)}")
    return tuple(known[n] for n in names)


def register(app: typer.Typer) -> None:
    """Add ``tornado`` to ``app``."""

    @app.command()
    def tornado(
        requests: int = typer.Option(1000, help="Requests per network (drawn from its data set with --seed)."),
        workers: int = typer.Option(0, help="Dask workers on this machine (0: run serially, without dask)."),
        networks: str = typer.Option(None, help="Comma-separated networks of `ebatch reproduce` (default: all)."),
        presets: str = typer.Option(None, help="Comma-separated presets (default: epur,tpu-v1)."),
        seed: int = typer.Option(0, help="Seed of the request draws."),
        out: Path = typer.Option(None, "--out", help="Write JSON, CSV, PNG and Markdown into this directory."),
        doc: Path = typer.Option(None, "--doc", help="Also write the Markdown page (and its PNG beside it) here."),
    ) -> None:
        """Vary every preset assumption and modelling choice over its plausible range, one at a time, and report
        the range of E-BATCH's throughput and requests/J over cellular (the reproduce headline)."""
        from rich.console import Console
        from rich.table import Table

        from ebatch.experiments.report.tornado import shown_value, write_tornado
        from ebatch.experiments.study.reproduce_config import NETWORKS, PRESETS
        from ebatch.experiments.study.tornado import TornadoConfig, run_tornado

        if requests < 2:
            raise ValueError(f"requests: must be >= 2, got {requests}")
        if workers < 0:
            raise ValueError(f"workers: must be >= 0, got {workers}")
        config = TornadoConfig(networks=_pick(networks, {n.model: n for n in NETWORKS}, "networks"),
                               presets=_pick(presets, {p: p for p in PRESETS}, "presets"), requests=requests,
                               seed=seed)
        options = [f"--requests {requests}", f"--workers {workers}" if workers else "",
                   f"--networks {networks}" if networks else "", f"--presets {presets}" if presets else "",
                   f"--seed {seed}" if seed else "", f"--out {shlex.quote(str(out))}" if out else "",
                   f"--doc {shlex.quote(str(doc))}" if doc else ""]
        command = " ".join(["ebatch tornado", *(o for o in options if o)])
        err = Console(stderr=True)
        result = run_tornado(config, workers=workers, log=lambda msg: err.print(msg), command=command)

        console = Console(width=max(Console().width, 130))
        for preset, base in result.base.items():
            table = Table(title=f"{preset}: E-BATCH over cellular, base {base.headline.throughput_vs_cellular:.2f}x "
                                f"throughput, {base.headline.energy_efficiency_vs_cellular:.2f}x requests/J")
            for col in ("parameter", "low", "high", "thr at low", "thr at high", "req/J at low", "req/J at high"):
                table.add_column(col)
            for b in result.bars_by_swing(preset):
                table.add_row(b.parameter, shown_value(b.low_value, b.parameter),
                              shown_value(b.high_value, b.parameter),
                              f"{b.low.throughput_vs_cellular:.2f}x", f"{b.high.throughput_vs_cellular:.2f}x",
                              f"{b.low.energy_efficiency_vs_cellular:.2f}x",
                              f"{b.high.energy_efficiency_vs_cellular:.2f}x")
            console.print(table)
        console.print(f"{result.runs} simulations in {result.wall_s:.0f} s; widest: "
                      + ", ".join(f"{b.preset} {b.parameter}" for b in result.bars_by_swing()[:3]))
        if out is not None or doc is not None:
            paths = write_tornado(result, out, doc=doc)
            console.print("wrote " + ", ".join(str(p) for p in paths))
