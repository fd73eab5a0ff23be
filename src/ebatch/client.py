"""Clients of ``ebatch serve``: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio), on httpx.

    from ebatch.client import Client
    with Client("http://127.0.0.1:8000") as client:          # the model: the server's only one
        y = client.infer(x)                                   # x: [length, features] -> [length, outputs]
        ys = client.infer_many(xs, concurrency=16)
        with client.stream() as stream:                       # server-held state between chunks
            y1 = stream.send(x[:100]); y2 = stream.send(x[100:])   # == client.infer(x) split in two

Requests go as ``.npy`` (``/v1``; streams: KServe v2 with the binary-tensor extension). A 429 is retried
after the server's ``retry_after_s`` (at most ``max_retries`` times, each wait capped by
``max_retry_wait_s``); then, and for every other error, :class:`ServerError` with the status and the
server's one-line message. Needs the ``serve`` extra (httpx).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

try:
    import httpx
except ImportError:  # pragma: no cover - httpx is in the 'serve' and 'test' extras
    raise ImportError("ebatch.client needs httpx: pip install 'ebatch[serve]'") from None

from ebatch.serve.codec import HEADER_LENGTH, NPY, encode_npy, parse_v2_response

__all__ = ["AsyncClient", "AsyncStream", "Client", "InferAnswer", "ServerError", "Stream"]



def _new_sequence_id() -> int:
    return secrets.randbits(62) + 1  # unique among the server's streams with overwhelming odds


class ServerError(Exception):
    """The server answered ``status`` (not 200) with ``message``; ``retry_after_s`` for a 429."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.retry_after_s = status, message, retry_after_s


@dataclass(frozen=True)
class InferAnswer:
    """One answer: the output, the server's queue and compute seconds, and its energy (``X-Energy-Joules``,
    ``None`` when the server sends none) with the meter's kind (``rapl``, ``nvml``, ``estimate``)."""

    output: np.ndarray
    queue_s: float
    compute_s: float
    energy_j: float | None = None
    energy_source: str | None = None


def _error(response: httpx.Response) -> ServerError:
    try:
        body = response.json()
        message, retry = body.get("error", response.text), body.get("retry_after_s")
    except (ValueError, AttributeError):
        message, retry = response.text.strip() or response.reason_phrase, None
    if retry is None and "retry-after" in response.headers:
        try:
            retry = float(response.headers["retry-after"])
        except ValueError:
            retry = None
    return ServerError(response.status_code, message, retry)


def _answer(response: httpx.Response) -> InferAnswer:
    energy = response.headers.get("x-energy-joules")
    return InferAnswer(np.load(io.BytesIO(response.content), allow_pickle=False),
                       float(response.headers.get("x-queue-seconds", "nan")),
                       float(response.headers.get("x-compute-seconds", "nan")),
                       None if energy is None else float(energy), response.headers.get("x-energy-source"))


