"""The HTTP front end: a FastAPI app over one :class:`~ebatch.serve.service.ModelService`.

It only decodes, validates and enqueues (``engine.submit``), then awaits the request's future on the event
loop; it never touches a policy or an executor. Endpoints (docs/serving.md has examples):

- ``POST /v1/models/{name}/infer``: body ``.npy`` or JSON ``[length, features]``; query ``outputs=all|last``
  and ``deadline_ms``; answers ``.npy`` if ``Accept: application/x-npy``, else JSON; headers
  ``X-Queue-Seconds`` and ``X-Compute-Seconds``, and with an energy meter ``X-Energy-Joules`` (the request's
  share of its steps' energy, :mod:`ebatch.serve.energy`) and ``X-Energy-Source`` (``rapl``, ``nvml`` or
  ``estimate``); the JSON body carries them as ``energy_j`` and ``energy_source``.
- ``GET /v1/models``: the served model's shapes and policy.
- WebSocket ``/v1/models/{name}/stream`` (:mod:`ebatch.serve.websocket`) and KServe v2
  (:mod:`ebatch.serve.kserve`): health, metadata, inference, sequences.
- ``GET /metrics``: Prometheus text (:mod:`ebatch.serve.metrics`).

Life cycle: :func:`create_app` builds the service (the engine thread starts); the app's lifespan evicts
idle streams every so often and, at shutdown, drains the engine (``drain_timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ebatch.runtime.weights import RNNWeights
from ebatch.serve import kserve, websocket
from ebatch.serve.answers import (
    HTTPError,
    check_request,
    energy_fields,
    error_response,
    parse_deadline,
    read_body,
    settle,
    wait_result,
)
from ebatch.serve.codec import NPY, decode_native, encode_npy
from ebatch.serve.metrics import CONTENT_TYPE_LATEST, ServeMetrics
from ebatch.serve.service import ModelService, ServeConfig
from ebatch.serve.streams import StreamRegistry

__all__ = ["COMPUTE_HEADER", "ENERGY_HEADER", "ENERGY_SOURCE_HEADER", "QUEUE_HEADER", "create_app"]

QUEUE_HEADER, COMPUTE_HEADER = "X-Queue-Seconds", "X-Compute-Seconds"
ENERGY_HEADER, ENERGY_SOURCE_HEADER = "X-Energy-Joules", "X-Energy-Source"


def create_app(config: ServeConfig, weights: RNNWeights | None = None) -> FastAPI:
    """The app serving ``config.model`` (or ``weights``, e.g. from a ``torch.nn`` module in tests).

    ``app.state.service``, ``app.state.metrics`` and ``app.state.streams`` are what the endpoints share.
    Raises ``ValueError`` for a model, policy or option it cannot serve.
    """
    metrics = ServeMetrics()
    service = ModelService(config, listener=metrics, weights=weights)
    streams = StreamRegistry(service.engine, config.max_idle_s, config.max_streams)
    metrics.watch(service.engine, lambda: len(streams))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        sweeper = asyncio.ensure_future(_evict_idle(streams, min(1.0, config.max_idle_s / 4)))
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.to_thread(service.close)

    app = FastAPI(title="ebatch", summary=f"E-BATCH serving {service.name}", lifespan=lifespan)
    app.state.service, app.state.metrics, app.state.streams = service, metrics, streams

    @app.exception_handler(RequestValidationError)
    async def one_line_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("request",), "msg": "invalid"}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return error_response(HTTPError(422, f"{where}: {first.get('msg', 'invalid')}"), metrics)

    @app.post("/v1/models/{name}/infer")
    async def infer(name: str, request: Request, outputs: str = "all", deadline_ms: float | None = None) -> Response:
        async def run():
            check_request(service, name)
            if outputs not in ("all", "last"):
                raise HTTPError(422, f"outputs: must be 'all' or 'last', got {outputs!r}")
            deadline_s = parse_deadline(deadline_ms)
            body = await read_body(request, config.max_request_bytes)
            x = decode_native(body, request.headers.get("content-type", ""))
            return await wait_result(request, service, service.engine.submit(x, deadline_s=deadline_s))

        result = await settle(run(), metrics)
        if isinstance(result, Response):
            return result
        output = result.output if outputs == "all" else result.output[-1:]
        headers = {QUEUE_HEADER: f"{result.queue_s:.6f}", COMPUTE_HEADER: f"{result.compute_s:.6f}"}
        energy = energy_fields(service, result)
        if energy:
            headers |= {ENERGY_HEADER: f"{result.energy_j:.6g}", ENERGY_SOURCE_HEADER: energy["energy_source"]}
        if NPY in request.headers.get("accept", ""):
            return Response(encode_npy(output), media_type=NPY, headers=headers)
        body = {"output": output.tolist(), "queue_s": result.queue_s, "compute_s": result.compute_s} | energy
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json", headers=headers)

    @app.get("/v1/models")
    async def models() -> dict:
        return {"models": [service.describe()]}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(kserve.router(service, metrics, streams))
    app.include_router(websocket.router(service, metrics, streams))
    return app


async def _evict_idle(streams: StreamRegistry, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        streams.evict_idle()
