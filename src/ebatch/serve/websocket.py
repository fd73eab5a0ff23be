"""WebSocket streams: ``/v1/models/{name}/stream``, one stream per connection.

Protocol: each message from the client is one chunk ``[length, features]``, binary (``.npy``) or text
JSON (``[[...]]`` or ``{"input": [[...]]}``); the server answers each chunk in order with its outputs,
binary ``.npy`` for a binary chunk, else JSON ``{"output": [[...]], "queue_s", "compute_s"}`` (with an energy
meter also ``"energy_j"``, the chunk's share of its steps' energy, and ``"energy_source"``). A bad or
refused chunk is answered with JSON ``{"error": "...", "status": 422|429|...}`` and leaves the stream's
state as it was. The text message
``{"end": true}`` (or closing the socket) ends the stream. A stream idle for more than ``--max-idle-s``
gets ``{"error": "stream: idle ...", "status": 408}`` and the socket closes with code 4408. A model with
a bidirectional layer answers ``{"error": ..., "status": 409}`` and closes with code 4409.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ebatch.serve.answers import HTTPError, as_http_error, check_request, energy_fields
from ebatch.serve.codec import decode_native, encode_npy
from ebatch.serve.metrics import ServeMetrics
from ebatch.serve.service import ModelService
from ebatch.serve.streams import StreamError, StreamRegistry

__all__ = ["router"]

IDLE_CLOSE_CODE = 4408


def router(service: ModelService, metrics: ServeMetrics, streams: StreamRegistry) -> APIRouter:
    api = APIRouter()

    @api.websocket("/v1/models/{name}/stream")
    async def stream(ws: WebSocket, name: str) -> None:
        await ws.accept()
        stream_id = f"ws-{uuid.uuid4().hex}"
        try:
            check_request(service, name)
            streams.open(stream_id)
        except (HTTPError, StreamError) as exc:
            error = as_http_error(exc)
            await ws.send_json({"error": str(error), "status": error.status})
            await ws.close(code=4000 + error.status)
            return
        try:
            await _serve_chunks(ws, service, metrics, streams, stream_id)
        except WebSocketDisconnect:
            pass
        finally:
            streams.close(stream_id)

    return api


async def _serve_chunks(ws: WebSocket, service: ModelService, metrics: ServeMetrics, streams: StreamRegistry,
                        stream_id: str) -> None:
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), timeout=streams.max_idle_s)
        except asyncio.TimeoutError:
            await ws.send_json({"error": streams.idle_message(), "status": 408})
            await ws.close(code=IDLE_CLOSE_CODE, reason="idle")
            return
        if message["type"] == "websocket.disconnect":
            return
        binary = message.get("bytes") is not None
        try:
            if not binary and _is_end(message.get("text")):
                await ws.close(code=1000)
                return
            if not service.ready:
                raise HTTPError(503, "server: draining (shutting down); the stream ends here")
            if binary:
                x = decode_native(message["bytes"], "application/x-npy")
            else:
                x = decode_native((message.get("text") or "").encode(), "application/json")
            result = await streams.append(stream_id, x)
        except StreamError as exc:  # evicted meanwhile: say why and end
            await ws.send_json({"error": str(exc), "status": exc.status})
            await ws.close(code=IDLE_CLOSE_CODE if exc.status == 404 else 4000 + exc.status)
            return
        except Exception as exc:
            error = as_http_error(exc)
            metrics.answered(error.outcome)
            await ws.send_json({"error": " ".join(str(error).split()), "status": error.status})
            continue
        metrics.answered("ok", result)
        if binary:
            await ws.send_bytes(encode_npy(result.output))
        else:
            answer = {"output": result.output.tolist(), "queue_s": result.queue_s, "compute_s": result.compute_s}
            await ws.send_text(json.dumps(answer | energy_fields(service, result), separators=(",", ":")))


def _is_end(text: str | None) -> bool:
    if not text or "end" not in text:
        return False
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("end") is True
