"""``ebatch serve MODEL``: E-BATCH as a live inference server (HTTP, KServe v2, WebSocket streams, metrics).

Needs the ``serve`` extra (fastapi, uvicorn, prometheus-client); the web framework is imported only when
the command runs. docs/serving.md describes the endpoints, errors, drain and metrics.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]

_MODEL_HELP = ("A zoo name (random weights from --seed), an .onnx file with LSTM/GRU nodes (the onnx extra), "
               "or a .safetensors file: a whole model saved with its description, or a torch.nn.LSTM/GRU "
               "state_dict (with --cell).")


def serve(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP)],
    name: Annotated[str, typer.Option("--name", help="Model name in URLs (default: the zoo name or file stem).")]
    = "",
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    cell: Annotated[str | None, typer.Option("--cell", help="Cell type of a bare state_dict safetensors file: "
                                            "lstm | gru (a whole-model file carries its own description).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of a zoo model's random weights.")] = 0,
    policy: Annotated[str, typer.Option("--policy", help="Batching policy (ebatch policies lists them), with "
                                        "its parameters as NAME:KEY=VALUE[:KEY=VALUE], e.g. "
                                        "padding:max_wait_s=0.01:sort_window=64.")] = "ebatch",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Slots B of a step.")] = 16,
    timesteps: Annotated[str, typer.Option("--timesteps", "-t", help="E-BATCH window length T, or 'auto'.")]
    = "16",
    latency_slo_s: Annotated[float, typer.Option("--latency-slo-s", help="With --timesteps auto: the latency "
                                                 "target that caps T (0: none).")] = 0.0,
    backend: Annotated[str, typer.Option("--backend", help="Executor: numpy | torch.")] = "numpy",
    threads: Annotated[int, typer.Option("--threads", help="torch threads (0: torch's default).")] = 0,
    device: Annotated[str | None, typer.Option("--device", help="With --backend torch: cpu (default) or cuda[:N]; "
                                               "--energy auto then reads the GPU's NVML counter.")] = None,
    max_queued_requests: Annotated[int, typer.Option("--max-queued-requests", help="Requests admitted but not "
                                                     "started before new ones get 429.")] = 1024,
    max_queued_cells: Annotated[int, typer.Option("--max-queued-cells", help="Time-steps of queued requests "
                                                  "(work) before new ones get 429.")] = 1_000_000,
    max_request_bytes: Annotated[int, typer.Option("--max-request-bytes", help="Largest request body (413 "
                                                   "above).")] = 16 * 1024 * 1024,
    drain_timeout_s: Annotated[float, typer.Option("--drain-timeout-s", help="On SIGTERM/SIGINT: how long "
                                                   "admitted requests may take to finish.")] = 30.0,
    max_idle_s: Annotated[float, typer.Option("--max-idle-s", help="A stream idle this long is evicted.")] = 60.0,
    max_streams: Annotated[int, typer.Option("--max-streams", help="Open streams before new ones get 429.")]
    = 1024,
    energy: Annotated[str, typer.Option("--energy", help="Energy meter: auto (NVML on CUDA, else RAPL, else an "
                                        "estimate) | rapl | nvml | estimate | off.")] = "auto",
    hardware: Annotated[str | None, typer.Option("--hardware", help="Host preset (kind: host, e.g. h200 or one "
                                                 "from ebatch calibrate) whose power_w prices the estimate.")]
    = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (slower).")] = False,
) -> None:
    """Serve MODEL over HTTP: POST /v1/models/NAME/infer, KServe v2, WebSocket streams, GET /metrics."""
    try:
        from ebatch.serve.server import serve as run_server
    except ImportError as exc:
        raise ValueError(f"serve: needs the 'serve' extra ({exc.name} is missing): pip install 'ebatch[serve]'") \
            from None
    from ebatch.experiments.study.compare import parse_policy
    from ebatch.serve.service import ServeConfig

    if timesteps == "auto":
        t: int | str = "auto"
    else:
        try:
            t = int(timesteps)
        except ValueError:
            raise ValueError(f"timesteps: an integer >= 1 or 'auto', got {timesteps!r}") from None
    policy_name, policy_params = parse_policy(policy, "serve")
    config = ServeConfig(
        model=model, name=name or None, cell=cell, seed=seed, policy=policy_name, policy_params=policy_params,
        batch_size=batch_size, timesteps=t,
        latency_slo_s=latency_slo_s or None, backend=backend, device=device, threads=threads or None,
        max_queued_requests=max_queued_requests, max_queued_cells=max_queued_cells,
        max_request_bytes=max_request_bytes, drain_timeout_s=drain_timeout_s, max_idle_s=max_idle_s,
        max_streams=max_streams, energy=energy, hardware=hardware,
    )
    run_server(config, host=host, port=port, log_level=log_level, access_log=access_log)


def register(app: typer.Typer) -> None:
    """Add ``ebatch serve`` to ``app``."""
    app.command("serve")(serve)
