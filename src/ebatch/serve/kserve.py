"""The KServe v2 HTTP protocol (what ``tritonclient.http`` and KServe clients speak) over the service.

- ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready`` (503 while draining), ``/v2/models/{name}``
  (metadata: input ``input`` FP32 ``[-1, features]``, output ``output`` FP32 ``[-1, output features]``),
  ``/v2/models/{name}/ready``.
- ``POST /v2/models/{name}/infer``: JSON or the binary-tensor extension (:mod:`ebatch.serve.codec`).
  Request parameters: ``sequence_id`` (non-zero), ``sequence_start``, ``sequence_end`` append the input
  to a server-held stream (:mod:`ebatch.serve.streams`); ``timeout`` (microseconds, Triton's) is the
  deadline. The response's ``parameters`` carry ``queue_s`` and ``compute_s`` (and, with an energy meter,
  ``energy_j`` and ``energy_source``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ebatch import __version__
from ebatch.serve.answers import (
    HTTPError,
    check_request,
    error_response,
    read_body,
    settle,
    wait_result,
)
from ebatch.serve.codec import HEADER_LENGTH, decode_v2, encode_v2
from ebatch.serve.metrics import ServeMetrics
from ebatch.serve.service import ModelService
from ebatch.serve.streams import StreamRegistry

__all__ = ["router"]


def router(service: ModelService, metrics: ServeMetrics, streams: StreamRegistry) -> APIRouter:
    api = APIRouter(prefix="/v2")

    @api.get("")
    async def server_metadata() -> dict:
        return {"name": "ebatch", "version": __version__, "extensions": ["binary_tensor_data", "sequence"]}

    @api.get("/health/live")
    async def live() -> dict:
        return {"live": True}

    @api.get("/health/ready")
    async def ready() -> Response:
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @api.get("/models/{name}")
    async def model_metadata(name: str) -> Response:
        if name != service.name:
            return error_response(HTTPError(404, f"model: unknown model {name!r}; this server serves "
                                                 f"{service.name!r}"))
        return JSONResponse({
            "name": service.name, "versions": ["1"], "platform": f"ebatch-{service.weights.cell}",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, service.input_size]}],
            "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, service.output_size]}],
        })

    @api.get("/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        ok = name == service.name and service.ready
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503 if name == service.name
                            else 404)

    @api.post("/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        decoded = None

        async def run():
            nonlocal decoded
            check_request(service, name)
            body = await read_body(request, service.config.max_request_bytes)
            decoded = decode_v2(body, request.headers.get(HEADER_LENGTH))
            params = decoded.parameters
            deadline_s = _deadline_s(params.get("timeout"))
            sequence = params.get("sequence_id", 0)
            if sequence not in (0, "", None):
                stream_id = str(sequence)
                if params.get("sequence_start", False):
                    streams.open(stream_id)
                result = await streams.append(stream_id, decoded.array, deadline_s)
                if params.get("sequence_end", False):
                    streams.close(stream_id)
                return result
            future = service.engine.submit(decoded.array, deadline_s=deadline_s)
            return await wait_result(request, service, future)

        result = await settle(run(), metrics)
        if isinstance(result, Response):
            return result
        parameters = {"queue_s": result.queue_s, "compute_s": result.compute_s}
        if result.energy_j is not None:
            parameters |= {"energy_j": result.energy_j, "energy_source": service.energy.meter.kind}
        content, headers = encode_v2(service.name, result.output, decoded.request_id, decoded.binary_output,
                                     parameters)
        return Response(content, headers=headers)

    return api


def _deadline_s(timeout_us) -> float | None:
    if timeout_us in (None, 0):
        return None
    if isinstance(timeout_us, bool) or not isinstance(timeout_us, (int, float)) or not timeout_us > 0:
        raise HTTPError(422, f"parameters.timeout: must be microseconds > 0, got {timeout_us!r}")
    return timeout_us / 1e6
