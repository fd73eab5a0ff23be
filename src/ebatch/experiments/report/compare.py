"""Files of ``ebatch compare``: the comparison rows as CSV (flattened) and JSON, every request and step of
every run as CSV, and the bar chart.

``write_comparison(results, out_dir)`` after :func:`ebatch.experiments.study.compare.compare`; ``csv_text(rows)``
for rows of :func:`~ebatch.experiments.study.compare.comparison_rows`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from ebatch.experiments.report.plots import comparison_chart
from ebatch.experiments.study.compare import comparison_rows
from ebatch.sim import SimulationResult
from ebatch.sim.results import flat_summary

__all__ = ["csv_text", "flat_row", "write_comparison"]


def flat_row(row: dict) -> dict:
    """A comparison row with nested entries spread into columns: ``param_<key>``, ``energy_<part>_j``
    (:func:`ebatch.sim.results.flat_summary`) and ``measured_<key>`` (figures measured on a real executor,
    ``compare --measured``)."""
    flat = flat_summary({k: v for k, v in row.items() if k != "measured"})
    flat.update({f"measured_{k}": v for k, v in row.get("measured", {}).items()})
    return flat


def csv_text(rows: list[dict]) -> str:
    """Comparison rows as CSV (flattened by :func:`flat_row`); columns in first-seen order, ``None`` empty."""
    flat = [flat_row(r) for r in rows]
    columns = list(dict.fromkeys(k for r in flat for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label.replace("=", "-"))


def write_comparison(results: list[SimulationResult], out_dir: str | Path, title: str = "") -> list[Path]:
    """Write ``summary.csv``, ``summary.json``, ``requests_<label>.csv``, ``steps_<label>.csv`` and
    ``compare.png`` (throughput, energy per request, p99 latency) into ``out_dir``; returns the paths.

    Raises ``ValueError`` when ``out_dir`` cannot be created or written.
    """
    out = Path(out_dir)
    rows = comparison_rows(results)
    written: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "summary.csv"
        path.write_text(csv_text(rows))
        written.append(path)
        path = out / "summary.json"
        path.write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n")
        written.append(path)
        for row, result in zip(rows, results):
            for kind, table in (("requests", result.requests), ("steps", result.steps)):
                path = out / f"{kind}_{_slug(row['label'])}.csv"
                table.to_csv(path, index=False)
                written.append(path)
        path = out / "compare.png"
        comparison_chart(rows, path, title=title)
        written.append(path)
    except OSError as exc:
        raise ValueError(f"out: cannot write to {str(out)!r} ({exc.strerror or exc})") from None
    return written
