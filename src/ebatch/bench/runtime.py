"""The runtime benchmark behind ``ebatch bench``: wall-clock throughput and latency of every policy on real
weights, next to ``torch.nn.LSTM``/``GRU`` on padded and on packed batches, in one process.

For each model (random weights, PyTorch's init, seed fixed) and a sample of LibriSpeech test-clean
lengths (100 frames/s, random features, seed fixed):

- **offline**: all requests queued at 0; sequences/s = requests / wall time of the whole run;
- **poisson**: arrivals at ``load`` x the no-padding limit's capacity in requests/s, on a clock that
  advances by the measured time of each step (idle gaps skipped); latency = finish - arrival.

``efficiency`` = useful cells/s / cells/s of the torch module on a full batch of B equal-length
sequences (the no-padding limit, best of 3). A cell is one time-step of one layer and direction.
Each configuration runs ``repeats`` times round-robin and its fastest run is kept (the machine is
shared; the fastest run is the least disturbed one). Torch threads (and OpenBLAS threads where it can
be set) are set to ``threads`` for every row. ``energy_per_request_j``: the run's energy over its requests,
from the meter :func:`ebatch.hardware.energy.choose_meter` picks for ``energy`` (RAPL where readable, else
an estimate from ``hardware``'s power; the notes say which); a peer's run is metered as a whole.
Needs torch. :func:`run_bench` returns the rows; :func:`ebatch.bench.runtime_report.markdown` renders them.
"""

from __future__ import annotations

import ctypes
import glob
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ebatch.hardware.energy import choose_meter
from ebatch.hardware.host import cpu_name
from ebatch.model import Layer, RNNModel, get_model
from ebatch.runtime.engine import Engine
from ebatch.runtime.weights import RNNWeights, check_runtime_model
from ebatch.workload import Workload

__all__ = ["BenchConfig", "bench_model", "run_bench", "set_blas_threads", "timed"]

DATASET = "librispeech-test-clean"
#: whole models run as torch stages (ebatch.runtime.zoo): few requests, they are large
WHOLE_MODELS = {"deepspeech2": 4, "gnmt-enc": 8}
EXTRA_MODELS = {"gru-2x512": RNNModel("gru-2x512", (Layer("gru", 512, 512), Layer("gru", 512, 512)),
                                      description="2 GRU layers of 512 (benchmarks).")}


@dataclass
class BenchConfig:
    """What to run. ``requests``/``eesen_requests``: None means 128/48 (quick: 32/16)."""

    quick: bool = False
    models: tuple[str, ...] = ("lstm-2x512", "gru-2x512", "eesen")
    batch_size: int = 16
    timesteps: tuple[int, ...] = (16, 64)
    backends: tuple[str, ...] = ("compiled", "torch", "numpy")
    requests: int | None = None
    eesen_requests: int | None = None
    threads: int = 1
    load: float = 0.6
    repeats: int | None = None
    seed: int = 0
    thread_scaling: bool = False  # also run E-BATCH (first backend, first T) and torch.nn packed with 2 threads
    energy: str = "auto"  # the energy meter (ebatch.hardware.energy.ENERGY_CHOICES)
    hardware: str | None = None  # a host preset whose power_w prices an estimate
    notes: list[str] = field(default_factory=list)

    def n_requests(self, model: str) -> int:
        if model in WHOLE_MODELS:
            return self.requests or WHOLE_MODELS[model]
        big = model == "eesen"
        given = self.eesen_requests if big else self.requests
        if given is not None:
            return given
        return (16 if big else 32) if self.quick else (48 if big else 128)

    @property
    def n_repeats(self) -> int:
        return self.repeats if self.repeats is not None else 1


def set_blas_threads(threads: int) -> bool:
    """Best effort: set the thread count of the OpenBLAS that NumPy wheels bundle. True if it was set."""
    import numpy

    libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*openblas*.so*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name)(int(threads))
                return True
    return False


def _percentiles(latency_s: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(latency_s, 50)), float(np.percentile(latency_s, 99))


def bench_model(name: str) -> RNNModel:
    """A zoo model or ``gru-2x512`` that the runtime can run; ``ValueError`` otherwise."""
    if name in WHOLE_MODELS:
        return get_model(name)
    return check_runtime_model(EXTRA_MODELS[name] if name in EXTRA_MODELS else get_model(name))


