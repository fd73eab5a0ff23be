"""The HTTP front end in process (ASGI): outputs equal torch.nn per sequence over the native API, every bad
input gets its status and a one-line JSON error without affecting other requests, 413/429/504/503,
client disconnects cancel the request, and /metrics counts each answer once."""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pytest

from servetools import metric_values, sequences, torch_lstm, torch_outputs


def make_app(**options):
    pytest.importorskip("fastapi")
    pytest.importorskip("torch")
    from ebatch.runtime import RNNWeights
    from ebatch.serve.app import create_app
    from ebatch.serve.service import ServeConfig

    module = torch_lstm()
    defaults = {"model": "torch", "name": "m", "batch_size": 4, "timesteps": 4}
    app = create_app(ServeConfig(**(defaults | options)), weights=RNNWeights.from_torch(module))
    return app, module


def npy(x) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x, allow_pickle=True)
    return buffer.getvalue()


def run(app, coroutine_fn):
    """Run ``coroutine_fn(client)`` against ``app`` with an httpx ASGI client; always close the service."""
    import httpx

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            return await coroutine_fn(client)

    try:
        return asyncio.run(main())
    finally:
        app.state.service.close()


def slow_steps(app, delay_s: float) -> None:
    """Make every engine step take at least ``delay_s`` (a test stand-in for a big model)."""
    executor = app.state.service.engine.executor
    execute = executor.execute

    def slow(step):
        time.sleep(delay_s)
        return execute(step)

    executor.execute = slow


def test_native_infer_matches_torch_per_sequence_in_json_and_npy():
    app, module = make_app()
    xs = sequences([5, 17, 1, 9, 30, 2], seed=1)
    want = torch_outputs(module, xs)

    async def go(client):
        async def one(i, x):
            if i % 2:
                r = await client.post("/v1/models/m/infer", content=npy(x),
                                      headers={"content-type": "application/x-npy", "accept": "application/x-npy"})
                return r, np.load(io.BytesIO(r.content), allow_pickle=False)
            r = await client.post("/v1/models/m/infer", json=x.tolist())
            return r, np.asarray(r.json()["output"], dtype=np.float32)

        answers = await asyncio.gather(*(one(i, x) for i, x in enumerate(xs)))
        last = await client.post("/v1/models/m/infer?outputs=last", json={"input": xs[4].tolist()})
        return answers, last

    answers, last = run(app, go)
    for (response, output), expected in zip(answers, want):
        assert response.status_code == 200
        assert float(response.headers["x-queue-seconds"]) >= 0 and float(response.headers["x-compute-seconds"]) >= 0
        np.testing.assert_allclose(output, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(last.json()["output"]), want[4][-1:], rtol=0, atol=1e-5)


