"""The preset check as Markdown: measured against predicted wall time, and the policies' order by each."""

from __future__ import annotations

from ebatch.experiments.study.preset_check import PredictedRun

__all__ = ["predicted_markdown"]


def predicted_markdown(runs: list[PredictedRun], preset: str, device: str) -> str:
    """A table of measured against predicted wall time, and the policies' order by each."""
    lines = [f"| run | B | measured on {device} s | predicted by {preset} s | measured / predicted |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.name} | {r.batch_size} | {r.measured_s:.3f} | {r.predicted_s:.3f} | "
              f"{r.measured_over_predicted:.2f} |" for r in runs]
    lines.append("")
    for b in sorted({r.batch_size for r in runs}):
        at_b = [r for r in runs if r.batch_size == b]
        measured = [r.name for r in sorted(at_b, key=lambda r: r.measured_s)]
        predicted = [r.name for r in sorted(at_b, key=lambda r: r.predicted_s)]
        same = "the same order" if measured == predicted else f"predicted order {', '.join(predicted)}"
        lines.append(f"- B={b}, fastest first: measured {', '.join(measured)}; {same}.")
    return "\n".join(lines)
