"""Running the app on uvicorn with a graceful drain on SIGTERM / SIGINT.

uvicorn's own handling closes the listening socket at once (new clients get "connection refused"). Here
the first signal instead starts a drain: readiness and new requests answer 503 while the socket stays
open, queued and in-flight requests finish (for up to ``--drain-timeout-s``; what is left is cancelled
and answered 503), then uvicorn stops and :func:`serve` returns, so the process exits 0. A second signal
stops at once.
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from prometheus_client import disable_created_metrics

from ebatch.runtime.weights import RNNWeights
from ebatch.serve.app import create_app
from ebatch.serve.service import ModelService, ServeConfig

__all__ = ["DrainingServer", "serve"]

log = logging.getLogger("ebatch.serve")


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first exit signal drains ``service`` before stopping."""

    def __init__(self, config: uvicorn.Config, service: ModelService) -> None:
        super().__init__(config)
        self.service = service
        self.drain_thread: threading.Thread | None = None

    def handle_exit(self, sig: int, frame) -> None:  # called by uvicorn's signal handler
        if self.drain_thread is not None:  # a second signal: stop now
            self.force_exit = True
            self.should_exit = True
            return
        self.drain()

    def drain(self) -> None:
        """Stop admitting, finish what was admitted (in a thread), then stop the server."""
        if self.drain_thread is not None:
            return
        self.service.start_drain()
        log.warning("draining: finishing %d admitted requests (up to %.3g s)", self.service.engine.in_flight,
                    self.service.config.drain_timeout_s)
        self.drain_thread = threading.Thread(target=self._finish, name="ebatch-drain", daemon=True)
        self.drain_thread.start()

    def _finish(self) -> None:
        self.service.close()
        self.should_exit = True


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          access_log: bool = False, sock: socket.socket | None = None) -> None:
    """Serve ``config`` until a signal (then drain) or :meth:`DrainingServer.drain`; returns when stopped."""
    disable_created_metrics()  # no *_created series: scrapes stay short
    server = build_server(config, host, port, log_level, access_log)
    server.run(sockets=[sock] if sock is not None else None)


def build_server(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                 access_log: bool = False, weights: RNNWeights | None = None) -> DrainingServer:
    """The server, not yet running (``server.run()`` blocks; tests run it in a thread)."""
    app = create_app(config, weights)
    choice = app.state.service.energy
    log.info("energy: %s%s", choice.source, "".join(f"; passed over: {note}" for note in choice.notes))
    uv_config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                               lifespan="on", timeout_graceful_shutdown=config.drain_timeout_s + 5)
    return DrainingServer(uv_config, app.state.service)
