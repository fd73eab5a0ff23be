"""What ebatch ships: ``ebatch models``, ``ebatch hardware [NAME|PATH]``, ``ebatch datasets``, ``ebatch policies``.

Each prints a rich table, or with ``--format json`` a JSON list (one object per entry). An unknown preset
or a malformed preset file raises ``ValueError`` (printed by :func:`ebatch.cli.main` as one line, exit 2).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from ebatch import policies as policy_registry
from ebatch.cli.compare import si, stdout_console
from ebatch.hardware import HardwareSpec, preset_names
from ebatch.hardware.host import HostSpec, load_hardware
from ebatch.model import ZOO
from ebatch.workload.datasets import (
    DATASETS,
    DEFAULT_FRAME_RATE_HZ,
    DEFAULT_SUBWORD_FACTOR,
    TRACES,
    dataset_lengths,
    trace_arrivals,
)

__all__ = ["register"]

Format = Annotated[str, typer.Option("--format", "-f", help="table | json.")]


def _emit(fmt: str, rows: list[dict], tables: list[Table]) -> None:
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "table":
        console = stdout_console(160)
        for table in tables:
            console.print(table)
    else:
        raise ValueError(f"format: unknown format {fmt!r}; choose table or json")


def _bidirectional(model) -> str:
    flags = [layer.bidirectional for layer in model.layers]
    if all(flags):
        return "all layers"
    if not any(flags):
        return "no"
    return "layers " + ",".join(str(i + 1) for i, f in enumerate(flags) if f)


def _describe_file(path: Path, fmt: str) -> None:
    """A model file's stages, shapes, parameter count and the RNNModel the simulator would use."""
    from ebatch.runtime.stagefile import load_model_file

    stages = load_model_file(path)
    model = stages.model
    row = {"file": str(path), "name": stages.name, "input_size": stages.input_size,
           "output_size": stages.output_size, "params": stages.params, "stages": stages.describe(),
           "rnn_model": dataclasses.asdict(model), "macs_per_timestep": model.macs_per_timestep}
    table = Table(title=f"{path.name}: stages", caption=f"{si(stages.params)} parameters; T = time-steps",
                  caption_justify="left")
    table.add_column("#", justify="right")
    table.add_column("stage: shapes in -> out")
    for i, line in enumerate(row["stages"]):
        table.add_row(str(i), line)
    sim = Table(title=f"RNNModel for the simulator (merge {model.merge}"
                + (f", staged inputs {list(model.staged_inputs)}" if model.staged_inputs else "") + ")",
                caption=f"{si(model.macs_per_timestep)} MACs per time-step; the cost models count the "
                "recurrent layers only", caption_justify="left")
    for header in ("layer", "cell", "input", "hidden", "proj", "bidirectional"):
        sim.add_column(header, justify="left" if header in ("cell", "bidirectional") else "right")
    for i, layer in enumerate(model.layers):
        sim.add_row(str(i), layer.cell, str(layer.input_size), str(layer.hidden_size), str(layer.proj_size or "-"),
                    "yes" if layer.bidirectional else "no")
    _emit(fmt, [row], [table, sim])


def models(
    fmt: Format = "table",
    file: Annotated[Path | None, typer.Option("--file", help="Describe a model file (.onnx or .safetensors) "
                                              "instead of the zoo.")] = None,
) -> None:
    """List the model zoo (layers, cell, sizes, directions, parameter counts), or describe a model file."""
    if file is not None:
        _describe_file(file, fmt)
        return
    rows = []
    for m in ZOO.values():
        cells = sorted({layer.cell for layer in m.layers})
        hidden = sorted({layer.hidden_size for layer in m.layers})
        rows.append({
            "name": m.name, "layers": m.num_layers, "cell": "/".join(cells),
            "input_size": m.layers[0].input_size, "hidden_size": hidden[0] if len(hidden) == 1 else hidden,
            "bidirectional": _bidirectional(m), "merge": m.merge, "params": m.params,
            "macs_per_timestep": m.macs_per_timestep, "description": m.description,
        })
    table = Table(title="Model zoo", caption="hidden size is per direction; MACs per time-step over all layers "
                  "and directions", caption_justify="left")
    for header in ("name", "layers", "cell", "input", "hidden", "bidirectional", "params", "MACs/step"):
        table.add_column(header, no_wrap=True, justify="right" if header in ("layers", "input", "params",
                                                                               "MACs/step") else "left")
    table.add_column("description", ratio=1)
    for r in rows:
        table.add_row(r["name"], str(r["layers"]), r["cell"], str(r["input_size"]), str(r["hidden_size"]),
                      r["bidirectional"], si(r["params"]), si(r["macs_per_timestep"]), r["description"])
    _emit(fmt, rows, [table])


