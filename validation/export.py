"""The tools' figures as small CSV tables (``tests/data/``), so that CI checks ebatch against them without the tools.

Each file starts with one ``#`` line naming the command that made it and the tool versions; the rest is a
CSV with a header row. Only the tools' numbers and the inputs that identify them are written, never
ebatch's: ``tests/test_crosscheck_data.py`` recomputes ebatch's side from the current code.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from report_energy import zigzag_level
from report_sequences import sequence_levels

__all__ = ["write_data"]

COMMAND = "make validate (validation/report.py --data tests/data)"


def _write(path: Path, versions: str, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        handle.write(f"# made by {COMMAND}; {versions}\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_data(work: Path, folder: Path) -> list[Path]:
    """Write whichever tables the tools' results allow; returns the paths written."""
    def load(name):
        path = work / name
        return json.loads(path.read_text()) if path.exists() else None

    versions = load("versions.json") or {}
    tag = ", ".join(f"{k} {v}" for k, v in versions.items() if k.startswith(("scalesim", "zigzag")))
    written = []
    scalesim = load("scalesim_cycles.json")
    if scalesim:
        rows = [[preset, s["m"], s["k"], s["n"], s["row_folds"], s["col_folds"], s["mode"], s["cycles"]]
                for preset, result in scalesim["presets"].items() for s in result["shapes"]]
        written.append(_write(folder / "scalesim_cycles.csv", tag,
                              ["preset", "m", "k", "n", "row_folds", "col_folds", "mode", "scalesim_cycles"], rows))
    zigzag, latency, sequences = load("zigzag_energy.json"), load("latency.json"), load("sequences.json")
    if zigzag and latency:
        rows = []
        for case in latency:
            run = zigzag["runs"].get(case["job"], {})
            if "latency_cycles" in run:
                p = run["latency_parts"]
                rows.append([case["preset"], case["variant"], case["m"], case["k"], case["n"], run["latency_cycles"],
                             p["ideal_temporal_cycles"], p["stall_slack_cycles"], p["onloading_cycles"],
                             p["systolic_drain_cycles"]])
        written.append(_write(folder / "zigzag_latency.csv", tag,
                              ["preset", "variant", "m", "k", "n", "zigzag_cycles", "ideal_cycles", "stall_cycles",
                               "onloading_cycles", "drain_cycles"], rows))
    if zigzag and sequences:
        rows = []
        for s in sequences:
            levels = sequence_levels(s, zigzag)
            if levels:
                rows += [[s["scenario"], level, f"{value:.6e}"] for level, value in levels.items()]
        written.append(_write(folder / "zigzag_sequences.csv", tag, ["scenario", "level", "zigzag_j"], rows))
    ebatch = load("ebatch_energy.json")
    if zigzag and ebatch:
        rows = []
        for preset in ebatch["presets"]:
            run = zigzag["runs"].get(preset, {})
            if "levels" in run:
                for operand, memory in (("W", "dram"), ("W", "weight_buffer"), ("I", "activation_buffer"),
                                        ("O", "activation_buffer")):
                    z = zigzag_level(run, operand, memory)
                    rows.append([preset, operand, memory, f"{z['read_j']:.6e}", f"{z['write_j']:.6e}"])
                rows.append([preset, "MAC", "array", f"{run['mac_energy_j']:.6e}", "0"])
        written.append(_write(folder / "zigzag_gemm.csv", tag, ["preset", "operand", "memory", "read_j", "write_j"],
                              rows))
    return written
