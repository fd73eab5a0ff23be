"""ebatch.client against a scripted transport: a 429 is retried after the server's retry_after_s, other
errors raise ServerError with the status and the server's message; the answer's timings are read."""

from __future__ import annotations

import asyncio
import io
import time

import numpy as np
import pytest


def scripted(statuses):
    """An httpx transport answering the given statuses in turn (200: the input echoed as .npy)."""
    httpx = pytest.importorskip("httpx")
    calls = []

    def handle(request):
        status = statuses[min(len(calls), len(statuses) - 1)]
        calls.append((time.monotonic(), request.url.path))
        if status == 429:
            body = {"error": "queue: full", "retry_after_s": 0.05}
            return httpx.Response(429, json=body, headers={"Retry-After": "1"})
        if status != 200:
            return httpx.Response(status, json={"error": "input: has 3 features per time-step"})
        x = np.load(io.BytesIO(request.content), allow_pickle=False)
        buffer = io.BytesIO()
        np.save(buffer, x * 2)
        return httpx.Response(200, content=buffer.getvalue(), headers={
            "X-Queue-Seconds": "0.25", "X-Compute-Seconds": "0.5", "X-Energy-Joules": "1.5", "X-Energy-Source": "rapl"})

    return httpx.MockTransport(handle), calls


def test_429_is_retried_after_retry_after_then_answers():
    from ebatch.client import Client

    transport, calls = scripted([429, 429, 200])
    with Client("http://server", model="m", transport=transport) as client:
        answer = client.infer_answer(np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(answer.output, np.full((2, 3), 2.0))
    assert (answer.queue_s, answer.compute_s, answer.energy_j, answer.energy_source) == (0.25, 0.5, 1.5, "rapl")
    assert len(calls) == 3 and calls[-1][0] - calls[0][0] >= 0.09
    assert calls[0][1] == "/v1/models/m/infer"


def test_errors_raise_with_status_and_message_and_retries_are_bounded():
    from ebatch.client import Client, ServerError

    transport, calls = scripted([422])
    with Client("http://server", model="m", transport=transport) as client, pytest.raises(ServerError) as error:
        client.infer(np.ones((2, 3), np.float32))
    assert error.value.status == 422 and "features" in error.value.message and len(calls) == 1
    transport, calls = scripted([429])
    client = Client("http://server", model="m", transport=transport, max_retries=2)
    with client, pytest.raises(ServerError) as error:
        client.infer(np.ones((2, 3), np.float32))
    assert error.value.status == 429 and error.value.retry_after_s == 0.05 and len(calls) == 3


def test_async_client_retries_and_keeps_order():
    from ebatch.client import AsyncClient

    transport, calls = scripted([429, 200])
    xs = [np.full((i + 1, 3), i, np.float32) for i in range(5)]

    async def go():
        async with AsyncClient("http://server", model="m", transport=transport) as client:
            return await client.infer_many(xs, concurrency=2)

    for x, y in zip(xs, asyncio.run(go())):
        np.testing.assert_array_equal(y, x * 2)
    assert len(calls) == 6
