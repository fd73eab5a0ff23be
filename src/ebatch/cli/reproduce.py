"""``ebatch reproduce``: the paper's comparison (networks x presets x policies), report and figures."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import typer

from ebatch.experiments.report.sections import write_section

__all__ = ["register"]

DEFAULT_DOC = "docs/reproduction.md"


def _benchmark_markdown(result: dict, command: str, total_s: float) -> str:
    timing = result["timing"]
    lines = [
        "## reproduce", "",
        f"Measured with `{command}` on this machine (2 cores, shared): whole command "
        f"{total_s:.1f} s wall from start to the last file written (Python start-up not included), of which "
        f"{timing['wall_s']:.1f} s in the experiment itself ("
        + ", ".join(f"{k[:-2].replace('_', ' ')} {v:.1f} s" for k, v in timing.get("phases", {}).items())
        + "; the rest is figures and files).", "",
        "| policy | simulations | wall s | simulated cells per wall s | requests per wall s |",
        "|---|---|---|---|---|",
    ]
    for label, t in timing["per_policy"].items():
        lines.append(f"| {label} | {t['runs']} | {t['wall_s']:.2f} | {t['cells_per_wall_s']:.3g} | "
                     f"{t['requests_per_wall_s']:.3g} |")
    lines += ["", "A cell is one time-step of one request in one layer direction. Cellular batching simulates "
              "slower because it emits a step per run of single-time-step invocations, cut at every arrival."]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``reproduce`` to ``app``."""

    @app.command()
    def reproduce(
        quick: bool = typer.Option(False, "--quick", help="Fewer requests and load points (about a minute)."),
        out: Path = typer.Option(Path("results/reproduce"), "--out", help="Directory for JSON, CSV, PNG and Markdown."),
        doc: str = typer.Option(
            None, "--doc",
            help=f"Also write the Markdown report here (default: {DEFAULT_DOC} for a full run, none with --quick).",
        ),
        benchmarks: Path = typer.Option(
            None, "--benchmarks", help="Write the wall time and simulation speed into this file's 'reproduce' section."
        ),
        sensitivity: bool = typer.Option(True, help="Run the sensitivity study."),
        auto_study: bool = typer.Option(True, "--auto-study/--no-auto-study", help="Run the timesteps='auto' study."),
        seed: int = typer.Option(0, help="Seed of the request draws."),
    ) -> None:
        """Reproduce the paper: eesen, deepspeech2, gnmt-enc x epur, tpu-v1 x padding, sorted padding, cellular,
        E-BATCH; a table, JSON, CSV, figures and the Markdown report."""
        from rich.console import Console
        from rich.table import Table

        from ebatch.experiments.report.reproduce import headline_rows, table_rows, write_outputs
        from ebatch.experiments.study.reproduce import ReproduceConfig, run_reproduce

        started = time.perf_counter()
        options = [
            "--quick" if quick else "", "" if out == Path("results/reproduce") else f"--out {shlex.quote(str(out))}",
            "" if doc is None else f"--doc {shlex.quote(doc)}",
            "" if benchmarks is None else f"--benchmarks {shlex.quote(str(benchmarks))}",
            "" if sensitivity else "--no-sensitivity", "" if auto_study else "--no-auto-study",
            "" if seed == 0 else f"--seed {seed}",
        ]
        command = " ".join(["ebatch reproduce", *(o for o in options if o)])
        config = (ReproduceConfig.quick if quick else ReproduceConfig)(
            seed=seed, sensitivity=sensitivity, auto_study=auto_study
        )
        err = Console(stderr=True)
        result = run_reproduce(config, log=lambda msg: err.print(msg), command=command)
        doc_path = doc if doc is not None else (None if quick else DEFAULT_DOC)
        result["timing"]["command_wall_s"] = time.perf_counter() - started
        paths = write_outputs(result, out, doc=doc_path)

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
        head = Table(title="E-BATCH, geometric mean over networks (paper: vs the state of the art)")
        for col in ("preset", "thr vs cellular", "paper", "req/J vs cellular", "paper", "thr vs padding",
                    "req/J vs padding", "p99 vs cellular"):
            head.add_column(col)
        for r in headline_rows(result):
            head.add_row(r["preset"], f"{r['throughput_vs_cellular']:.2f}x", f"{r['paper_throughput']}x",
                         f"{r['energy_efficiency_vs_cellular']:.2f}x", f"{r['paper_energy_efficiency']}x",
                         f"{r['throughput_vs_padding']:.2f}x", f"{r['energy_efficiency_vs_padding']:.2f}x",
                         f"{r['p99_latency_vs_cellular']:.2f}x")
        console.print(head)
        console.print("* overloaded: the offered load exceeds that policy's offline throughput")
        if benchmarks is not None:
            total_s = time.perf_counter() - started
            write_section(benchmarks, "reproduce", _benchmark_markdown(result, command, total_s))
            paths.append(benchmarks)
        console.print(f"wrote {len(paths)} files under {out}" + (f" and {doc_path}" if doc_path else ""))