def _configs(cfg: BenchConfig, load: str, bidirectional: bool = False) -> list[tuple[str, str, dict, str]]:
    """(row name, policy or peer, parameters, backend) of one model and load.

    The first backend runs every policy (and, for a bidirectional model, E-BATCH streaming every direction
    with the first T); the others padding and E-BATCH with the first T (quick mode: E-BATCH only).
    Sequential (offline only) runs on a quarter of the requests: it is by far the slowest.
    Under load, quick mode runs only padding, E-BATCH with the first T and the peers.
    """
    b, first_t = cfg.batch_size, cfg.timesteps[0]
    offline = load == "offline"
    full = offline or not cfg.quick
    out = []
    if offline:
        out.append(("sequential", "sequential", {}, cfg.backends[0]))
    for k, backend in enumerate(cfg.backends):
        if k == 0:
            out.append(("padding", "padding", {"batch_size": b}, backend))
            if full:
                out.append(("padding sort_window", "padding", {"batch_size": b, "sort_window": 4 * b}, backend))
                out.append(("cellular", "cellular", {"batch_size": b}, backend))
            for t in cfg.timesteps if full else (first_t,):
                out.append((f"ebatch T={t}", "ebatch", {"batch_size": b, "timesteps": t}, backend))
            if full and bidirectional:  # every direction of every layer streaming with its own slots
                out.append((f"ebatch stream T={first_t}", "ebatch",
                            {"batch_size": b, "timesteps": first_t, "bidirectional": "stream"}, backend))
        elif full:
            if not cfg.quick:
                out.append(("padding", "padding", {"batch_size": b}, backend))
            out.append((f"ebatch T={first_t}", "ebatch", {"batch_size": b, "timesteps": first_t}, backend))
    out.append(("torch.nn padded", "peer", {"mode": "padded", "batch_size": b}, "torch.nn"))
    out.append(("torch.nn packed", "peer", {"mode": "packed", "batch_size": b}, "torch.nn"))
    return out


def _run_one(weights, module, policy, params, backend, seqs, arrivals, threads, reference, meter=None):
    """One run: a dict of figures (wall-clock)."""
    from ebatch.bench.peers import run_peer

    if policy == "peer":
        before_j = meter.read_j() if meter is not None else 0.0
        run = run_peer(module, seqs, params["batch_size"], params["mode"], arrivals_s=arrivals)
        if meter is not None:
            meter.on_busy(run.wall_s)
        p50, p99 = _percentiles(run.latency_s)
        span = float(run.finish_s.max() - (0.0 if arrivals is None else arrivals.min()))
        return {"wall_s": run.wall_s, "span_s": span, "latency_p50_s": p50, "latency_p99_s": p99,
                "padded_cells": None, "max_abs_error": None,
                "energy_per_request_j": (meter.read_j() - before_j) / len(seqs) if meter is not None else None}
    engine = Engine(weights, policy=policy, backend=backend, threads=threads if backend != "numpy" else None,
                    energy=meter, **params)
    if engine.executor.name != backend:
        raise ValueError(f"backend {backend!r} is not available here (got {engine.executor.name!r}); see the warning")
    outputs = engine.run(seqs, arrivals_s=arrivals)
    s = engine.stats()
    ex = engine.executor
    split = {"project_s": ex.project_s, "recur_s": ex.recur_s, "other_executor_s": ex.execute_s - ex.project_s
             - ex.recur_s, "outside_executor_s": s["wall_s"] - ex.execute_s}
    return {"wall_s": s["wall_s"], "span_s": s["makespan_s"], "latency_p50_s": s["latency_p50_s"],
            "latency_p99_s": s["latency_p99_s"], "padded_cells": s["padded_cells"], "time_split": split,
            "max_abs_error": float(np.abs(outputs[0] - reference).max()),
            "energy_per_request_j": s.get("energy_per_request_j")}


