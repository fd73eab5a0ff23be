"""The tornado study's report: a Markdown section, a tornado chart, and the files ``ebatch tornado --out`` writes.

Every number comes from the :class:`~ebatch.experiments.study.tornado.TornadoResult`, the range table and the
presets; the three assumptions named in the discussion are the result's widest bars. ``write_tornado(result,
out_dir, doc=None)`` writes ``tornado.json``, ``tornado.csv``, ``tornado.png`` and ``tornado.md`` (and, with
``doc``, the page and its chart beside it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ebatch.experiments.formatting import times
from ebatch.experiments.report.figures import pyplot, save
from ebatch.experiments.report.markdown import markdown_table
from ebatch.experiments.study.reproduce_config import PAPER_HEADLINE
from ebatch.experiments.study.tornado import METRICS, Bar, TornadoResult

__all__ = ["shown_value", "tornado_chart", "tornado_markdown", "tornado_rows", "write_tornado"]

#: metric -> (label, the paper's key)
_LABELS = {"throughput_vs_cellular": ("throughput", "throughput"),
           "energy_efficiency_vs_cellular": ("requests/J", "energy_efficiency")}


#: (name suffix, scale, unit) for showing a preset value; the first suffix that matches wins.
_UNITS = (("_bytes_per_s", 1e-9, " GB/s"), ("_j_per_byte", 1e12, " pJ/B"), ("_bytes", 2.0**-20, " MiB"),
          ("_hz", 1e-6, " MHz"), ("_j", 1e12, " pJ"), ("_s", 1e6, " us"), ("_w", 1.0, " W"))


def shown_value(value, parameter: str = "") -> str:
    """A preset value for text: on/off for a switch, else a number in the unit its name ends with."""
    if isinstance(value, bool):
        return "on" if value else "off"
    scale, unit = next(((k, u) for suffix, k, u in _UNITS if parameter.endswith(suffix)), (1.0, ""))
    return f"{float(value) * scale:.4g}{unit}"


def tornado_rows(result: TornadoResult) -> list[dict]:
    """One flat row per bar (for the CSV)."""
    rows = []
    for b in result.bars_by_swing():
        row = {"preset": b.preset, "parameter": b.parameter, "base_value": b.base_value, "low_value": b.low_value,
               "high_value": b.high_value}
        for m in METRICS:
            row |= {f"{m}_base": getattr(b.base, m), f"{m}_low": getattr(b.low, m), f"{m}_high": getattr(b.high, m),
                    f"{m}_swing": b.swing(m)}
        rows.append(row | {"reason": b.reason, "source": b.source})
    return rows


def tornado_chart(result: TornadoResult, path) -> Path:
    """Per preset and headline ratio, one horizontal bar per parameter from its low-end to its high-end ratio
    (blue: the low end, orange: the high end), widest on top; the base as a black line, the paper's as dashes."""
    plt = pyplot()
    presets = list(result.base)
    height = max(3.0, 0.32 * max(len(result.bars_by_swing(p)) for p in presets) + 1.2)
    fig, axes = plt.subplots(len(presets), 2, figsize=(12, height * len(presets)), squeeze=False)
    for row, preset in enumerate(presets):
        bars = result.bars_by_swing(preset)[::-1]
        y = np.arange(len(bars))
        for col, metric in enumerate(METRICS):
            ax = axes[row][col]
            base = getattr(result.base[preset].headline, metric)
            for i, b in enumerate(bars):
                for end, color in (("low", "C0"), ("high", "C3")):
                    value = getattr(getattr(b, end), metric)
                    ax.barh(i, value - base, left=base, color=color, alpha=0.8, height=0.7,
                            label=f"{end} end of the range" if i == 0 else None)
            ax.axvline(base, color="black", lw=1.0)
            label, paper_key = _LABELS[metric]
            paper = PAPER_HEADLINE.get(preset, {}).get(paper_key)
            if paper is not None:
                ax.axvline(paper, color="grey", ls="--", lw=1.0, label=f"paper {paper:g}x")
            ax.axvline(1.0, color="grey", ls=":", lw=0.8)
            ax.set_yticks(y, [b.parameter for b in bars], fontsize=8)
            ax.set_xlabel(f"E-BATCH / cellular {label} (base {base:.2f}x)")
            ax.set_title(f"{preset}: {label}", fontsize=10)
            ax.grid(axis="x", alpha=0.3)
        axes[row][0].legend(fontsize=7, loc="lower right")
    return save(fig, path)


def _ends(bar: Bar, between: str) -> str:
    return f"{shown_value(bar.low_value, bar.parameter)}{between}{shown_value(bar.high_value, bar.parameter)}"


