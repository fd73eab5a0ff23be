"""``ebatch simulate`` (one policy) and ``ebatch compare`` (several, side by side on the same workload and seed).

Both print a rich table (``--format table``), a JSON list of summaries (``json``) or CSV rows (``csv``) on
stdout; progress and notes go to stderr, so ``--format json`` output stays parseable. ``--out DIR`` also
writes CSVs, JSON and a bar chart (:func:`ebatch.experiments.report.compare.write_comparison`). Bad input raises
``ValueError`` naming the field, which :func:`ebatch.cli.main` prints as one line with exit code 2.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ebatch.experiments.formatting import times
from ebatch.experiments.report.compare import csv_text, write_comparison
from ebatch.experiments.study.compare import RATIO_KEYS, apply_defaults, compare, comparison_rows, parse_policies
from ebatch.hardware.host import load_hardware
from ebatch.model import get_model
from ebatch.policies import available as available_policies
from ebatch.policies.base import defaults as policy_defaults
from ebatch.workload import Workload

__all__ = ["register", "si", "stdout_console"]

FORMATS = ("table", "json", "csv")
_FIELD_PREFIXES = ("workload", "lengths", "arrival", "rate", "cv", "requests", "frame_rate_hz", "subword_factor")

Model = Annotated[str, typer.Option("--model", "-m", help="Zoo model (see `ebatch models`) or a model file "
                                    "(.onnx, .safetensors; see `ebatch models --file`).")]
Hardware = Annotated[str, typer.Option(
    "--hardware", help="Preset name or YAML path (see `ebatch hardware`); several separated by commas.")]
WorkloadOpt = Annotated[str, typer.Option(
    "--workload", "-w", help="Shipped data set (see `ebatch datasets`) or a CSV with a length or duration_s column.")]
Requests = Annotated[int | None, typer.Option(help="Number of requests (drawn with the seed); default: all.")]
Arrival = Annotated[str, typer.Option(help="offline | poisson | gamma | azure-conv | azure-code | mooncake.")]
Cv = Annotated[float, typer.Option("--cv", help="Gamma arrivals: coefficient of variation of the gaps.")]
Rate = Annotated[float | None, typer.Option(help="Arrival rate in requests/s (poisson, gamma; traces are "
                                                 "time-scaled).")]
BatchSize = Annotated[int | None, typer.Option(help="Batch slots B, for the policies that take it.")]
Timesteps = Annotated[int | None, typer.Option(help="E-BATCH window T in time-steps.")]
SortWindow = Annotated[int | None, typer.Option(help="Padding: bucket by length among the oldest K requests.")]
MaxWait = Annotated[float | None, typer.Option("--max-wait-s", help="Padding: wait up to this long for a full batch.")]
FrameRate = Annotated[float | None, typer.Option("--frame-rate-hz", help="Speech frames per second (default 100).")]
Subword = Annotated[float | None, typer.Option(help="Subword tokens per word for text data sets (default 1.3).")]
Seed = Annotated[int, typer.Option(help="Seed of the workload's random draws.")]
Format = Annotated[str, typer.Option("--format", "-f", help="table | json | csv.")]
Out = Annotated[Path | None, typer.Option(help="Also write summary.csv/json, per-policy CSVs and compare.png here.")]
Measured = Annotated[str | None, typer.Option(
    "--measured", help="Also execute every policy on a real executor (numpy | torch | compiled; random weights, "
    "this machine's wall clock) and show measured figures beside the simulated ones. Keep --requests small.")]
MeasuredThreads = Annotated[int, typer.Option(
    "--threads", help="Threads of the --measured executor (torch and OpenBLAS); 1 by default, as ebatch calibrate "
    "and ebatch bench measure.")]
MEASURED_BACKENDS = ("numpy", "torch", "compiled")
MEASURED_KEYS = ("throughput_rps", "cells_per_s", "latency_p50_s", "latency_p99_s", "busy_s")

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
             (1e-12, "p"), (1e-15, "f"))


def si(value, unit: str = "") -> str:
    """``value`` with an SI prefix and three significant digits: ``si(0.0236, "J") == "23.6 mJ"``."""
    if value is None:
        return "n/a"
    value = float(f"{value:.3g}")
    if value == 0:
        return f"0 {unit}".strip()
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()


def stdout_console(width: int = 200) -> Console:
    """A console on stdout; off a terminal (a pipe, a file) ``width`` columns unless ``COLUMNS`` says otherwise."""
    console = Console()
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(width=width)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


_SHORT = {"batch_size": "B", "timesteps": "T", "sort_window": "sort", "max_wait_s": "wait_s", "lookahead": "look"}


def _params(policy: str, params: dict) -> str:
    """Numeric parameters always; a named choice (a string) only when it is not the policy's default."""
    default = policy_defaults(policy) if policy in available_policies() else {}
    shown = {k: v for k, v in params.items() if v is not None and not (isinstance(v, str) and default.get(k) == v)}
    return " ".join(f"{_SHORT.get(k, k)}={v}" for k, v in shown.items()) or "-"


