"""``run_load``: play a :class:`~ebatch.bench.schedule.Schedule` against a live ``ebatch serve`` (open loop).

Each request is sent at its scheduled time whatever the server is doing (one asyncio task per request,
no connection limit), and its latency counts from the *scheduled* send time, so queueing in the server,
in the network or in this client all show (no coordinated omission). A 429 is counted, not retried.

Metrics (one :class:`LoadResult`; ``span_s`` runs from the first scheduled send to the last answer):

- ``offered_rps = (n - 1) / send_s[-1]``; ``achieved_rps = ok / span_s``;
  ``goodput_rps = (ok answers with latency_s <= slo_p99_s) / span_s``;
- ``p50_s, p90_s, p99_s``: latency quantiles over *every* request, a failed one counting as infinite
  (a refused request never meets the SLO), so p99 is finite only when at most 1% failed;
- ``rejected_429``, ``server_5xx``, ``errors`` (other statuses, timeouts, connection errors);
- ``queue_s_mean`` / ``compute_s_mean``: the server's ``X-Queue-Seconds`` / ``X-Compute-Seconds``;
- ``energy_j_mean``, ``energy_j_p50``, ``energy_j_p99``: the server's ``X-Energy-Joules`` over successful
  requests (each request's share of its steps' energy), ``energy_source`` its ``X-Energy-Source``
  (``rapl``, ``nvml``, ``estimate``); ``None`` and ``"n/a"`` when the server sends none;
- ``send_lag_s_max``: how late this client sent its latest request; large values mean the client, not the
  server, was the bottleneck.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

import numpy as np

from ebatch.bench.schedule import Schedule

__all__ = ["LoadResult", "LoadRun", "RequestRecord", "run_load", "summarize"]


@dataclass(frozen=True)
class RequestRecord:
    """One request: scheduled send time, HTTP status (0: no answer), latency and the server's split."""

    send_s: float
    length: int
    status: int
    latency_s: float
    queue_s: float
    compute_s: float
    send_lag_s: float
    energy_j: float = float("nan")
    energy_source: str = ""


@dataclass(frozen=True)
class LoadResult:
    """The summary of one run (the module docstring defines each metric)."""

    label: str
    model: str
    workload: str
    arrival: str
    cv: float
    rate_rps: float
    requests: int
    ok: int
    rejected_429: int
    server_5xx: int
    errors: int
    span_s: float
    offered_rps: float
    achieved_rps: float
    goodput_rps: float
    slo_p99_s: float
    p50_s: float
    p90_s: float
    p99_s: float
    queue_s_mean: float
    compute_s_mean: float
    send_lag_s_max: float
    energy_j_mean: float | None = None
    energy_j_p50: float | None = None
    energy_j_p99: float | None = None
    energy_source: str = "n/a"

    @property
    def slo_met(self) -> bool:
        """p99 (failures infinite) within the SLO."""
        return bool(self.p99_s <= self.slo_p99_s)

    def to_dict(self) -> dict:
        return asdict(self) | {"slo_met": self.slo_met}


@dataclass(frozen=True)
class LoadRun:
    """A run's summary and its per-request records."""

    result: LoadResult
    records: tuple[RequestRecord, ...]


def summarize(records, schedule: Schedule, slo_p99_s: float, model: str, label: str = "") -> LoadResult:
    """The :class:`LoadResult` of ``records`` (one per scheduled request)."""
    status = np.array([r.status for r in records])
    latency = np.array([r.latency_s if r.status == 200 else np.inf for r in records])
    ok = status == 200
    done = np.array([r.send_s + r.latency_s for r in records if np.isfinite(r.latency_s)])
    span_s = float(max(done.max() if done.size else 0.0, schedule.send_s[-1])) or 1e-9
    n = len(records)
    offered = (n - 1) / schedule.send_s[-1] if n > 1 and schedule.send_s[-1] > 0 else schedule.rate_rps
    quantiles = np.quantile(latency, [0.5, 0.9, 0.99], method="inverted_cdf")

    def mean(name: str) -> float:
        values = np.array([getattr(r, name) for r in records if r.status == 200])
        return float(np.nanmean(values)) if values.size and np.isfinite(values).any() else float("nan")

    energy = np.array([r.energy_j for r in records if r.status == 200 and np.isfinite(r.energy_j)])
    energy_p50, energy_p99 = np.quantile(energy, [0.5, 0.99], method="inverted_cdf") if energy.size else (None, None)
    sources = sorted({r.energy_source for r in records if r.status == 200 and r.energy_source})
    return LoadResult(
        label=label, model=model, workload=schedule.workload, arrival=schedule.arrival, cv=schedule.cv,
        rate_rps=schedule.rate_rps, requests=n, ok=int(ok.sum()), rejected_429=int((status == 429).sum()),
        server_5xx=int(((status >= 500) & (status < 600)).sum()),
        errors=int((~ok & (status != 429) & ~((status >= 500) & (status < 600))).sum()),
        span_s=span_s, offered_rps=float(offered), achieved_rps=float(ok.sum() / span_s),
        goodput_rps=float((ok & (latency <= slo_p99_s)).sum() / span_s), slo_p99_s=float(slo_p99_s),
        p50_s=float(quantiles[0]), p90_s=float(quantiles[1]), p99_s=float(quantiles[2]),
        queue_s_mean=mean("queue_s"), compute_s_mean=mean("compute_s"),
        send_lag_s_max=float(max(r.send_lag_s for r in records)),
        energy_j_mean=float(energy.mean()) if energy.size else None,
        energy_j_p50=None if energy_p50 is None else float(energy_p50),
        energy_j_p99=None if energy_p99 is None else float(energy_p99),
        energy_source=",".join(sources) or "n/a",
    )