def run_bench(cfg: BenchConfig, progress=None) -> list[dict]:
    """All rows of the benchmark (see the module docstring). Raises ``ValueError`` without torch."""
    try:
        import torch
    except ImportError:
        raise ValueError("ebatch bench compares with torch.nn.LSTM/GRU: pip install 'ebatch[torch]'") from None
    from ebatch.bench.peers import limit_cells_per_s, torch_module

    torch.set_num_threads(cfg.threads)
    blas = set_blas_threads(cfg.threads)
    cfg.notes.append(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}; NumPy's OpenBLAS "
                     + (f"threads set to {cfg.threads}" if blas else "threads left at its default"))
    cfg.notes.append(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs")
    choice = choose_meter(cfg.energy, None, cfg.hardware)
    meter = choice.meter
    cfg.notes.append(f"energy: {choice.source}" + "".join(f"; not {note}" for note in choice.notes))
    if "compiled" in cfg.backends:
        from ebatch.runtime.compiled import CompileUnavailable, build_info, load_extension

        try:
            load_extension()
            info = build_info()
            how = "loaded from its cache" if info.cached else "built"
            cfg.notes.append(f"compiled backend: C++ recurrence {how} in {info.build_s:.1f} s ({info.capability})")
        except CompileUnavailable as exc:
            raise ValueError(f"backends: 'compiled' is not available here ({exc}); drop it from --backends") from None
    rows = []
    for model_name in cfg.models:
        model = bench_model(model_name)
        if model_name in WHOLE_MODELS:  # the zoo's torch stages; the peers run them as one module
            from ebatch.bench.peers import torch_stack
            from ebatch.runtime.stages import ModelStages
            from ebatch.runtime.zoo import torch_stages

            modules = torch_stages(model_name, seed=cfg.seed)
            weights, module = ModelStages.from_torch(modules, model_name), torch_stack(modules)
        else:
            weights = RNNWeights.random(model, seed=cfg.seed)
            module = torch_module(weights)
        n = cfg.n_requests(model_name)
        b = cfg.batch_size
        lengths = Workload.from_dataset(DATASET, n=n, seed=cfg.seed).lengths
        rng = np.random.default_rng(cfg.seed)
        seqs = [rng.standard_normal((int(length), weights.input_size), dtype=np.float32) for length in lengths]
        with torch.inference_mode():
            reference = module(torch.from_numpy(seqs[0]))[0].numpy()
        limit = limit_cells_per_s(module, b, int(lengths.mean()), repeats=3)
        capacity_rps = limit / (lengths.mean() * model.cells_per_timestep)
        rate = cfg.load * capacity_rps
        poisson_arrivals = np.cumsum(np.random.default_rng([cfg.seed, 1]).exponential(1.0 / rate, size=n))
        base = {"model": model_name, "batch_size": b, "model_requests": n, "threads": cfg.threads,
                "limit_cells_per_s": limit}
        for load in ("offline", "poisson"):
            arrivals = None if load == "offline" else poisson_arrivals
            best: dict[str, dict] = {}
            configs = _configs(cfg, load, model.bidirectional)
            for _ in range(cfg.n_repeats):
                for name, policy, params, backend in configs:
                    run_seqs, run_arrivals = seqs, arrivals
                    if policy == "sequential":
                        run_seqs = seqs[: max(1, n // 4)]
                    if progress:
                        progress(f"{model_name} {load} {name} [{backend}]")
                    result = _run_one(weights, module, policy, params, backend, run_seqs, run_arrivals,
                                      cfg.threads, reference, meter)
                    result["requests"] = len(run_seqs)
                    result["useful_cells"] = int(sum(len(x) for x in run_seqs)) * model.cells_per_timestep
                    key = f"{name}|{backend}"
                    if key not in best or result["wall_s"] < best[key]["wall_s"]:
                        best[key] = result
            for name, policy, params, backend in configs:
                r = best[f"{name}|{backend}"]
                span = r["wall_s"] if load == "offline" else r["span_s"]
                useful_per_s = r["useful_cells"] / span
                rows.append(base | {
                    "name": name, "backend": backend, "load": load if load == "offline" else f"poisson {cfg.load:g}",
                    "rate_rps": None if load == "offline" else rate,
                    "policy": policy if policy != "peer" else f"torch.nn {params['mode']}",
                    "requests": r["requests"],
                    "sequences_per_s": r["requests"] / span,
                    "useful_cells_per_s": useful_per_s,
                    "latency_p50_s": r["latency_p50_s"], "latency_p99_s": r["latency_p99_s"],
                    "efficiency": useful_per_s / limit,
                    "padded_fraction": None if r["padded_cells"] is None
                    else r["padded_cells"] / (r["padded_cells"] + r["useful_cells"]),
                    "wall_s": r["wall_s"], "max_abs_error": r["max_abs_error"],
                    "time_split": r.get("time_split"), "energy_per_request_j": r["energy_per_request_j"],
                    "energy_source": None if meter is None else meter.kind,
                })
        if cfg.thread_scaling:
            if progress:
                progress(f"{model_name} threads 1 and 2")
            rows += _thread_rows(cfg, base, weights, module, seqs, reference, limit, meter)
    return rows


def _thread_rows(cfg: BenchConfig, base: dict, weights, module, seqs, reference, limit, meter) -> list[dict]:
    """E-BATCH on the first backend and torch.nn packed, offline, with 1 and 2 threads side by side."""
    import torch

    b, t = cfg.batch_size, cfg.timesteps[0]
    configs = [(f"ebatch T={t}", "ebatch", {"batch_size": b, "timesteps": t}, cfg.backends[0]),
               ("torch.nn packed", "peer", {"mode": "packed", "batch_size": b}, "torch.nn")]
    cells = int(sum(len(x) for x in seqs)) * weights.model.cells_per_timestep
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        set_blas_threads(threads)
        for name, policy, params, backend in configs:
            r = _run_one(weights, module, policy, params, backend, seqs, None, threads, reference, meter)
            rows.append(base | {"name": name, "backend": backend, "load": f"offline {threads} thread(s)",
                                "threads": threads, "rate_rps": None, "policy": policy, "requests": len(seqs),
                                "sequences_per_s": len(seqs) / r["wall_s"], "useful_cells_per_s": cells / r["wall_s"],
                                "latency_p50_s": r["latency_p50_s"], "latency_p99_s": r["latency_p99_s"],
                                "efficiency": cells / r["wall_s"] / limit, "padded_fraction": None,
                                "wall_s": r["wall_s"], "max_abs_error": r["max_abs_error"], "time_split": None,
                                "energy_per_request_j": r["energy_per_request_j"],
                                "energy_source": None if meter is None else meter.kind})
    torch.set_num_threads(cfg.threads)
    set_blas_threads(cfg.threads)
    return rows


def timed(cfg: BenchConfig, progress=None) -> tuple[list[dict], float]:
    start = time.perf_counter()
    rows = run_bench(cfg, progress)
    return rows, time.perf_counter() - start