class _ProgressBar:
    """A transient progress bar on stderr: only on a terminal, and only once the runs have taken 1 s."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.enabled = self.console.is_terminal
        self.t0 = time.perf_counter()
        self.bar: Progress | None = None
        self.tasks: dict[str, int] = {}
        self.state: dict[str, tuple[int, int]] = {}

    def __call__(self, label: str, done: int, total: int) -> None:
        self.state[label] = (done, total)
        if self.bar is None:
            if not self.enabled or time.perf_counter() - self.t0 < 1.0:
                return
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console, transient=True)
            self.bar.start()
        for name, (d, t) in self.state.items():
            if name not in self.tasks:
                self.tasks[name] = self.bar.add_task(name, total=t)
            self.bar.update(self.tasks[name], completed=d)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _load_workload(spec: str, requests, arrival, rate, cv, seed, frame_rate_hz, subword_factor) -> Workload:
    if requests is not None and requests < 1:
        raise ValueError(f"requests: must be >= 1, got {requests}")
    kwargs = {"n": requests, "arrival": arrival, "rate_rps": rate, "seed": seed, "cv": cv}
    if frame_rate_hz is not None:
        kwargs["frame_rate_hz"] = frame_rate_hz
    if subword_factor is not None:
        kwargs["subword_factor"] = subword_factor
    try:
        return Workload.load(spec, **kwargs)
    except ValueError as exc:  # pandas' own messages do not name the field
        if str(exc).startswith(_FIELD_PREFIXES):
            raise
        raise ValueError(f"workload {spec}: {exc}") from None


def _table(rows: list[dict], title: str, caption: str, ratios: bool) -> Table:
    table = Table(title=title, caption=caption, title_style="bold", caption_justify="left")
    headers = ["policy", "params", "req/s", "cells/s", "p50 latency", "p99 latency", "energy/req", "padding",
               "DRAM weights", "MAC util"]
    if ratios:
        headers += ["throughput x", "energy eff. x", "p99 x"]
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < 2 else "right", no_wrap=i < 2)
    for r in rows:
        cells = [r["label"], _params(r["policy"], r["params"]), si(r["throughput_rps"]), si(r["cells_per_s"]),
                 si(r["latency_p50_s"], "s"), si(r["latency_p99_s"], "s"), si(r["energy_per_request_j"], "J"),
                 _pct(r["padding_fraction"]), si(r["dram_weight_bytes"], "B"), _pct(r["mac_utilisation"])]
        if ratios:
            cells += [times(r[k]) for k in RATIO_KEYS]
        table.add_row(*cells)
    return table


def _model(model: str):
    """``(RNNModel, stages or None)``: a zoo model by name, or a model file's stages and their RNNModel."""
    if model.endswith((".onnx", ".safetensors")) or "/" in model:
        from ebatch.runtime.stagefile import load_model_file

        stages = load_model_file(model)
        return stages.model, stages
    return get_model(model), None


def _measure(rnn, load: Workload, specs, backend: str, seed: int, stages=None, threads: int = 1) -> list[dict]:
    """Each policy's wall-clock figures on a real executor (``ebatch.runtime.ExecutorBackend``); weights are
    the model file's (``stages``) or random ones of the zoo model's shapes."""
    from ebatch.bench.measured import measure_policies
    from ebatch.runtime import ModelStages, make_executor

    executor = make_executor(stages if stages is not None else ModelStages.random(rnn, seed=seed), backend,
                             threads=threads)
    return [{"backend": backend, **{k: summary[k] for k in MEASURED_KEYS}}
            for summary in measure_policies(executor, rnn, load, specs, seed=seed)]


def _measured_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title, title_style="bold")
    for i, header in enumerate(["policy", "req/s sim", "req/s measured", "p50 sim", "p50 measured", "p99 sim",
                                "p99 measured", "cells/s measured"]):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for r in rows:
        m = r["measured"]
        table.add_row(r["label"], si(r["throughput_rps"]), si(m["throughput_rps"]), si(r["latency_p50_s"], "s"),
                      si(m["latency_p50_s"], "s"), si(r["latency_p99_s"], "s"), si(m["latency_p99_s"], "s"),
                      si(m["cells_per_s"]))
    return table


