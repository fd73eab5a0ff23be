"""What every endpoint shares: reading a bounded body, waiting for the engine, and errors as HTTP answers.

Errors are one-line JSON ``{"error": "<field>: <what is wrong and how to fix it>"}`` (the KServe v2 error
format too), with ``retry_after_s`` and a ``Retry-After`` header (whole seconds, rounded up) on a 429.
Statuses: 400 unreadable body, 413 body over ``--max-request-bytes``, 415 unsupported content type, 422
a tensor that is not a sequence of finite numbers, 404 unknown model or stream, 409 streaming a
bidirectional model, 429 busy, 503 draining, 504 deadline passed while queued, 500 an executor fault.
Each answer is counted once in the metrics by outcome.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from concurrent.futures import Future

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ebatch.serve.codec import BadRequest
from ebatch.serve.metrics import ServeMetrics
from ebatch.serve.outcomes import Cancelled, DeadlineExceeded, InferenceResult, Rejected
from ebatch.serve.service import ModelService
from ebatch.serve.streams import StreamError

__all__ = [
    "ClientGone", "HTTPError", "as_http_error", "check_request", "energy_fields", "error_response", "parse_deadline",
    "read_body", "settle", "wait_result",
]

_OUTCOME = {400: "invalid", 404: "invalid", 409: "invalid", 415: "invalid", 422: "invalid", 413: "too_large",
            429: "busy", 503: "unavailable", 504: "deadline", 499: "cancelled"}


class HTTPError(Exception):
    """An answer other than 200: ``status``, a one-line message, and for 429 the seconds to wait."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after_s = status, retry_after_s

    @property
    def outcome(self) -> str:
        return _OUTCOME.get(self.status, "error")


class ClientGone(Exception):
    """The client disconnected before its answer; the request was cancelled in the engine."""


def energy_fields(service: ModelService, result: InferenceResult) -> dict:
    """A JSON answer's ``energy_j`` (the request's share of its steps' energy) and ``energy_source``, where the
    server has an energy meter; else nothing."""
    if result.energy_j is None:
        return {}
    return {"energy_j": result.energy_j, "energy_source": service.energy.meter.kind}


def error_response(error: HTTPError, metrics: ServeMetrics | None = None) -> JSONResponse:
    if metrics is not None:
        metrics.answered(error.outcome)
    body: dict = {"error": " ".join(str(error).split())}
    headers = {}
    if error.retry_after_s is not None:
        body["retry_after_s"] = round(error.retry_after_s, 4)
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return JSONResponse(body, status_code=error.status, headers=headers)


def check_request(service: ModelService, name: str) -> None:
    """404 for another model's name, 503 while draining."""
    if name != service.name:
        raise HTTPError(404, f"model: unknown model {name!r}; this server serves {service.name!r}")
    if not service.ready:
        raise HTTPError(503, "server: draining (shutting down); send new requests elsewhere")


def as_http_error(exc: BaseException) -> HTTPError:
    """The answer for an error raised while decoding, admitting or running a request."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, BadRequest):
        return HTTPError(exc.status, str(exc))
    if isinstance(exc, StreamError):
        return HTTPError(exc.status, str(exc))
    if isinstance(exc, Rejected):
        if exc.reason == "input":
            return HTTPError(422, str(exc))
        if exc.reason == "closed":
            return HTTPError(503, "server: draining (shutting down); send new requests elsewhere")
        return HTTPError(429, str(exc), exc.retry_after_s if exc.retry_after_s is not None else 1.0)
    if isinstance(exc, DeadlineExceeded):
        return HTTPError(504, f"deadline_ms: {exc}")
    if isinstance(exc, Cancelled):
        return HTTPError(503, "server: the request was cancelled while the server shut down")
    return HTTPError(500, f"server: the executor failed on this request ({type(exc).__name__}: {exc})")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, or a 413 as soon as it is known to exceed ``max_bytes`` (by header or while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPError(413, f"body: {declared} bytes exceed --max-request-bytes={max_bytes}; split the sequence "
                             "or stream it in chunks")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPError(413, f"body: over --max-request-bytes={max_bytes}; split the sequence or stream it")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_deadline(deadline_ms: float | None) -> float | None:
    """``deadline_ms`` (query) as seconds; a 422 when it is not a number > 0."""
    if deadline_ms is None:
        return None
    if not (isinstance(deadline_ms, (int, float)) and math.isfinite(deadline_ms) and deadline_ms > 0):
        raise HTTPError(422, f"deadline_ms: must be a number of milliseconds > 0, got {deadline_ms!r}")
    return deadline_ms / 1000.0


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def wait_result(request: Request, service: ModelService, future: Future) -> InferenceResult:
    """The request's result; if the client disconnects first, cancel it in the engine and raise
    :class:`ClientGone`. Raises what the future raises otherwise."""
    answer = asyncio.wrap_future(future)
    if future.done():
        return await answer
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({answer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        service.engine.cancel(future)
        raise
    finally:
        watcher.cancel()
    if not answer.done():
        service.engine.cancel(future)
        answer.cancel()
        raise ClientGone()
    return answer.result()



async def settle(work: Awaitable[InferenceResult], metrics: ServeMetrics) -> InferenceResult | Response:
    """Await one request's result and count its outcome; an error becomes its one HTTP answer (499 when the
    client went away), returned instead of the result."""
    try:
        result = await work
    except ClientGone:
        metrics.answered("cancelled")
        return Response(status_code=499)
    except Exception as exc:
        return error_response(as_http_error(exc), metrics)
    metrics.answered("ok", result)
    return result
