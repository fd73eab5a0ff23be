"""GPU check of the torch executor: correctness on CUDA against torch.nn on the CPU, then a small benchmark.

    .venv/bin/python scripts/gpu_check.py [--device cuda] [--out DIR] [--quick]

1. Correctness: random LSTM/GRU models (1-3 layers, uni/bidirectional, sizes 1-64) and random lengths
   (length 1 included), every policy, batch sizes above and below the request count, T above every
   length; outputs of ``Engine(..., backend="torch", device=DEVICE)`` must equal ``torch.nn`` run on the CPU
   on each sequence alone within 1e-5 (TF32 disabled). Exit code 1 on any mismatch.
   On CUDA the torch executor runs row-regular steps as CUDA graphs (one per cell type, B and window
   width; ``ebatch.runtime.graphs``), so this checks the graph path; a second pass checks the column loop.
2. Benchmark (wall clock, one device): lstm-2x512 on LibriSpeech test-clean lengths (64 requests, seed 0),
   offline, B in (16, 64): padding and ebatch T=16/64 on the torch executor with CUDA graphs (the default
   on CUDA), ebatch T=64 with the column loop (graphs off, the executor before issue 8), torch.nn (cuDNN)
   padded and packed, and the no-padding limit (torch.nn on a full batch of equal-length sequences).
   Prints a table and issue 8's GPU target (E-BATCH >= 1.5x cuDNN packed at B=64); with --out writes
   gpu_check.json there. Takes a few minutes on a recent GPU (graph capture per shape; less with --quick).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ebatch.bench.peers import limit_cells_per_s, run_peer, torch_module
from ebatch.model import Layer, RNNModel, get_model
from ebatch.runtime import Engine, RNNWeights
from ebatch.workload import Workload

POLICIES = [
    ("sequential", {}),
    ("padding", {}),
    ("padding", {"sort_window": 9}),
    ("cellular", {}),
    ("ebatch", {"timesteps": 4}),
    ("ebatch", {"timesteps": 64}),
]


def engine_for(weights, name: str, batch_size: int, device: str, graphs: bool, **params) -> Engine:
    """An engine on the torch executor, with CUDA graphs on or off."""
    from ebatch.runtime.torch_executor import TorchExecutor

    engine = Engine(weights, policy=name, batch_size=batch_size, backend="torch", device=device, **params)
    engine.executor = TorchExecutor(weights, device=device, graphs=graphs)
    return engine


def correctness(device: str, cases: int) -> tuple[int, int, float]:
    rng = np.random.default_rng(0)
    passed = failed = 0
    worst = 0.0
    for case in range(cases):
        cell = ("lstm", "gru")[case % 2]
        bidirectional = bool((case // 2) % 2)
        layers = 1 + case % 3
        input_size, hidden = (int(v) for v in rng.choice([1, 3, 16, 33, 64], size=2))
        stack, size = [], input_size
        for _ in range(layers):
            stack.append(Layer(cell, size, hidden, bidirectional))
            size = hidden * (2 if bidirectional else 1)
        weights = RNNWeights.random(RNNModel(f"case{case}", tuple(stack)), seed=case)
        module = torch_module(weights)
        lengths = [1] + rng.integers(1, 40, size=int(rng.integers(1, 9))).tolist()
        sequences = [rng.standard_normal((n, input_size), dtype=np.float32) for n in lengths]
        with torch.inference_mode():
            want = [module(torch.from_numpy(x))[0].numpy() for x in sequences]
        for batch_size, graphs in ((2, True), (len(sequences) + 3, True), (2, False)):
            for name, params in POLICIES:
                engine = engine_for(weights, name, batch_size, device, graphs, **params)
                got = engine.run(sequences)
                error = max(float(np.abs(g - w).max()) for g, w in zip(got, want))
                worst = max(worst, error)
                if error <= 1e-5:
                    passed += 1
                else:
                    failed += 1
                    print(f"MISMATCH case {case} {cell} layers={layers} bi={bidirectional} sizes=({input_size},"
                          f"{hidden}) {name} {params} B={batch_size} graphs={graphs}: max abs error {error:.2e}")
    return passed, failed, worst


def bench(device: str, requests: int) -> list[dict]:
    model = get_model("lstm-2x512")
    weights = RNNWeights.random(model, seed=0)
    module = torch_module(weights)
    lengths = Workload.from_dataset("librispeech-test-clean", n=requests, seed=0).lengths
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((int(n), 512), dtype=np.float32) for n in lengths]
    cells = int(lengths.sum()) * model.cells_per_timestep
    rows = []
    for batch_size in (16, 64):
        limit = limit_cells_per_s(module, batch_size, int(lengths.mean()), device=device)
        runs = [("padding", {}, True), ("ebatch", {"timesteps": 16}, True), ("ebatch", {"timesteps": 64}, True),
                ("ebatch", {"timesteps": 64}, False)]
        for name, params, graphs in runs:
            engine = engine_for(weights, name, batch_size, device, graphs, **params)
            engine.run(sequences)  # warm up: kernels, allocator, and the capture of every shape this run meets
            start = time.perf_counter()
            engine.run(sequences)
            wall = time.perf_counter() - start
            label = name + "".join(f" T={v}" for v in params.values()) + ("" if graphs else " (column loop)")
            rows.append({"name": label, "batch_size": batch_size, "wall_s": wall, "sequences_per_s": requests / wall,
                         "useful_cells_per_s": cells / wall, "efficiency": cells / wall / limit})
        for mode in ("padded", "packed"):
            run_peer(module, sequences[:4], batch_size, mode, device=device)
            run = run_peer(module, sequences, batch_size, mode, device=device)
            rows.append({"name": f"torch.nn {mode}", "batch_size": batch_size, "wall_s": run.wall_s,
                         "sequences_per_s": requests / run.wall_s, "useful_cells_per_s": cells / run.wall_s,
                         "efficiency": cells / run.wall_s / limit})
        rows.append({"name": "limit", "batch_size": batch_size, "useful_cells_per_s": limit, "efficiency": 1.0})
    return rows


def markdown(result: dict, command: str) -> str:
    """The ``gpu`` section of docs/benchmarks.md from a gpu_check.json."""
    lines = [
        "## Runtime on a GPU (torch executor, CUDA)",
        "",
        f"Command: `{command}` on a lent machine ({result['device']}, torch {result['torch']}); the section is "
        "rendered from the run's gpu_check.json with `--render`. Not part of CI (CI has no GPU).",
        "",
        f"- Correctness: {result['passed']} policy runs passed, {result['failed']} failed; worst max abs error "
        f"{result['worst_abs_error']:.2e} against torch.nn on the CPU, each sequence alone (tolerance 1e-5).",
        "- Speed: lstm-2x512 on 64 LibriSpeech test-clean lengths, offline, wall clock on the GPU, after a warm-up "
        "run that captures every CUDA graph the run needs. Rows without a suffix replay one CUDA graph per "
        "window (cell type, B, width); `(column loop)` is the executor launching kernels column by column.",
        *target_lines(result["bench"]),
        "",
        "| name | B | seq/s | useful cells/s | efficiency |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["bench"]:
        seq = r.get("sequences_per_s")
        lines.append(f"| {r['name']} | {r['batch_size']} | {'-' if seq is None else f'{seq:.1f}'} | "
                     f"{r['useful_cells_per_s']:,.0f} | {r['efficiency']:.2f} |")
    return "\n".join(lines)


def target_lines(rows: list[dict]) -> list[str]:
    """Issue 8's GPU target: the best E-BATCH at B=64 at least 1.5x cuDNN packed (sequences/s)."""
    at64 = [r for r in rows if r["batch_size"] == 64 and r.get("sequences_per_s")]
    ebatch = [r for r in at64 if r["name"].startswith("ebatch")]
    packed = [r for r in at64 if r["name"] == "torch.nn packed"]
    if not ebatch or not packed:
        return []
    best = max(ebatch, key=lambda r: r["sequences_per_s"])
    ratio = best["sequences_per_s"] / packed[0]["sequences_per_s"]
    return [f"- Target (B=64): {best['name']} is {ratio:.2f}x cuDNN packed (target 1.5x: "
            f"{'met' if ratio >= 1.5 else 'missed'})."]


