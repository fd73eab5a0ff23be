"""Serving benchmark: `ebatch serve` on 127.0.0.1 against `Engine.run` on the same sequences; writes the
``serving`` section of docs/serving.md.

Per model (torch backend, 1 thread, E-BATCH B/T, LibriSpeech test-clean lengths, random weights seed 0):

1. **Offline**: ``Engine.run`` on N sequences (the reference throughput, time-steps/s).
2. **Saturation**: the same N sequences sent to a server subprocess with 2B requests in flight (``.npy``);
   served time-steps/s over wall time, and its ratio to offline. The run starts from an idle server, whose
   first step holds the first request to arrive, alone: eesen's bidirectional steps hold whole utterances,
   so that step weighs on a short run (24 requests: 0.78x offline, 48: 0.93x, on an Intel Xeon), and both
   models get the same N.
3. **Overhead**: an idle server, ``1000 x features`` ``.npy`` requests with ``outputs=last`` one at a time;
   client latency p50 minus the server's own queue+compute p50 (headers) is the added latency.
4. **Overload**: Poisson arrivals at 2x the saturation rate for ``--overload-s`` (the issue asks 60 s), a
   server with ``--max-queued-requests 2B``: 5xx count, goodput (200s/s over saturation rate), p99 time to
   a 429, every 10th 200 checked against the offline output, server RSS before and after.
5. **Drain**: a server with default bounds, 50 requests (200 time-steps each) in flight (server metric),
   SIGTERM: how many got 200, and the exit code.

Bounded: every phase has a request count and a time limit. Run ``python benchmarks/bench_serving.py``
(``--quick``: fewer requests, 10 s overload).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from ebatch.bench.server_process import ServerProcess
from ebatch.experiments.report.sections import write_section
from ebatch.model import get_model
from ebatch.runtime import Engine, RNNWeights
from ebatch.workload import Workload

DATASET = "librispeech-test-clean"


def npy(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x, allow_pickle=False)
    return buffer.getvalue()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_server(model: str, batch_size: int, timesteps: int, extra: list[str]) -> ServerProcess:
    """`ebatch serve` in a subprocess on 127.0.0.1 (torch, 1 thread); always stopped (context manager)."""
    return ServerProcess(model, ["--batch-size", str(batch_size), "--timesteps", str(timesteps),
                                 "--drain-timeout-s", "120", *extra])


async def post(client, server: ServerProcess, x, query: str = "") -> tuple[int, float, object, dict]:
    """One request (``x``: an array, or its ``.npy`` bytes, encoded before the clock starts)."""
    body = x if isinstance(x, bytes) else npy(x)
    begin = time.perf_counter()
    response = await client.post(f"/v1/models/{server.name}/infer{query}", content=body,
                                 headers={"content-type": "application/x-npy", "accept": "application/x-npy"})
    elapsed = time.perf_counter() - begin
    output = np.load(io.BytesIO(response.content), allow_pickle=False) if response.status_code == 200 else None
    return response.status_code, elapsed, output, dict(response.headers)


def http_client(server: ServerProcess, connections: int):
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=server.url, timeout=300, limits=limits)


async def saturate(server: ServerProcess, seqs: list[np.ndarray], concurrency: int) -> tuple[float, list]:
    gate = asyncio.Semaphore(concurrency)
    async with http_client(server, concurrency) as client:
        async def one(x):
            async with gate:
                return await post(client, server, x)

        begin = time.perf_counter()
        answers = await asyncio.gather(*(one(x) for x in seqs))
        return time.perf_counter() - begin, answers


async def overhead(server: ServerProcess, x: np.ndarray, repeats: int) -> tuple[float, float]:
    x = npy(x)
    async with http_client(server, 1) as client:
        await post(client, server, x, "?outputs=last")  # warm
        client_s, server_s = [], []
        for _ in range(repeats):
            status, elapsed, _, headers = await post(client, server, x, "?outputs=last")
            assert status == 200
            client_s.append(elapsed)
            server_s.append(float(headers["x-queue-seconds"]) + float(headers["x-compute-seconds"]))
    return float(np.median(client_s)), float(np.median(server_s))


async def overload(server: ServerProcess, seqs, want, rate_rps: float, duration_s: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    tasks, statuses = [], []
    bodies = [npy(x) for x in seqs]
    async with http_client(server, 1024) as client:
        begin = time.perf_counter()
        now = 0.0
        k = 0
        while now < duration_s and len(tasks) < 100_000:
            now += rng.exponential(1.0 / rate_rps)
            delay = begin + now - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            i = k % len(seqs)
            tasks.append((i, asyncio.ensure_future(post(client, server, bodies[i]))))
            k += 1
        sent_s = time.perf_counter() - begin
        results = [(i, await task) for i, task in tasks]
        done_s = time.perf_counter() - begin
    checked = wrong = 0
    busy_s = []
    ok = 0
    for n, (i, (status, elapsed, output, _)) in enumerate(results):
        statuses.append(status)
        if status == 429:
            busy_s.append(elapsed)
        if status == 200:
            ok += 1
            if n % 10 == 0:
                checked += 1
                wrong += int(not np.allclose(output, want[i], rtol=0, atol=1e-4))
    return {"sent": len(results), "sent_s": sent_s, "done_s": done_s, "ok": ok,
            "busy": statuses.count(429), "server_errors": sum(s >= 500 for s in statuses),
            "other": sum(s not in (200, 429) and s < 500 for s in statuses),
            "p99_busy_s": float(np.percentile(busy_s, 99)) if busy_s else float("nan"),
            "checked": checked, "wrong": wrong}


def drain(server: ServerProcess, seqs: list[np.ndarray], n: int) -> dict:
    async def go():
        async with http_client(server, n + 8) as client:
            tasks = [asyncio.ensure_future(post(client, server, seqs[i % len(seqs)])) for i in range(n)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                in_flight = await asyncio.to_thread(server.metric, "ebatch_in_flight_requests")
                if in_flight >= n:
                    break
                await asyncio.sleep(0.02)
            server.process.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return in_flight, results

    in_flight, results = asyncio.run(go())
    code = server.process.wait(180)
    return {"in_flight": int(in_flight), "ok": sum(1 for r in results if not isinstance(r, BaseException)
                                                   and r[0] == 200), "exit_code": code}


def bench(model_name: str, n: int, batch_size: int, timesteps: int, overload_s: float, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    model = get_model(model_name)
    weights = RNNWeights.random(model, seed=0)
    lengths = Workload.from_dataset(DATASET, n=n, seed=seed).lengths
    rng = np.random.default_rng(seed)
    seqs = [rng.standard_normal((int(length), weights.input_size), dtype=np.float32) for length in lengths]
    engine = Engine(weights, policy="ebatch", batch_size=batch_size, timesteps=timesteps, backend="torch", threads=1)
    engine.run(seqs[: batch_size])  # warm
    begin = time.perf_counter()
    want = engine.run(seqs)
    offline_s = time.perf_counter() - begin
    timesteps_total = int(lengths.sum())
    row = {"model": model_name, "requests": n, "mean_length": float(lengths.mean()),
           "offline_timesteps_per_s": timesteps_total / offline_s}
    extra = ["--max-queued-requests", str(2 * batch_size)]
    with start_server(model_name, batch_size, timesteps, extra) as server:
        asyncio.run(saturate(server, seqs[:batch_size], batch_size))  # warm
        wall_s, answers = asyncio.run(saturate(server, seqs, 2 * batch_size))
        assert all(a[0] == 200 for a in answers), [a[0] for a in answers]
        assert all(np.allclose(a[2], w, rtol=0, atol=1e-4) for a, w in zip(answers, want))
        row["served_timesteps_per_s"] = timesteps_total / wall_s
        row["served_ratio"] = row["served_timesteps_per_s"] / row["offline_timesteps_per_s"]
        probe = np.random.default_rng(1).standard_normal((1000, weights.input_size), dtype=np.float32)
        client_p50, server_p50 = asyncio.run(overhead(server, probe, 10))
        row |= {"probe_client_p50_s": client_p50, "probe_server_p50_s": server_p50,
                "added_p50_s": client_p50 - server_p50}
        capacity_rps = row["served_timesteps_per_s"] / lengths.mean()
        rss_before = rss_mib(server.process.pid)
        result = asyncio.run(overload(server, seqs, want, 2 * capacity_rps, overload_s, seed))
        row |= {f"overload_{k}": v for k, v in result.items()}
        row["overload_goodput"] = result["ok"] / result["done_s"] / capacity_rps
        row["rss_before_mib"], row["rss_after_mib"] = rss_before, rss_mib(server.process.pid)
        row["capacity_rps"] = capacity_rps
    with start_server(model_name, batch_size, timesteps, []) as server:  # default bounds: all 50 are admitted
        short = [x[:200] for x in seqs]
        row |= {f"drain_{k}": v for k, v in drain(server, short, 50).items()}
    return row


def markdown(rows: list[dict], command: str, overload_s: float, elapsed_s: float) -> str:
    lines = [
        "## Measured (generated)",
        "",
        f"`{command}` on this machine ({os.cpu_count()} logical CPUs shared by the server and the load "
        f"generator), {elapsed_s:.0f} s. torch backend, 1 thread, E-BATCH, LibriSpeech test-clean lengths, "
        f"random weights; overload ran {overload_s:g} s per model.",
        "",
        "| model | requests | offline ts/s | served ts/s | served / offline | 1000-step probe p50 (client) "
        "| server queue+compute p50 | added p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['requests']} | {r['offline_timesteps_per_s']:,.0f} | "
                     f"{r['served_timesteps_per_s']:,.0f} | {r['served_ratio']:.2f} | "
                     f"{r['probe_client_p50_s'] * 1e3:.1f} ms | {r['probe_server_p50_s'] * 1e3:.1f} ms | "
                     f"{r['added_p50_s'] * 1e3:.2f} ms |")
    lines += ["", "| model | overload sent (2x capacity) | 200 | 429 | 5xx | goodput / capacity | p99 time to 429 "
              "| 200s checked / wrong | RSS before / after | drain: in flight, 200, exit |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['overload_sent']} | {r['overload_ok']} | {r['overload_busy']} | "
                     f"{r['overload_server_errors']} | {r['overload_goodput']:.2f} | "
                     f"{r['overload_p99_busy_s'] * 1e3:.1f} ms | {r['overload_checked']} / {r['overload_wrong']} | "
                     f"{r['rss_before_mib']:.0f} / {r['rss_after_mib']:.0f} MiB | {r['drain_in_flight']}, "
                     f"{r['drain_ok']}, {r['drain_exit_code']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="lstm-2x512,eesen")
    parser.add_argument("--requests", type=int, default=64, help="sequences per model")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--overload-s", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/serving.md")
    args = parser.parse_args()
    begin = time.perf_counter()
    rows = []
    for name in args.models.split(","):
        n = args.requests
        print(f"{name}: {n} requests ...", file=sys.stderr)
        rows.append(bench(name, n, args.batch_size, args.timesteps, args.overload_s, args.seed))
        print(rows[-1], file=sys.stderr)
    command = " ".join(["python benchmarks/bench_serving.py", *sys.argv[1:]])
    text = markdown(rows, command, args.overload_s, time.perf_counter() - begin)
    if args.out:
        write_section(Path(args.out), "serving", text, title="# Serving")
    print(text)


if __name__ == "__main__":
    main()