_KEY_FIGURES = (
    ("clock", lambda s: si(s.clock_hz, "Hz")),
    ("array", lambda s: f"{s.array_rows}x{s.array_cols}"),
    ("weight buf", lambda s: si(s.weight_buffer_bytes, "B")),
    ("act. buf", lambda s: si(s.activation_buffer_bytes, "B")),
    ("DRAM", lambda s: si(s.dram_bandwidth_bytes_per_s, "B/s")),
    ("DRAM E/B", lambda s: si(s.dram_energy_j_per_byte, "J")),
    ("MAC E", lambda s: si(s.mac_energy_j, "J")),
    ("static", lambda s: si(s.static_power_w, "W")),
)


def _spec_row(spec) -> dict:
    names = spec.parameter_names()
    return {
        "name": spec.name, "kind": "host" if isinstance(spec, HostSpec) else "accelerator",
        "description": spec.description,
        "parameters": {n: {"value": getattr(spec, n), "source": spec.sources.get(n, "")} for n in names},
        "assumptions": _assumed(spec),
    }


def _assumed(spec) -> list[str]:
    return [n for n, src in spec.sources.items() if str(src).lower().startswith("assumption")]


def hardware(
    name: Annotated[str | None, typer.Argument(help="A preset name or YAML path: list all its parameters.")] = None,
    fmt: Format = "table",
) -> None:
    """List the hardware presets (accelerators and hosts), or every parameter of one preset with its source."""
    if name is not None:
        spec = load_hardware(name)
        table = Table(title=f"{spec.name}", caption=spec.description, caption_justify="left")
        table.add_column("parameter", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("assumed", justify="center")
        table.add_column("source", ratio=1)
        for n in spec.parameter_names():
            table.add_row(n, str(getattr(spec, n)), "yes" if n in _assumed(spec) else "", spec.sources.get(n, ""))
        _emit(fmt, [_spec_row(spec)], [table])
        return
    specs = [load_hardware(p) for p in preset_names()]
    accelerators = [s for s in specs if isinstance(s, HardwareSpec)]
    hosts = [s for s in specs if isinstance(s, HostSpec)]
    n_params = len(HardwareSpec.parameter_names())
    assumed = [f"{s.name} assumes {', '.join(_assumed(s)) or 'nothing'}." for s in accelerators]
    table = Table(title="Hardware presets", caption_justify="left", caption=" ".join(assumed) + " `ebatch hardware "
                  "NAME` lists every parameter with its source; a YAML path works wherever a preset name does.")
    table.add_column("name", no_wrap=True)
    for header, _ in _KEY_FIGURES:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("assumed", justify="right", no_wrap=True)
    for spec in accelerators:
        table.add_row(spec.name, *(f(spec) for _, f in _KEY_FIGURES), f"{len(_assumed(spec))}/{n_params}")
    host_table = Table(title="Host presets (kind: host: this runtime's executor on a CPU or GPU)",
                       caption_justify="left", caption="ebatch calibrate writes one for this machine; "
                       "weight B/s 0: no weight-read roofline.")
    for header in ("name", "per step", "per column", "s/flop (rec.)", "s/flop (input)", "weight B/s", "power",
                   "assumed"):
        host_table.add_column(header, justify="left" if header == "name" else "right", no_wrap=True)
    for spec in hosts:
        host_table.add_row(spec.name, si(spec.step_overhead_s, "s"), si(spec.column_overhead_s, "s"),
                           f"{spec.recurrent_s_per_flop:.3g}", f"{spec.input_s_per_flop:.3g}",
                           si(spec.weight_bandwidth_bytes_per_s, "B/s"), si(spec.power_w, "W"),
                           f"{len(_assumed(spec))}/{len(spec.parameter_names())}")
    _emit(fmt, [_spec_row(s) for s in specs], [table] + ([host_table] if hosts else []))


def datasets(fmt: Format = "table") -> None:
    """List the shipped workloads (request lengths) and arrival traces."""
    rows, trace_rows = [], []
    lengths_table = Table(title="Workloads (--workload)", caption_justify="left",
                          caption=f"speech: frames at {DEFAULT_FRAME_RATE_HZ:g}/s (--frame-rate-hz); text: "
                          f"subword tokens = words x {DEFAULT_SUBWORD_FACTOR:g} (--subword-factor)")
    for header in ("name", "kind", "requests", "min", "p50", "mean", "max", "description"):
        lengths_table.add_column(header, no_wrap=header != "description",
                                 justify="right" if header in ("requests", "min", "p50", "mean", "max") else "left")
    for d in DATASETS.values():
        lengths = dataset_lengths(d.name)
        row = {"name": d.name, "kind": d.kind, "unit": "frames" if d.kind == "speech" else "subword tokens",
               "requests": int(lengths.size), "length_min": int(lengths.min()),
               "length_p50": float(np.median(lengths)), "length_mean": float(lengths.mean()),
               "length_max": int(lengths.max()), "description": d.description}
        rows.append(row)
        lengths_table.add_row(d.name, f"{d.kind} ({row['unit']})", f"{row['requests']:,}", str(row["length_min"]),
                              f"{row['length_p50']:g}", f"{row['length_mean']:.1f}", str(row["length_max"]),
                              d.description)
    trace_table = Table(title="Arrival traces (--arrival; --rate time-scales them)", caption_justify="left",
                        caption="also: --arrival offline (all at 0) and poisson (needs --rate)")
    for header in ("name", "requests", "span", "mean rate", "description"):
        trace_table.add_column(header, no_wrap=header != "description",
                               justify="right" if header in ("requests", "span", "mean rate") else "left")
    for name, description in TRACES.items():
        arrivals = trace_arrivals(name)
        span = float(arrivals[-1] - arrivals[0])
        row = {"name": name, "kind": "trace", "requests": int(arrivals.size), "span_s": span,
               "mean_rate_rps": (arrivals.size - 1) / span if span > 0 else None, "description": description}
        trace_rows.append(row)
        rate = "n/a" if row["mean_rate_rps"] is None else f"{row['mean_rate_rps']:.2f}/s"
        trace_table.add_row(name, f"{row['requests']:,}", f"{span / 60:.1f} min", rate, description)
    _emit(fmt, rows + trace_rows, [lengths_table, trace_table])


def policies(fmt: Format = "table") -> None:
    """List the batching policies and their parameters with defaults."""
    rows = []
    table = Table(title="Policies (--policies NAME[:KEY=VALUE...])")
    table.add_column("name", no_wrap=True)
    table.add_column("parameters (defaults)", no_wrap=True)
    table.add_column("description", ratio=1)
    for name in policy_registry.available():
        cls = type(policy_registry.get(name))
        signature = inspect.signature(cls.__init__)
        params = {p: signature.parameters[p].default for p in policy_registry.parameters(name)}
        doc = (sys.modules[cls.__module__].__doc__ or "").strip().split("\n\n")[0].replace("``", "")
        doc = " ".join(doc.split())
        rows.append({"name": name, "parameters": params, "description": doc})
        table.add_row(name, "\n".join(f"{k}={v}" for k, v in params.items()) or "-", doc)
    _emit(fmt, rows, [table])


def register(app: typer.Typer) -> None:
    """Add ``models``, ``hardware``, ``datasets`` and ``policies`` to ``app``."""
    app.command("models")(models)
    app.command("hardware")(hardware)
    app.command("datasets")(datasets)
    app.command("policies")(policies)