def render(json_path: str, section_path: str) -> int:
    from ebatch.experiments.report.sections import write_section

    result = json.loads(Path(json_path).read_text())
    write_section(section_path, "gpu", markdown(result, "python scripts/gpu_check.py --out DIR"))
    print(f"wrote the gpu section of {section_path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", default=None, help="folder for gpu_check.json")
    parser.add_argument("--quick", action="store_true", help="8 correctness cases, 32 requests")
    parser.add_argument("--render", metavar="JSON", help="only write the 'gpu' section of --section from a saved JSON")
    parser.add_argument("--section", default="docs/benchmarks.md", help="Markdown file for --render")
    args = parser.parse_args()
    if args.render:
        return render(args.render, args.section)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available; pass --device cpu to try the script here")
        return 2
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({name}), torch {torch.__version__}")
    start = time.perf_counter()
    passed, failed, worst = correctness(args.device, 8 if args.quick else 24)
    print(f"correctness: {passed} passed, {failed} failed, worst max abs error {worst:.2e} "
          f"({time.perf_counter() - start:.1f} s)")
    rows = bench(args.device, 32 if args.quick else 64)
    print(f"{'name':<30} {'B':>3} {'seq/s':>9} {'cells/s':>12} {'efficiency':>10}")
    for r in rows:
        print(f"{r['name']:<30} {r['batch_size']:>3} {r.get('sequences_per_s', float('nan')):>9.1f} "
              f"{r['useful_cells_per_s']:>12,.0f} {r['efficiency']:>10.2f}")
    print("\n".join(target_lines(rows)))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        result = {"device": name, "torch": torch.__version__, "passed": passed, "failed": failed,
                  "worst_abs_error": worst, "bench": rows}
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