def _v2_body(x: np.ndarray, sequence_id: int, start: bool, end: bool) -> tuple[bytes, dict[str, str]]:
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = json.dumps({
        "inputs": [{"name": "input", "shape": list(np.shape(x)), "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)}}],
        "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
        "parameters": {"sequence_id": sequence_id, "sequence_start": start, "sequence_end": end},
    }).encode()
    return header + raw, {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


class _Base:
    def __init__(self, url: str, model: str | None, max_retries: int, max_retry_wait_s: float) -> None:
        self.url, self.model = url.rstrip("/"), model
        self.max_retries, self.max_retry_wait_s = max_retries, max_retry_wait_s

    def _infer_request(self, x, outputs: str, deadline_s: float | None) -> tuple[str, dict, bytes, dict]:
        params = {"outputs": outputs} | ({"deadline_ms": deadline_s * 1000} if deadline_s is not None else {})
        headers = {"content-type": NPY, "accept": NPY}
        return f"/v1/models/{self.model}/infer", params, encode_npy(np.asarray(x, dtype=np.float32)), headers

    def _retry_wait_s(self, error: ServerError, attempt: int) -> float | None:
        if error.status != 429 or attempt >= self.max_retries:
            return None
        return min(self.max_retry_wait_s, error.retry_after_s if error.retry_after_s is not None else 1.0)


class Client(_Base):
    """Blocking client (thread-safe). ``model``: the served model's name (default: asked from the server)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", model: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 5, max_retry_wait_s: float = 10.0, transport=None) -> None:
        super().__init__(url, model, max_retries, max_retry_wait_s)
        self.http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)
        if self.model is None:
            self.model = self._get("/v1/models").json()["models"][0]["name"]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str) -> httpx.Response:
        response = self.http.get(path)
        if response.status_code != 200:
            raise _error(response)
        return response

    def _post(self, path: str, **kwargs) -> httpx.Response:
        for attempt in itertools.count():
            response = self.http.post(path, **kwargs)
            if response.status_code == 200:
                return response
            error = _error(response)
            wait_s = self._retry_wait_s(error, attempt)
            if wait_s is None:
                raise error
            time.sleep(wait_s)
        raise AssertionError("unreachable")

    def ready(self) -> bool:
        return self.http.get("/v2/health/ready").status_code == 200

    def infer_answer(self, x, outputs: str = "all", deadline_s: float | None = None) -> InferAnswer:
        """The output of one sequence with the server's timings."""
        path, params, body, headers = self._infer_request(x, outputs, deadline_s)
        return _answer(self._post(path, params=params, content=body, headers=headers))

    def infer(self, x, outputs: str = "all", deadline_s: float | None = None) -> np.ndarray:
        """The output ``[length, output_size]`` (``outputs="last"``: ``[1, output_size]``) of one sequence."""
        return self.infer_answer(x, outputs, deadline_s).output

    def infer_many(self, xs, concurrency: int = 8, outputs: str = "all") -> list[np.ndarray]:
        """Outputs of many sequences, in order, with up to ``concurrency`` requests in flight."""
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(lambda x: self.infer(x, outputs), xs))

    def stream(self) -> Stream:
        """A new stream; each :meth:`Stream.send` appends a chunk and returns its outputs."""
        return Stream(self)


class Stream:
    """Chunks of one sequence, state kept by the server (KServe v2 sequence parameters); a context manager."""

    def __init__(self, client: Client) -> None:
        self.client, self.sequence_id, self.started, self.ended = client, _new_sequence_id(), False, False

    def send(self, chunk, end: bool = False) -> np.ndarray:
        """Append ``chunk`` ``[length, features]``; its outputs. ``end=True`` closes the stream after it."""
        body, headers = _v2_body(np.asarray(chunk, dtype=np.float32), self.sequence_id, not self.started, end)
        response = self.client._post(f"/v2/models/{self.client.model}/infer", content=body, headers=headers)
        self.started, self.ended = True, end
        return parse_v2_response(response.content, response.headers.get(HEADER_LENGTH)).copy()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc) -> None:
        """Ending needs a chunk; a stream not ended by ``send(..., end=True)`` is evicted when idle."""


class AsyncClient(_Base):
    """The asyncio client; same methods as :class:`Client`, awaited. Build it with ``await AsyncClient.open()``
    or give ``model``."""

    def __init__(self, url: str = "http://127.0.0.1:8000", model: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 5, max_retry_wait_s: float = 10.0, transport=None) -> None:
        super().__init__(url, model, max_retries, max_retry_wait_s)
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        if self.model is None:
            response = await self.http.get("/v1/models")
            if response.status_code != 200:
                raise _error(response)
            self.model = response.json()["models"][0]["name"]
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.aclose()

    async def _post(self, path: str, **kwargs) -> httpx.Response:
        for attempt in itertools.count():
            response = await self.http.post(path, **kwargs)
            if response.status_code == 200:
                return response
            error = _error(response)
            wait_s = self._retry_wait_s(error, attempt)
            if wait_s is None:
                raise error
            await asyncio.sleep(wait_s)
        raise AssertionError("unreachable")

    async def infer_answer(self, x, outputs: str = "all", deadline_s: float | None = None) -> InferAnswer:
        path, params, body, headers = self._infer_request(x, outputs, deadline_s)
        return _answer(await self._post(path, params=params, content=body, headers=headers))

    async def infer(self, x, outputs: str = "all", deadline_s: float | None = None) -> np.ndarray:
        return (await self.infer_answer(x, outputs, deadline_s)).output

    async def infer_many(self, xs, concurrency: int = 8, outputs: str = "all") -> list[np.ndarray]:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(x):
            async with gate:
                return await self.infer(x, outputs)

        return list(await asyncio.gather(*(one(x) for x in xs)))

    def stream(self) -> AsyncStream:
        return AsyncStream(self)


class AsyncStream:
    """:class:`Stream` for the :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self.client, self.sequence_id, self.started = client, _new_sequence_id(), False

    async def send(self, chunk, end: bool = False) -> np.ndarray:
        body, headers = _v2_body(np.asarray(chunk, dtype=np.float32), self.sequence_id, not self.started, end)
        response = await self.client._post(f"/v2/models/{self.client.model}/infer", content=body, headers=headers)
        self.started = True
        return parse_v2_response(response.content, response.headers.get(HEADER_LENGTH)).copy()
