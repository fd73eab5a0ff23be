"""E-BATCH on bidirectional networks: ``stream`` vs ``pack``, the stage orders, and cellular's priorities.

Prints markdown tables (docs/design.md quotes them):

1. offline, every request of the reproduction's data sets, B=64: padding, sorted padding, both cellular
   priorities, E-BATCH ``pack`` and ``stream`` with every stage order, on ``epur`` and ``tpu-v1``;
2. under Poisson load at fractions of the offline throughput of cellular (most-ready): p99 latency,
   throughput and energy per request of the same policies.

Usage: ``python benchmarks/bidirectional_study.py [--timesteps 16] [--load-requests 600] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import ebatch

NETWORKS = {  # (data set, frames per second) as the reproduction uses them
    "eesen": ("librispeech-test-clean", 100.0),
    "deepspeech2": ("librispeech-test-clean", 50.0),
    "gnmt-enc": ("wmt22-en-de", None),
}
PRESETS = ("epur", "tpu-v1")
LOADS = (0.3, 0.6, 0.9)


def policies(t: int) -> list[tuple[str, str, dict]]:
    rows = [
        ("padding", "padding", {}),
        ("padding sort=256", "padding", {"sort_window": 256}),
        ("cellular most-ready", "cellular", {"priority": "most-ready"}),
        ("cellular oldest", "cellular", {"priority": "oldest"}),
        ("ebatch pack", "ebatch", {"bidirectional": "pack", "timesteps": t}),
    ]
    for order in ("fullest", "full-oldest", "oldest", "shallowest"):
        rows.append((f"ebatch stream {order}", "ebatch", {"stage_order": order, "timesteps": t}))
    return rows


def workload(network: str, n: int | None = None, rate_rps: float | None = None) -> ebatch.Workload:
    dataset, fps = NETWORKS[network]
    extra = {"frame_rate_hz": fps} if fps else {}
    if rate_rps is None:
        return ebatch.Workload.from_dataset(dataset, n=n, seed=0, **extra)
    return ebatch.Workload.from_dataset(dataset, n=n, arrival="poisson", rate_rps=rate_rps, seed=0, **extra)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def offline(t: int) -> str:
    rows = []
    for network in NETWORKS:
        work = workload(network)
        for preset in PRESETS:
            base = None
            for label, name, params in policies(t):
                s = ebatch.simulate(network, work, name, preset, batch_size=64, **params).summary()
                if label == "ebatch pack":
                    base = s
                rows.append([network, preset, label, f"{s['throughput_rps']:.2f}",
                             f"{1e3 * s['energy_per_request_j']:.2f}", f"{100 * s['padding_fraction']:.1f} %",
                             f"{s['latency_p99_s']:.1f}"])
                print(" ".join(rows[-1]), file=sys.stderr, flush=True)
            assert base is not None
    return table(["network", "preset", "policy", "req/s", "mJ/req", "padding", "p99 s"], rows)


def under_load(t: int, n: int) -> str:
    rows = []
    for network in ("eesen", "deepspeech2"):
        preset = "epur"
        saturation = ebatch.simulate(network, workload(network, n), "cellular", preset,
                                     batch_size=64).summary()["throughput_rps"]
        for load in LOADS:
            work = workload(network, n, load * saturation)
            for label, name, params in policies(t):
                s = ebatch.simulate(network, work, name, preset, batch_size=64, **params).summary()
                rows.append([network, preset, f"{load:.1f}", label, f"{s['latency_p99_s']:.2f}",
                             f"{s['throughput_rps']:.2f}", f"{1e3 * s['energy_per_request_j']:.2f}"])
                print(" ".join(rows[-1]), file=sys.stderr, flush=True)
    return table(["network", "preset", "load", "policy", "p99 s", "req/s", "mJ/req"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=16)
    parser.add_argument("--load-requests", type=int, default=600)
    parser.add_argument("--out", help="write the markdown here as well as to stdout")
    args = parser.parse_args()
    begin = time.perf_counter()
    text = (
        f"### Offline, every request, B=64, T={args.timesteps}\n\n{offline(args.timesteps)}\n\n"
        f"### Poisson load (fraction of cellular most-ready's offline throughput on the same "
        f"{args.load_requests} requests), B=64, T={args.timesteps}\n\n"
        f"{under_load(args.timesteps, args.load_requests)}\n"
    )
    seconds = math.ceil(time.perf_counter() - begin)
    text += f"\n_{seconds} s; `python benchmarks/bidirectional_study.py`_\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
