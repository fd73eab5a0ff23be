"""Reports of load-generator runs: a rich table, JSON, CSV, and a latency-against-rate chart of several runs.

JSON is ``{"max_rate_rps": ..., "runs": [LoadResult fields + slo_met, ...]}`` (``max_rate_rps`` is null
without ``--find-max-rate``; energy fields are null where the server sent none); CSV has one row per run
with the same fields ("n/a" for a missing energy). :func:`latency_chart` reads
such JSON files back (one curve per file, several runs per curve: a rate sweep or a search's probes).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import fields
from pathlib import Path

from ebatch.bench.loadgen import LoadResult

__all__ = ["latency_chart", "load_runs", "runs_csv", "runs_json", "runs_table"]

_COLUMNS = [("rate_rps", "rate/s"), ("offered_rps", "offered/s"), ("achieved_rps", "achieved/s"),
            ("goodput_rps", "goodput/s"), ("p50_s", "p50 s"), ("p90_s", "p90 s"), ("p99_s", "p99 s"),
            ("ok", "ok"), ("rejected_429", "429"), ("server_5xx", "5xx"), ("errors", "errors"),
            ("queue_s_mean", "queue s"), ("compute_s_mean", "compute s"), ("energy_j_mean", "J/req"),
            ("energy_source", "energy source")]


def _cell(value) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def runs_table(results: list[LoadResult], max_rate_rps: float | None = None) -> str:
    """A plain-text table (rich) of ``results``, with the search's answer under it when given."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"loadgen: {results[0].model}, {results[0].workload}, {results[0].arrival}"
                        + (f" cv {results[0].cv:g}" if results[0].arrival == "gamma" else "")
                        + f", p99 SLO {results[0].slo_p99_s:g} s")
    for _, title in _COLUMNS:
        table.add_column(title, justify="right")
    table.add_column("SLO met")
    for r in results:
        table.add_row(*[_cell(getattr(r, name)) for name, _ in _COLUMNS], "yes" if r.slo_met else "no")
    out = io.StringIO()
    Console(file=out, width=200, no_color=True).print(table)
    if max_rate_rps is not None:
        out.write(f"highest rate meeting the p99 SLO: {max_rate_rps:.4g} requests/s\n")
    return out.getvalue()


def runs_json(results: list[LoadResult], max_rate_rps: float | None = None) -> str:
    return json.dumps({"max_rate_rps": max_rate_rps, "runs": [r.to_dict() for r in results]}, indent=2,
                      default=float)


def runs_csv(results: list[LoadResult]) -> str:
    out = io.StringIO()
    names = [f.name for f in fields(LoadResult)] + ["slo_met"]
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({k: "n/a" if v is None else v for k, v in r.to_dict().items()})
    return out.getvalue()


def load_runs(path: str | Path) -> list[LoadResult]:
    """The runs of a loadgen JSON file; ``ValueError`` naming the file if it is not one."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text())["runs"]
        names = {f.name for f in fields(LoadResult)}
        return [LoadResult(**{k: v for k, v in row.items() if k in names}) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"runs: {path} is not a loadgen JSON file (ebatch loadgen --format json): {exc}") from None


def latency_chart(curves: dict[str, list[LoadResult]], path: str | Path, quantile: str = "p99_s") -> Path:
    """p50 (dashed) and ``quantile`` (solid) latency against offered rate, one colour per curve label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    slo = None
    for label, results in curves.items():
        results = sorted(results, key=lambda r: r.offered_rps)
        rates = [r.offered_rps for r in results]
        line, = axes.plot(rates, [getattr(r, quantile) for r in results], marker="o", label=f"{label} {quantile[:-2]}")
        axes.plot(rates, [r.p50_s for r in results], linestyle="--", color=line.get_color(), label=f"{label} p50")
        slo = results[0].slo_p99_s if results else slo
    if slo is not None:
        axes.axhline(slo, color="grey", linewidth=0.8, label=f"SLO {slo:g} s")
    axes.set_xlabel("offered rate (requests/s)")
    axes.set_ylabel("latency (s)")
    axes.set_yscale("log")
    axes.legend(fontsize=8)
    axes.grid(True, alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path