def _header(response, name: str) -> float:
    try:
        return float(response.headers.get(name, "nan"))
    except ValueError:
        return float("nan")


async def _play(schedule: Schedule, url: str, model: str, input_size: int, timeout_s: float,
                seed: int) -> list[RequestRecord]:
    import httpx

    from ebatch.serve.codec import NPY, encode_npy

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((int(schedule.lengths.max()), input_size), dtype=np.float32)
    bodies = {int(n): encode_npy(x[:n]) for n in np.unique(schedule.lengths)}
    path, headers = f"/v1/models/{model}/infer", {"content-type": NPY, "accept": NPY}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as http:
        start = loop.time() + 0.05

        async def one(send_s: float, length: int) -> RequestRecord:
            lag_s = loop.time() - (start + send_s)
            try:
                response = await http.post(path, params={"outputs": "last"}, content=bodies[length],
                                           headers=headers)
            except httpx.HTTPError:
                return RequestRecord(send_s, length, 0, float("nan"), float("nan"), float("nan"), lag_s)
            latency_s = loop.time() - (start + send_s)
            return RequestRecord(send_s, length, response.status_code, latency_s,
                                 _header(response, "x-queue-seconds"), _header(response, "x-compute-seconds"),
                                 lag_s, _header(response, "x-energy-joules"),
                                 response.headers.get("x-energy-source", ""))

        tasks = []
        for send_s, length in zip(schedule.send_s.tolist(), schedule.lengths.tolist()):
            delay_s = start + send_s - loop.time()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            tasks.append(asyncio.create_task(one(send_s, length)))
        return list(await asyncio.gather(*tasks))


def server_model(url: str, model: str | None, timeout_s: float = 10.0) -> tuple[str, int]:
    """``(name, input_size)`` of the model served at ``url``; ``ValueError`` if none answers or it differs."""
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/models", timeout=timeout_s)
        served = response.json()["models"][0]
    except (httpx.HTTPError, ValueError, KeyError, IndexError):
        raise ValueError(f"url: no ebatch server answers at {url}; start one with 'ebatch serve MODEL'") from None
    if model is not None and model != served["name"]:
        raise ValueError(f"model: the server at {url} serves {served['name']!r}, not {model!r}; fix --model")
    return served["name"], int(served["input_size"])


def run_load(schedule: Schedule, url: str, model: str | None = None, slo_p99_s: float = 1.0,
             timeout_s: float = 30.0, seed: int = 0, label: str = "") -> LoadRun:
    """Play ``schedule`` against ``url`` and summarize it; returns after the last answer or ``timeout_s``
    past the last send (each request's own limit). Needs httpx (the ``serve`` extra)."""
    try:
        import httpx  # noqa: F401
    except ImportError:
        raise ValueError("loadgen: needs the 'serve' extra (httpx): pip install 'ebatch[serve]'") from None
    if not slo_p99_s > 0:
        raise ValueError(f"slo-p99-s: must be > 0 seconds, got {slo_p99_s}")
    if not timeout_s > 0:
        raise ValueError(f"timeout-s: must be > 0 seconds, got {timeout_s}")
    url = url.rstrip("/")
    name, input_size = server_model(url, model)
    records = asyncio.run(_play(schedule, url, name, input_size, timeout_s, seed))
    return LoadRun(summarize(records, schedule, slo_p99_s, name, label or name), tuple(records))
