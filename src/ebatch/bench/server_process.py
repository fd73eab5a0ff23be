"""``ServerProcess``: ``ebatch serve`` in a subprocess on 127.0.0.1 for benchmarks; always stopped.

A separate process, so the server's engine thread and event loop do not share a GIL with the load
generator. :meth:`ServerProcess.engine_time` reads the engine's time in steps from its metrics (wall clock
and the worker thread's CPU time), from which :func:`core_share` gives the share of a core the steps got
between two readings: 1.0 on a machine of its own, less where other processes compete for the cores or
the server's event loop holds the GIL while a step waits for it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EngineTime", "ServerProcess", "core_share", "free_port"]

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class EngineTime:
    """Cumulative seconds the server's engine spent in steps: on the wall clock and in its thread's CPU time."""

    wall_s: float
    cpu_s: float


def core_share(before: EngineTime, after: EngineTime) -> float:
    """The share of a core the engine's steps got between two readings (1.0 if it ran no step)."""
    wall_s, cpu_s = after.wall_s - before.wall_s, after.cpu_s - before.cpu_s
    return min(1.0, cpu_s / wall_s) if wall_s > 0 else 1.0


class ServerProcess:
    """``ebatch serve MODEL --port P ARGS`` (torch backend, 1 thread, seed 0 unless ``args`` say otherwise);
    a context manager that waits until it is ready (``RuntimeError`` with its stderr if it does not start
    within ``start_timeout_s``) and kills it on exit."""

    def __init__(self, model: str, args: list[str] | tuple[str, ...] = (), start_timeout_s: float = 120.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = Path(model).stem if model.endswith((".onnx", ".safetensors")) else model
        self.start_timeout_s = start_timeout_s
        defaults = ["--backend", "torch", "--threads", "1", "--seed", "0", "--log-level", "warning"]
        command = [sys.executable, "-c", "from ebatch.cli import main; main()", "serve", model,
                   "--port", str(self.port), *defaults, *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> ServerProcess:
        import httpx

        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.process.stderr.read().decode()[-2000:]}")

    def metric(self, name: str) -> float:
        """A metric's value from ``/metrics`` (NaN when absent)."""
        import httpx

        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return float("nan")

    def engine_time(self) -> EngineTime:
        """The engine's cumulative time in steps (``ebatch_engine_step_seconds_total``)."""
        return EngineTime(self.metric('ebatch_engine_step_seconds_total{clock="wall"}'),
                          self.metric('ebatch_engine_step_seconds_total{clock="cpu"}'))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
