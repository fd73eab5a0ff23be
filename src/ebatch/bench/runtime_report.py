"""The ``runtime`` section of docs/benchmarks.md from :func:`ebatch.bench.runtime.run_bench`'s rows: one table
per model, the best E-BATCH row of each backend against the padding policy and torch.nn packed, and the 2-vs-1
thread speed-ups. The figures only: the targets they are read against are in docs/benchmarks.md."""

from __future__ import annotations

from ebatch.bench.runtime import BenchConfig

__all__ = ["markdown"]


def _fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown(rows: list[dict], cfg: BenchConfig, command: str, elapsed_s: float) -> str:
    """The ``runtime`` section of docs/benchmarks.md."""
    quick = ("Quick version (what `make bench` runs): few requests, so every ratio is noisier and lower than "
             "in the full run above. " if cfg.quick else
             "The full run; `make bench` writes a `--quick` version in its own section below. ")
    lines = [
        "## Runtime: real LSTM/GRU execution (wall clock)" + (", quick" if cfg.quick else ""),
        "",
        f"Command: `{command}` ({elapsed_s:.0f} s on this machine). {quick}Generated; do not edit by hand.",
        "",
        f"LibriSpeech test-clean lengths (100 frames/s, random features, seed {cfg.seed}), B = {cfg.batch_size}, "
        f"random weights with PyTorch's init. Offline: all requests queued at 0. Poisson: arrivals at "
        f"{cfg.load:g} x the capacity of the no-padding limit. Best of {cfg.n_repeats} round-robin run(s).",
        "Efficiency = useful cells/s / cells/s of the torch module on a full batch of B equal-length sequences "
        "(the no-padding limit); a cell is one time-step of one layer and direction. The runtime skips "
        "padded cells, so `padded` is the plan's padding, not computed. J/request: the run's energy over its "
        "requests, from the meter named in the column (`rapl`, `nvml`; `estimate` = a preset's power x busy "
        "time, not a measurement; the `energy` note below says which).",
        "",
        *[f"- {note}" for note in cfg.notes],
        "",
    ]
    for model in dict.fromkeys(r["model"] for r in rows):
        mrows = [r for r in rows if r["model"] == model and "thread" not in r["load"]]
        trows = [r for r in rows if r["model"] == model and "thread" in r["load"]]
        first = mrows[0]
        lines += [
            f"### {model}: {first['model_requests']} requests, limit {first['limit_cells_per_s']:,.0f} cells/s",
            "",
            "| load | name | backend | seq/s | useful cells/s | p50 latency s | p99 latency s | efficiency "
            f"| padded | max abs err | J/request ({first.get('energy_source') or 'no meter'}) |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in mrows:
            req = "" if r["requests"] == r["model_requests"] else f" ({r['requests']} req.)"
            lines.append(
                f"| {r['load']} | {r['name']}{req} | {r['backend']} | {_fmt(r['sequences_per_s'])} | "
                f"{_fmt(r['useful_cells_per_s'])} | {_fmt(r['latency_p50_s'])} | {_fmt(r['latency_p99_s'])} | "
                f"{r['efficiency']:.2f} | {_fmt(r['padded_fraction'], 2)} | {_fmt(r['max_abs_error'], 2)} | "
                f"{_fmt(r.get('energy_per_request_j'))} |"
            )
        lines += ["", *_best(mrows), *_threads(trows), ""]
    return "\n".join(lines)


def _best(rows: list[dict]) -> list[str]:
    """The best offline E-BATCH row of each backend: its offline sequences/s over the padding policy's and over
    torch.nn packed's, its efficiency, its p99 latency under Poisson load beside torch.nn packed's (E-BATCH with
    the same T), and where its wall time went."""
    out = []
    offline = {(r["name"], r["backend"]): r for r in rows if r["load"] == "offline"}
    loaded = {(r["name"], r["backend"]): r for r in rows if r["load"].startswith("poisson")}
    packed = offline.get(("torch.nn packed", "torch.nn"))
    packed_load = loaded.get(("torch.nn packed", "torch.nn"))
    for backend in dict.fromkeys(r["backend"] for r in rows if r["policy"] == "ebatch"):
        ebatch = [r for (name, be), r in offline.items() if be == backend and r["policy"] == "ebatch"]
        if not ebatch:
            continue
        e = max(ebatch, key=lambda r: r["sequences_per_s"])
        pad = offline.get(("padding", backend))
        checks = []
        if pad:
            checks.append(("padding policy", e["sequences_per_s"] / pad["sequences_per_s"]))
        if packed:
            checks.append(("torch.nn packed", e["sequences_per_s"] / packed["sequences_per_s"]))
        texts = [f"{ratio:.2f}x {what}" for what, ratio in checks]
        texts.append(f"efficiency {e['efficiency']:.2f}")
        e_load = loaded.get((e["name"], backend))
        if e_load and packed_load:
            texts.append(f"poisson p99 {e_load['latency_p99_s']:.3g} s vs torch.nn packed "
                         f"{packed_load['latency_p99_s']:.3g} s")
        split = e.get("time_split")
        if split:
            total = e["wall_s"]
            texts.append("time: " + ", ".join(f"{k[:-2].replace('_', ' ')} {v / total:.0%}" for k, v in split.items()))
        out.append(f"- best E-BATCH on {backend} ({e['name']}): " + "; ".join(texts))
    return out


def _threads(rows: list[dict]) -> list[str]:
    """Speed-up with 2 threads over 1 (offline sequences/s, measured side by side)."""
    out = []
    for name, backend in dict.fromkeys((r["name"], r["backend"]) for r in rows):
        by = {r["threads"]: r for r in rows if (r["name"], r["backend"]) == (name, backend)}
        if 1 in by and 2 in by:
            out.append(f"{name} on {backend}: {by[2]['sequences_per_s'] / by[1]['sequences_per_s']:.2f}x")
    return ["- threads, 2 over 1 (offline, run side by side): " + "; ".join(out)] if out else []
