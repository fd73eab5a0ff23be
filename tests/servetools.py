"""Shared helpers of the serving tests: torch.nn references, a free port, and a uvicorn server in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import numpy as np


def torch_outputs(module, sequences) -> list[np.ndarray]:
    """``module(x)[0]`` for each sequence alone: the reference every served output must equal."""
    import torch

    with torch.inference_mode():
        return [module(torch.from_numpy(np.asarray(x, dtype=np.float32)))[0].numpy() for x in sequences]


def torch_lstm(input_size: int = 8, hidden: int = 16, layers: int = 2, bidirectional: bool = False, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.LSTM(input_size, hidden, num_layers=layers, bidirectional=bidirectional).eval()


def sequences(lengths, features: int = 8, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, features), dtype=np.float32) for n in lengths]


def metric_values(text: str) -> dict[str, float]:
    """Prometheus text as ``{'name{label="value",...}': value}``, labels sorted by name (prometheus-client's
    own parser, so label values may hold spaces)."""
    from prometheus_client.parser import text_string_to_metric_families

    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            values[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(config, weights=None, timeout_s: float = 20.0):
    """A real uvicorn server on 127.0.0.1 in a thread; yields ``(url, server)``; always stopped."""
    from ebatch.serve.server import build_server

    server = build_server(config, host="127.0.0.1", port=0, log_level="warning", weights=weights)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("live_server: uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