def _discussion(result: TornadoResult, top: int = 3) -> str:
    widest = result.bars_by_swing()[:top]
    lines = [f"### The {len(widest)} assumptions that move the conclusion most", "",
             "Ranked by the wider of the two swings (largest minus smallest headline ratio over the range):", ""]
    for rank, b in enumerate(widest, 1):
        parts = []
        for metric in METRICS:
            label, paper_key = _LABELS[metric]
            low, high = b.span(metric)
            paper = PAPER_HEADLINE.get(b.preset, {}).get(paper_key)
            reach = ""
            if paper is not None:
                reach = (f", which takes in the paper's {paper:g}x" if low <= paper <= high else
                         f", all {'below' if high < paper else 'above'} the paper's {paper:g}x")
            parts.append(f"{label} {times(low)} to {times(high)} (base {times(getattr(b.base, metric))}){reach}")
        lines.append(f"{rank}. `{b.preset}` **`{b.parameter}`** from {_ends(b, ' to ')} (preset: "
                     f"{shown_value(b.base_value, b.parameter)}): " + "; ".join(parts) + ".")
    flips = [b for b in result.bars if min(b.span(m)[0] for m in METRICS) < 1.0]
    lines += ["", ("No end of any range turns E-BATCH's advantage over cellular into a loss." if not flips else
                   "E-BATCH falls below cellular (a ratio under 1x) at an end of: "
                   + ", ".join(f"`{b.preset}` `{b.parameter}`" for b in flips) + ".")]
    quiet = [b for b in result.bars if b.widest < 0.005]
    if quiet:
        lines.append("These move neither ratio by as much as 0.005x over their range: "
                     + ", ".join(f"`{b.preset}` `{b.parameter}`" for b in quiet) + ".")
    return "\n".join(lines)


def tornado_markdown(result: TornadoResult, chart: str = "tornado.png", heading: str = "#") -> str:
    """The page: protocol, base, one table per preset (widest first), the discussion, the range table."""
    cfg = result.config
    protocol = cfg.protocol()
    nets = ", ".join(f"`{n.model}` on `{n.dataset}`" for n in cfg.networks)
    base_rows = [[f"`{p}`", ", ".join(f"{net} T={t}" for net, t in c.tuned_timesteps.items()),
                  times(c.headline.throughput_vs_cellular), times(c.headline.energy_efficiency_vs_cellular)]
                 for p, c in result.base.items()]
    parts = [
        f"{heading} What drives the headline: a tornado of the assumptions",
        f"Generated by `{result.command or 'ebatch tornado'}` in {result.wall_s:.0f} s ({result.runs} simulations, "
        f"{'serially' if result.workers <= 1 else f'{result.workers} dask workers'}). Do not edit by hand: rerun it.",
        f"The headline is `ebatch reproduce`'s: per preset, the geometric mean over {nets} of E-BATCH's offline "
        "throughput and requests per joule over cellular batching's, all with B = "
        f"{protocol.batch_size}, E-BATCH's T tuned on the shipped preset as reproduce tunes it (Poisson arrivals "
        f"at {protocol.load_fraction:g} x the best baseline's offline throughput, objective "
        f"`{protocol.tune_objective}`). It runs on **{cfg.requests} requests per network** (seed {cfg.seed}), "
        "not the whole test sets, so its base ratios are not reproduce's converged headline; what it measures "
        "is how far each assumption moves them. One parameter at a time takes the low and the high end of its "
        "range below, the others keep the preset's values; T stays at the base preset's tuning.",
        markdown_table(["preset", "tuned T", "throughput vs cellular", "requests/J vs cellular"], base_rows),
        f"![tornado chart]({chart})",
    ]
    for preset in result.base:
        rows = [[f"`{b.parameter}`", shown_value(b.base_value, b.parameter), _ends(b, " / "),
                 times(b.low.throughput_vs_cellular), times(b.high.throughput_vs_cellular),
                 times(b.low.energy_efficiency_vs_cellular), times(b.high.energy_efficiency_vs_cellular),
                 f"{b.widest:.2f}x"] for b in result.bars_by_swing(preset)]
        parts.append(f"{heading}# `{preset}` (widest swing first)\n\n" + markdown_table(
            ["parameter", "preset value", "low / high", "thr. at low", "thr. at high", "req/J at low",
             "req/J at high", "swing"], rows))
    parts.append(_discussion(result))
    ranges = [[f"`{b.preset}`", f"`{b.parameter}`", _ends(b, " - "), b.reason, b.source] for b in result.bars]
    parts.append(f"{heading}# The ranges and why\n\nFrom `ebatch.experiments.study.tornado_ranges.RANGES`; the "
                 "last column is the preset's own source for its value.\n\n"
                 + markdown_table(["preset", "parameter", "range", "why this range", "preset's source"], ranges))
    return "\n\n".join(parts) + "\n"


def write_tornado(result: TornadoResult, out_dir=None, doc=None) -> list[Path]:
    """Write the JSON, CSV, chart and page into ``out_dir`` (when given), and the page with its chart beside
    ``doc`` (when given); returns the paths written."""
    paths: list[Path] = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "tornado.json").write_text(json.dumps(result.to_json(), indent=1))
        pd.DataFrame(tornado_rows(result)).to_csv(out / "tornado.csv", index=False)
        paths += [out / "tornado.json", out / "tornado.csv", tornado_chart(result, out / "tornado.png")]
        (out / "tornado.md").write_text(tornado_markdown(result))
        paths.append(out / "tornado.md")
    if doc is not None:
        doc = Path(doc)
        doc.parent.mkdir(parents=True, exist_ok=True)
        chart = tornado_chart(result, doc.with_suffix(".png"))
        doc.write_text(tornado_markdown(result, chart=chart.name))
        paths += [chart, doc]
    return paths