BAD = {  # name: (content-type, body, status, words in the error)
    "features": ("application/json", json.dumps([[1.0] * 7]), 422, "features"),
    "rank": ("application/json", json.dumps([1.0] * 8), 422, "shape"),
    "empty": ("application/json", json.dumps([]), 422, "shape"),
    "empty-npy": ("application/x-npy", npy(np.zeros((0, 8), np.float32)), 422, "empty"),
    "nan": ("application/json", "[[NaN, 1, 1, 1, 1, 1, 1, 1]]", 422, "NaN"),
    "inf-npy": ("application/x-npy", npy(np.full((2, 8), np.inf, np.float32)), 422, "inf"),
    "strings": ("application/json", json.dumps([["a"] * 8]), 422, "numbers"),
    "ragged": ("application/json", json.dumps([[1.0] * 8, [1.0]]), 422, "rectangular"),
    "no-input-field": ("application/json", json.dumps({"x": [[1.0] * 8]}), 422, "input"),
    "bool-npy": ("application/x-npy", npy(np.ones((2, 8), bool)), 422, "dtype"),
    "object-npy": ("application/x-npy", npy(np.array([[object()] * 8])), 400, "allow_pickle"),
    "not-npy": ("application/x-npy", b"hello", 400, ".npy"),
    "not-json": ("application/json", b"{", 400, "JSON"),
    "content-type": ("text/csv", b"1,2", 415, "content-type"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_a_one_line_error_and_the_others_go_on(case):
    app, module = make_app()
    content_type, body, status, words = BAD[case]
    good = sequences([6], seed=2)[0]

    async def go(client):
        return await asyncio.gather(
            client.post("/v1/models/m/infer", content=body, headers={"content-type": content_type}),
            client.post("/v1/models/m/infer", json=good.tolist()),
        )

    bad, ok = run(app, go)
    assert bad.status_code == status, bad.text
    error = bad.json()["error"]
    assert "\n" not in error and words.lower() in error.lower(), error
    np.testing.assert_allclose(np.asarray(ok.json()["output"]), torch_outputs(module, [good])[0], atol=1e-5)


def test_query_and_model_errors():
    app, _ = make_app()
    x = sequences([3])[0].tolist()

    async def go(client):
        return [await client.post(path, json=x) for path in (
            "/v1/models/other/infer", "/v1/models/m/infer?outputs=first", "/v1/models/m/infer?deadline_ms=-1",
            "/v1/models/m/infer?deadline_ms=soon")]

    statuses = [(r.status_code, r.json()["error"].split(":")[0]) for r in run(app, go)]
    assert statuses == [(404, "model"), (422, "outputs"), (422, "deadline_ms"), (422, "deadline_ms")]


def test_body_over_the_limit_is_413_by_header_and_while_streaming():
    app, _ = make_app(max_request_bytes=1000)
    big = sequences([100])[0]

    async def go(client):
        headers = {"content-type": "application/x-npy"}
        declared = await client.post("/v1/models/m/infer", content=npy(big), headers=headers)

        async def chunks():
            for _ in range(10):
                yield b"x" * 200

        streamed = await client.post("/v1/models/m/infer", content=chunks(), headers=headers)
        small = await client.post("/v1/models/m/infer", json=big[:3].tolist())
        return declared, streamed, small

    declared, streamed, small = run(app, go)
    assert declared.status_code == 413 and "max-request-bytes" in declared.json()["error"]
    assert streamed.status_code == 413
    assert small.status_code == 200


def test_work_bound_answers_429_with_retry_after_and_deadline_passing_in_queue_504():
    app, module = make_app(policy="sequential", max_queued_cells=50)
    slow_steps(app, 0.15)
    xs = sequences([20, 20, 40, 3], seed=3)

    async def go(client):
        first = asyncio.ensure_future(client.post("/v1/models/m/infer", json=xs[0].tolist()))
        await asyncio.sleep(0.05)  # the first is running; the engine has not timed a step yet
        expiring = asyncio.ensure_future(client.post("/v1/models/m/infer?deadline_ms=30", json=xs[1].tolist()))
        await asyncio.sleep(0.01)
        over = await client.post("/v1/models/m/infer", json=xs[2].tolist())  # 20 + 40 time-steps > 50
        answers = [await first, await expiring, over]
        # the rate is known now: a deadline the queue cannot meet is refused at once
        hopeless = await client.post("/v1/models/m/infer?deadline_ms=1", json=xs[2].tolist())
        metrics = (await client.get("/metrics")).text
        return answers + [hopeless], metrics

    (first, expiring, over, hopeless), metrics = run(app, go)
    np.testing.assert_allclose(np.asarray(first.json()["output"]), torch_outputs(module, xs[:1])[0], atol=1e-5)
    assert expiring.status_code == 504 and "deadline" in expiring.json()["error"]
    assert over.status_code == 429 and "max_queued_cells" in over.json()["error"]
    assert int(over.headers["retry-after"]) >= 1 and over.json()["retry_after_s"] > 0
    assert hopeless.status_code == 429 and hopeless.json()["error"].startswith("deadline:")
    assert 'ebatch_requests_total{outcome="busy"} 2.0' in metrics
    assert 'ebatch_requests_total{outcome="deadline"} 1.0' in metrics
    assert 'ebatch_requests_total{outcome="ok"} 1.0' in metrics


def test_client_disconnect_cancels_the_request_and_no_one_else_is_affected():
    app, module = make_app(policy="sequential")
    slow_steps(app, 0.2)  # the request needs two steps (one per layer): 0.4 s
    xs = sequences([40, 5], seed=4)
    service = app.state.service
    sent: list[dict] = []

    async def disconnecting_request():
        body = json.dumps(xs[0].tolist()).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            if messages:
                return messages.pop()
            await asyncio.sleep(0.05)  # the client goes away while its request runs
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/models/m/infer", "raw_path": b"/v1/models/m/infer",
                 "query_string": b"", "headers": [(b"content-type", b"application/json")],
                 "client": ("127.0.0.1", 1), "server": ("test", 80)}
        await app(scope, receive, send)

    async def go(client):
        gone = asyncio.ensure_future(disconnecting_request())
        await asyncio.sleep(0.02)
        other = await client.post("/v1/models/m/infer", json=xs[1].tolist())
        await gone
        for _ in range(100):  # the engine drops the cancelled request at its next step boundary
            if service.engine.in_flight == 0:
                break
            await asyncio.sleep(0.02)
        return other, (await client.get("/metrics")).text

    other, metrics = run(app, go)
    np.testing.assert_allclose(np.asarray(other.json()["output"]), torch_outputs(module, xs[1:])[0], atol=1e-5)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [499]
    assert service.engine.in_flight == 0 and service.engine.executor.live_requests == 0
    assert 'ebatch_requests_total{outcome="cancelled"} 1.0' in metrics


def test_draining_refuses_new_requests_with_503_and_readiness_turns_503():
    app, _ = make_app()

    async def go(client):
        before = await client.get("/v2/health/ready")
        app.state.service.start_drain()
        return before, await client.get("/v2/health/ready"), await client.post("/v1/models/m/infer", json=[[0.0] * 8])

    before, after, refused = run(app, go)
    assert (before.status_code, after.status_code, refused.status_code) == (200, 503, 503)
    assert "draining" in refused.json()["error"]


def test_metrics_expose_cells_histograms_and_gauges_in_base_units():
    app, _ = make_app()

    async def go(client):
        await asyncio.gather(*(client.post("/v1/models/m/infer", json=x.tolist()) for x in sequences([3, 9, 4])))
        return (await client.get("/metrics")).text

    values = metric_values(run(app, go))
    assert values['ebatch_requests_total{outcome="ok"}'] == 3
    assert values["ebatch_useful_cells_total"] == (3 + 9 + 4) * 2  # two layers
    assert values["ebatch_padded_cells_total"] >= 0
    for name in ("ebatch_request_latency_seconds_count", "ebatch_queue_wait_seconds_count",
                 "ebatch_compute_seconds_count"):
        assert values[name] == 3
    assert values["ebatch_window_timesteps_count"] > 0
    assert values["ebatch_total_slots"] == 4 and values["ebatch_queued_requests"] == 0
    assert "ebatch_queued_cells" in values and "ebatch_active_slots" in values
    wall_s = values['ebatch_engine_step_seconds_total{clock="wall"}']
    cpu_s = values['ebatch_engine_step_seconds_total{clock="cpu"}']
    assert wall_s > 0 and 0 < cpu_s <= 1.05 * wall_s + 0.01  # a thread's CPU time cannot outrun the clock
    schedule_s = values['ebatch_engine_schedule_seconds_total{clock="wall"}']
    assert schedule_s > 0 and 0 <= values['ebatch_engine_schedule_seconds_total{clock="cpu"}'] <= schedule_s + 0.01
    assert values["ebatch_engine_idle_seconds_total"] > 0  # the worker waited before the requests came
