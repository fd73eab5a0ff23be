"""A real uvicorn server on 127.0.0.1: KServe v2 with tritonclient (JSON, binary tensors, sequences),
ebatch.client (infer, infer_many, streams, async), WebSocket streams equal to the whole sequence, idle
eviction, bidirectional refusal; and `ebatch serve` as a subprocess drained by SIGTERM with at least 50
requests in flight: every one answered once and correctly, readiness 503 meanwhile, exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from servetools import free_port, live_server, sequences, torch_lstm, torch_outputs


@pytest.fixture
def served():
    """(url, torch module) of a live server of a 2-layer torch.nn.LSTM; always shut down."""
    pytest.importorskip("fastapi")
    pytest.importorskip("torch")
    from ebatch.runtime import RNNWeights
    from ebatch.serve.service import ServeConfig

    module = torch_lstm(seed=5)
    config = ServeConfig(model="torch", name="m", batch_size=4, timesteps=4, max_idle_s=0.5)
    with live_server(config, RNNWeights.from_torch(module)) as (url, _):
        yield url, module


def test_tritonclient_json_binary_and_sequences_match_torch(served):
    http = pytest.importorskip("tritonclient.http")
    url, module = served
    client = http.InferenceServerClient(url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("m")
        meta = client.get_model_metadata("m")
        assert meta["inputs"][0]["shape"] == [-1, 8] and meta["outputs"][0]["shape"] == [-1, 16]
        xs = sequences([7, 1, 25], seed=6)
        want = torch_outputs(module, xs)
        for binary in (False, True):
            for x, expected in zip(xs, want):
                tensor = http.InferInput("input", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x, binary_data=binary)
                output = http.InferRequestedOutput("output", binary_data=binary)
                result = client.infer("m", [tensor], outputs=[output])
                np.testing.assert_allclose(result.as_numpy("output"), expected, rtol=0, atol=1e-5)
        whole = xs[2]
        chunks = [whole[:4], whole[4:5], whole[5:20], whole[20:]]
        got = []
        for i, chunk in enumerate(chunks):
            tensor = http.InferInput("input", list(chunk.shape), "FP32")
            tensor.set_data_from_numpy(chunk)
            result = client.infer("m", [tensor], sequence_id=42, sequence_start=i == 0,
                                  sequence_end=i == len(chunks) - 1)
            got.append(result.as_numpy("output"))
        np.testing.assert_allclose(np.concatenate(got), want[2], rtol=0, atol=1e-5)
        bad = http.InferInput("input", [2, 3], "FP32")
        bad.set_data_from_numpy(np.ones((2, 3), np.float32))
        with pytest.raises(Exception, match="features"):
            client.infer("m", [bad])
        with pytest.raises(Exception, match="not open"):
            client.infer("m", [tensor], sequence_id=43)
    finally:
        client.close()


def test_ebatch_client_infer_many_streams_and_async(served):
    from ebatch.client import AsyncClient, Client

    url, module = served
    xs = sequences([3, 12, 1, 30, 8, 5, 17], seed=7)
    want = torch_outputs(module, xs)
    with Client(url) as client:
        assert client.model == "m" and client.ready()
        answer = client.infer_answer(xs[0])
        np.testing.assert_allclose(answer.output, want[0], atol=1e-5)
        assert answer.queue_s >= 0 and answer.compute_s >= 0
        for got, expected in zip(client.infer_many(xs, concurrency=4), want):
            np.testing.assert_allclose(got, expected, atol=1e-5)
        np.testing.assert_allclose(client.infer(xs[3], outputs="last"), want[3][-1:], atol=1e-5)
        with client.stream() as stream:
            parts = [stream.send(xs[3][:10]), stream.send(xs[3][10:11]), stream.send(xs[3][11:], end=True)]
        np.testing.assert_allclose(np.concatenate(parts), want[3], atol=1e-5)

    async def go():
        async with AsyncClient(url) as client:
            outputs = await client.infer_many(xs, concurrency=3)
            stream = client.stream()
            parts = [await stream.send(xs[6][:9]), await stream.send(xs[6][9:], end=True)]
            return outputs, parts

    outputs, parts = asyncio.run(go())
    for got, expected in zip(outputs, want):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(parts), want[6], atol=1e-5)


def test_websocket_stream_equals_whole_sequence_and_idle_streams_are_evicted(served):
    websockets = pytest.importorskip("websockets.sync.client")
    import io
    import json

    from websockets.exceptions import ConnectionClosed

    url, module = served
    x = sequences([40], seed=8)[0]
    want = torch_outputs(module, [x])[0]
    ws_url = url.replace("http://", "ws://") + "/v1/models/m/stream"
    with websockets.connect(ws_url) as ws:
        ws.send(json.dumps(x[:13].tolist()))
        first = np.asarray(json.loads(ws.recv())["output"], dtype=np.float32)
        buffer = io.BytesIO()
        np.save(buffer, x[13:14])
        ws.send(buffer.getvalue())
        second = np.load(io.BytesIO(ws.recv()), allow_pickle=False)
        ws.send(json.dumps([[1.0, 2.0]]))  # a bad chunk: an error, the stream goes on unchanged
        assert json.loads(ws.recv())["status"] == 422
        ws.send(json.dumps({"input": x[14:].tolist()}))
        third = np.asarray(json.loads(ws.recv())["output"], dtype=np.float32)
        np.testing.assert_allclose(np.concatenate([first, second, third]), want, rtol=0, atol=1e-5)
        ws.send(json.dumps({"end": True}))
    with websockets.connect(ws_url) as ws:  # idle longer than max_idle_s=0.5
        message = json.loads(ws.recv(timeout=5))
        assert message["status"] == 408 and "idle" in message["error"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 4408


def test_v2_stream_evicted_when_idle_says_why(served):
    from ebatch.client import Client, ServerError

    url, _ = served
    with Client(url) as client:
        stream = client.stream()
        stream.send(np.ones((2, 8), np.float32))
        time.sleep(1.6)  # max_idle_s=0.5; the sweep runs every 0.125 s
        with pytest.raises(ServerError, match="idle for more than max_idle_s") as error:
            stream.send(np.ones((2, 8), np.float32))
        assert error.value.status == 404


def test_bidirectional_model_refuses_streams():
    pytest.importorskip("fastapi")
    from ebatch.client import Client, ServerError
    from ebatch.serve.service import ServeConfig

    with live_server(ServeConfig(model="tiny-bilstm", batch_size=2)) as (url, _), Client(url) as client:
        assert client.infer(np.ones((3, 8), np.float32)).shape == (3, 32)
        with pytest.raises(ServerError, match="bidirectional") as error:
            client.stream().send(np.ones((3, 8), np.float32))
        assert error.value.status == 409


def _metric(url: str, name: str) -> float:
    import httpx

    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_sigterm_drains_50_or_more_requests_in_flight_then_exits_0():
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from ebatch.client import Client
    from ebatch.model import get_model
    from ebatch.runtime import Engine, RNNWeights

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", "from ebatch.cli import main; main()", "serve", "tiny-lstm", "--port", str(port),
               "--seed", "3", "--batch-size", "2", "--timesteps", "1", "--drain-timeout-s", "60", "--log-level",
               "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        # Two long requests take both slots (B=2, T=1) before the other 78 are sent, so none of the 78 can
        # finish while they are being admitted, however slowly this machine sends them.
        long_steps, n = 20_000, 80
        xs = sequences([long_steps] * 2 + [40] * (n - 2), seed=9)
        results: list = [None] * n
        client = Client(url, timeout_s=120)

        def send(i):
            try:
                results[i] = client.infer(xs[i])
            except Exception as exc:  # recorded, asserted below
                results[i] = exc

        def wait_until_in_flight(count):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _metric(url, "ebatch_in_flight_requests") < count:
                time.sleep(0.01)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
        for t in threads[:2]:
            t.start()
        wait_until_in_flight(2)
        for t in threads[2:]:
            t.start()
        wait_until_in_flight(n)
        assert _metric(url, "ebatch_in_flight_requests") == n
        assert _metric(url, 'ebatch_requests_total{outcome="ok"}') == 0
        process.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        assert httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 503
        late = httpx.post(f"{url}/v1/models/tiny-lstm/infer", json=xs[0][:2].tolist(), timeout=5)
        assert late.status_code == 503
        for t in threads:
            t.join(120)
        assert process.wait(60) == 0
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    want = Engine(RNNWeights.random(get_model("tiny-lstm"), seed=3), policy="sequential").run(xs)
    for got, expected in zip(results, want):
        assert isinstance(got, np.ndarray), got
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_serve_command_errors_are_one_line():
    from typer.testing import CliRunner

    from ebatch.cli import app

    runner = CliRunner()
    for args, words in ((["serve", "m.onnx"], "no such file"), (["serve", "m.safetensors"], "no such file"),
                        (["serve", "nope"], "zoo model"), (["serve", "tiny-lstm", "--timesteps", "x"], "timesteps"),
                        (["serve", "tiny-lstm", "--device", "cuda"], "device: the numpy backend runs on the CPU only")):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and words in str(result.exception), (args, result.exception)


def test_a_cuda_device_without_cuda_is_refused_by_name_before_serving():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the device is served, not refused")
    from ebatch.serve.service import ModelService, ServeConfig

    with pytest.raises(ValueError, match="^device: 'cuda' requested but CUDA is not available"):
        ModelService(ServeConfig(model="tiny-lstm", backend="torch", device="cuda"))
