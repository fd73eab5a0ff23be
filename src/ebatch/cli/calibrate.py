"""``ebatch calibrate``: measure this machine's executor for a model and write a host hardware preset.

``ebatch calibrate --model lstm-2x512 --backend torch --threads 1 --out results/host.yaml`` times fused
steps over a grid of rows and columns (a few seconds), fits the host cost model
(:mod:`ebatch.hardware.host`) and writes the preset (without ``--out`` it prints it);
``ebatch compare --hardware results/host.yaml`` then simulates this machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def calibrate(
    model: Annotated[str, typer.Option("--model", help="Zoo model name, or gru-2x512 (ebatch bench's).")]
    = "lstm-2x512",
    backend: Annotated[str, typer.Option("--backend", help="Executor: compiled | torch | numpy.")] = "torch",
    threads: Annotated[int, typer.Option("--threads", help="torch threads (0: torch's default).")] = 1,
    out: Annotated[str | None, typer.Option("--out", help="Write the preset YAML here (else print it).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Measured passes over the grid.")] = 2,
    power_w: Annotated[float, typer.Option("--power-w", help="Assumed power for the energy *estimate*.")] = 15.0,
    device: Annotated[str | None, typer.Option("--device", help="cuda (or cuda:N) to calibrate the torch "
                                               "backend on a GPU; default: the CPU.")] = None,
) -> None:
    """Time the executor, fit step/segment/column/flop costs and write a hardware preset (kind: host)."""
    from ebatch.bench.runtime import bench_model
    from ebatch.experiments.study.calibrate import calibrate as run
    from ebatch.hardware.host import HostSpec, host_preset_text

    result = run(bench_model(model), backend, threads or None, repeats, power_w, device=device)
    for name in HostSpec.parameter_names():
        typer.echo(f"{name:>22} = {getattr(result.spec, name):.4g}")
    kinds = ", ".join(f"{kind} {ratio:.2f}" for kind, ratio in result.total_ratio_by_kind.items())
    fit = f"fit of {len(result.timings)} steps: relative RMS error {result.rel_rms_error:.1%}; fitted / measured " \
          f"time per kind of step: {kinds}"
    if out is None:
        typer.echo(f"{fit}; the preset (give --out FILE to write it):")
        typer.echo(host_preset_text(result.spec), nl=False)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(host_preset_text(result.spec))
    typer.echo(f"{fit}; wrote {path}")


def register(app: typer.Typer) -> None:
    """Add ``ebatch calibrate`` to ``app``."""
    app.command("calibrate")(calibrate)