def _run(model, hardware, workload, requests, arrival, rate, cv, policies, defaults: dict, frame_rate_hz,
         subword_factor, seed, fmt, out, single: bool, measured: str | None = None, threads: int = 1) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if measured is not None and measured not in MEASURED_BACKENDS:
        raise ValueError(f"measured: unknown executor {measured!r}; choose one of {', '.join(MEASURED_BACKENDS)}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads: must be an integer >= 1, got {threads!r}")
    rnn, stages = _model(model)
    names = [h.strip() for h in hardware.split(",")]
    if not all(names):
        raise ValueError(f"hardware: empty entry in {hardware!r}; separate preset names or paths with commas")
    specs_hw = [load_hardware(name) for name in names]
    specs = apply_defaults(parse_policies(policies), defaults)
    if single and len(specs) != 1:
        raise ValueError(f"policy: simulate runs one policy, got {len(specs)}; use `ebatch compare` for several")
    load = _load_workload(workload, requests, arrival, rate, cv, seed, frame_rate_hz, subword_factor)
    if out is not None:  # fail before the runs, not after
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"out: cannot create {str(out)!r} ({exc.strerror or exc})") from None

    bar = _ProgressBar()
    groups = []
    try:
        for spec in specs_hw:
            groups.append((spec, compare(rnn, load, specs, spec, seed=seed, progress=bar)))
    finally:
        bar.close()

    real = _measure(rnn, load, specs, measured, seed, stages, threads) if measured else None
    all_rows = []
    for spec, results in groups:
        rows = comparison_rows(results)
        if real is not None:
            for row, figures in zip(rows, real):
                row["measured"] = figures
        all_rows += rows
        title = f"{rnn.name} on {spec.name}"
        if fmt == "table":
            console = stdout_console()
            caption = f"{load.describe()}; arrival {arrival}{f' (cv {cv:g})' * (arrival == 'gamma')}, seed {seed}"
            if not single:
                caption += f"; ratios to {rows[0]['label']} (energy eff. = requests per joule)"
            console.print(_table(rows, title, caption, ratios=not single))
            if real is not None:
                console.print(_measured_table(rows, f"{rnn.name}: simulated on {spec.name} vs measured on the "
                                                    f"{measured} executor (wall clock, this machine)"))
        if out is not None:
            target = out if len(groups) == 1 else out / spec.name
            written = write_comparison(results, target, title=f"{title}, {load.name} ({len(load)} requests)")
            typer.echo(f"wrote {len(written)} files to {target}", err=True)
    if fmt == "json":
        typer.echo(json.dumps(all_rows, indent=2, allow_nan=False))
    elif fmt == "csv":
        typer.echo(csv_text(all_rows), nl=False)


def simulate(
    model: Model = "eesen", hardware: Hardware = "epur", workload: WorkloadOpt = "librispeech-test-clean",
    requests: Requests = None, arrival: Arrival = "offline", rate: Rate = None, cv: Cv = 2.0,
    policy: Annotated[str, typer.Option("--policy", "--policies", "-p", help="NAME[:KEY=VALUE...].")] = "ebatch",
    batch_size: BatchSize = None, timesteps: Timesteps = None, sort_window: SortWindow = None,
    max_wait_s: MaxWait = None, frame_rate_hz: FrameRate = None, subword_factor: Subword = None, seed: Seed = 0,
    fmt: Format = "table", out: Out = None,
) -> None:
    """Simulate one batching policy serving a workload on an accelerator model."""
    defaults = {"batch_size": batch_size, "timesteps": timesteps, "sort_window": sort_window,
                "max_wait_s": max_wait_s}
    _run(model, hardware, workload, requests, arrival, rate, cv, policy, defaults, frame_rate_hz, subword_factor,
         seed, fmt, out, single=True)


def compare_command(
    model: Model = "eesen", hardware: Hardware = "epur", workload: WorkloadOpt = "librispeech-test-clean",
    requests: Requests = None, arrival: Arrival = "offline", rate: Rate = None, cv: Cv = 2.0,
    policies: Annotated[str, typer.Option(
        "--policies", "-p", help="Comma-separated NAME[:KEY=VALUE...], e.g. padding:sort_window=256,ebatch.",
    )] = "sequential,padding,cellular,ebatch",
    batch_size: BatchSize = None, timesteps: Timesteps = None, sort_window: SortWindow = None,
    max_wait_s: MaxWait = None, frame_rate_hz: FrameRate = None, subword_factor: Subword = None, seed: Seed = 0,
    fmt: Format = "table", out: Out = None, measured: Measured = None, threads: MeasuredThreads = 1,
) -> None:
    """Compare batching policies side by side on the same workload, hardware and seed.

    Ratios are to the first policy: throughput x, energy efficiency x (requests per joule), p99 latency x.
    """
    defaults = {"batch_size": batch_size, "timesteps": timesteps, "sort_window": sort_window,
                "max_wait_s": max_wait_s}
    _run(model, hardware, workload, requests, arrival, rate, cv, policies, defaults, frame_rate_hz, subword_factor,
         seed, fmt, out, single=False, measured=measured, threads=threads)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``compare`` to ``app``."""
    app.command("simulate")(simulate)
    app.command("compare")(compare_command)
