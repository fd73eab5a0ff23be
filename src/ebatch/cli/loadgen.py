"""``ebatch loadgen``: open-loop load against a live ``ebatch serve``; ``ebatch loadgen-plot``: its chart.

``ebatch loadgen --url URL --workload librispeech-test-clean --arrival poisson --rate 20 --requests 200``
prints a table (``--format json|csv`` for machines; ``--out FILE`` also writes it). ``--find-max-rate``
searches for the highest rate whose p99 meets ``--slo-p99-s``; every probe is bounded by ``--requests``
and ``--duration-s``. ``ebatch loadgen-plot a.json b.json --out latency.png`` draws latency against rate,
one curve per JSON file (several runs of loadgen, e.g. one per policy or server).

``--hardware PRESET --model M --policy NAME[:KEY=VALUE...]`` sends nothing: the same schedules run in the
simulator on a host preset (``ebatch calibrate``'s, or ``h200``), as ``ebatch serve`` would run them
(:mod:`ebatch.bench.predict`): what the server would sustain on that machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def loadgen(
    url: Annotated[str, typer.Option("--url", help="The server, e.g. http://127.0.0.1:8000.")]
    = "http://127.0.0.1:8000",
    model: Annotated[str | None, typer.Option("--model", help="Served model name (default: the server's).")]
    = None,
    workload: Annotated[str, typer.Option("--workload", "-w", help="Shipped length table or a CSV (length or "
                                          "duration_s column).")] = "librispeech-test-clean",
    arrival: Annotated[str, typer.Option("--arrival", help="poisson | gamma | azure-conv | azure-code | "
                                         "mooncake (a trace, time-scaled to --rate).")] = "poisson",
    cv: Annotated[float, typer.Option("--cv", help="Gamma arrivals: coefficient of variation of the gaps.")]
    = 2.0,
    rate: Annotated[float, typer.Option("--rate", help="Mean rate in requests/s (the search's start with "
                                        "--find-max-rate).")] = 10.0,
    requests: Annotated[int | None, typer.Option("--requests", "-n", help="Requests per run (or probe).")]
    = None,
    duration_s: Annotated[float | None, typer.Option("--duration-s", help="Only requests scheduled within this "
                                                     "many seconds.")] = None,
    slo_p99_s: Annotated[float, typer.Option("--slo-p99-s", help="Latency SLO for goodput and the search.")]
    = 1.0,
    find_max_rate: Annotated[bool, typer.Option("--find-max-rate", help="Search the highest rate meeting the "
                                                "p99 SLO.")] = False,
    max_probes: Annotated[int, typer.Option("--max-probes", help="Search: most probes.")] = 8,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Search: stop when the bracket is this "
                                             "fraction of the rate.")] = 0.1,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="Per request: counted as an error after.")]
    = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of lengths, send times and inputs.")] = 0,
    hardware: Annotated[str | None, typer.Option("--hardware", help="Simulate instead of sending: a host preset "
                                                 "(kind: host) to run the schedules on; needs --model.")] = None,
    policy: Annotated[str, typer.Option("--policy", help="With --hardware: the server's batching policy, "
                                        "NAME[:KEY=VALUE...].")] = "ebatch",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="With --hardware: slots B of a step.")]
    = 16,
    request_overhead_s: Annotated[float, typer.Option("--request-overhead-s", help="With --hardware: HTTP and "
                                                      "encoding added to every latency.")] = 0.005,
    label: Annotated[str, typer.Option("--label", help="Name of this run in plots (default: the model).")] = "",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | csv.")] = "table",
    out: Annotated[str, typer.Option("--out", help="Also write the output to this file.")] = "",
) -> None:
    """Send open-loop load to a live server (or, with --hardware, simulate it) and report rates, goodput,
    latency and errors."""
    from ebatch.bench.loadgen import run_load
    from ebatch.bench.loadgen_report import runs_csv, runs_json, runs_table
    from ebatch.bench.maxrate import find_max_rate as search
    from ebatch.bench.predict import simulated_load
    from ebatch.bench.schedule import make_schedule

    if fmt not in ("table", "json", "csv"):
        raise ValueError(f"format: choose table, json or csv, got {fmt!r}")
    if requests is None and duration_s is None:
        requests = 200

    simulated = None if hardware is None else _server_model(hardware, model, policy, batch_size, request_overhead_s)

    def probe(rate_rps: float):
        schedule = make_schedule(workload, arrival, rate_rps, requests, duration_s, cv, seed)
        if simulated is not None:
            return simulated_load(simulated, schedule, slo_p99_s, timeout_s, label)
        return run_load(schedule, url, model, slo_p99_s, timeout_s, seed, label).result

    if find_max_rate:
        found = search(probe, rate, tolerance, max_probes)
        results, max_rate = list(found.probes), found.max_rate_rps
        if found.probe_limited:
            typer.echo(f"loadgen: at {max_rate:.4g} requests/s the whole probe was sent within the SLO and met it: "
                       "a lower bound, not a sustained rate; raise --requests or --duration-s", err=True)
    else:
        results, max_rate = [probe(rate)], None
    text = {"table": lambda: runs_table(results, max_rate), "json": lambda: runs_json(results, max_rate),
            "csv": lambda: runs_csv(results)}[fmt]()
    typer.echo(text, nl=not text.endswith("\n"))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)


def _server_model(hardware: str, model: str | None, policy: str, batch_size: int, request_overhead_s: float):
    """The simulated server of ``--hardware``: the model, the host preset, the policy and its parameters."""
    from ebatch.bench.predict import ServerModel
    from ebatch.bench.runtime import bench_model
    from ebatch.experiments.study.compare import parse_policy
    from ebatch.hardware.host import HostSpec, load_hardware

    if model is None:
        raise ValueError("model: --hardware simulates a model; give --model (e.g. lstm-2x512)")
    spec = load_hardware(hardware)
    if not isinstance(spec, HostSpec):
        raise ValueError(f"hardware: {hardware!r} is an accelerator preset; --hardware needs a host preset "
                         "(kind: host, e.g. h200 or one written by ebatch calibrate)")
    name, params = parse_policy(policy, "a server")
    return ServerModel(bench_model(model), spec, name, {"batch_size": batch_size} | params, request_overhead_s)


def loadgen_plot(
    runs: Annotated[list[str], typer.Argument(help="loadgen JSON files; one curve each.")],
    out: Annotated[str, typer.Option("--out", help="Image file to write (.png, .svg, .pdf).")],
) -> None:
    """Draw p50 and p99 latency against offered rate for several loadgen runs."""
    from ebatch.bench.loadgen_report import latency_chart, load_runs

    curves = {}
    for path in runs:
        results = load_runs(path)
        if not results:
            raise ValueError(f"runs: {path} holds no runs")
        curves[results[0].label or Path(path).stem] = results
    typer.echo(f"wrote {latency_chart(curves, out)}")


def register(app: typer.Typer) -> None:
    """Add ``ebatch loadgen`` and ``ebatch loadgen-plot`` to ``app``."""
    app.command("loadgen")(loadgen)
    app.command("loadgen-plot")(loadgen_plot)
