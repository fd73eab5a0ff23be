"""``ServerProcess``: ``ebatch serve`` in a subprocess on 127.0.0.1 for benchmarks; always stopped.

A separate process, so the server's engine thread and event loop do not share a GIL with the load
generator. :meth:`ServerProcess.cpu` sums the scheduler statistics of the server's threads
(``/proc/PID/task/*/schedstat``: seconds on a CPU and seconds waiting for one while runnable), from which
:func:`cpu_share` gives the share of a core they got while they had work: 1.0 on a machine of its own,
less where other processes compete for the cores. The engine thread does nearly all of the server's
work, so this is the share its steps got.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ThreadCpu", "ServerProcess", "cpu_share", "free_port"]

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ThreadCpu:
    """Cumulative seconds a process's threads ran on a CPU and waited, runnable, for one."""

    run_s: float
    wait_s: float


def cpu_share(before: ThreadCpu, after: ThreadCpu) -> float:
    """The share of a core the threads got while runnable between two readings (1.0 if they never ran)."""
    run_s, wait_s = after.run_s - before.run_s, after.wait_s - before.wait_s
    return run_s / (run_s + wait_s) if run_s > 0 else 1.0


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

    def cpu(self) -> ThreadCpu | None:
        """The server's threads' scheduler statistics, summed; None where /proc does not give them."""
        run_s = wait_s = 0.0
        try:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                run_ns, wait_ns, _ = (task / "schedstat").read_text().split()
                run_s, wait_s = run_s + int(run_ns) / 1e9, wait_s + int(wait_ns) / 1e9
        except (OSError, ValueError):
            return None
        return ThreadCpu(run_s, wait_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()
