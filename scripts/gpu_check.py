"""GPU check of the torch executor: correctness on CUDA against torch.nn on the CPU, then a small benchmark.

    .venv/bin/python scripts/gpu_check.py [--device cuda] [--out DIR] [--quick] [--calibrate] [--serve]
    .venv/bin/python scripts/gpu_check.py --predict docs/data/gpu_check_h200.json [--section docs/serving.md]

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
3. ``--calibrate``: ``ebatch calibrate`` of lstm-2x512 on the torch backend on the device (calibrated.yaml
   in --out), its parameters beside the ``h200`` preset's, and both presets' predictions of step 2's runs.
4. ``--serve``: ``ebatch serve lstm-2x512 --backend torch --device DEVICE --energy auto`` in a subprocess on
   127.0.0.1, 64 LibriSpeech test-clean requests from ``ebatch loadgen``'s schedule (Poisson, 20 req/s),
   then how many were answered, the p50 and p99, and each request's energy with its source (NVML on CUDA where
   ``nvidia-ml-py`` sees the GPU; otherwise the source says what was used instead). Bounded: 64 requests,
   each answered within 60 s.
``--predict JSON`` needs no GPU: the ``h200`` preset's (or ``--hardware``'s) predictions of a saved run's
benchmark rows, and the per-step and per-column costs those runs imply; with ``--section`` it writes them
as the ``gpu-preset`` section of that Markdown file (docs/serving.md, "Capacity planning").
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


def prediction_lines(rows: list[dict], hardware: str, device: str) -> list[str]:
    """The preset's predictions of the benchmark rows, and the overheads the measurements imply."""
    from ebatch.experiments.report.preset_check import predicted_markdown
    from ebatch.experiments.study.preset_check import implied_overheads, predict_runs
    from ebatch.hardware.host import load_hardware

    spec = load_hardware(hardware)
    step_s, column_s, rel = implied_overheads(rows)
    return [predicted_markdown(predict_runs(rows, spec), spec.name, device), "",
            f"- Implied by the measured runs (least squares, relative RMS error {rel:.0%}): {step_s * 1e3:.2f} ms "
            f"per step and {column_s * 1e6:.0f} us per column; {spec.name} has {spec.step_overhead_s * 1e3:.2f} ms "
            f"and {spec.column_overhead_s * 1e6:.0f} us."]


def predict(json_path: str, hardware: str, section_path: str | None) -> int:
    from ebatch.experiments.report.sections import write_section

    result = json.loads(Path(json_path).read_text())
    text = "\n".join(prediction_lines(result["bench"], hardware, result["device"]))
    print(text)
    if section_path:
        command = f"python scripts/gpu_check.py --predict {json_path} --hardware {hardware} --section {section_path}"
        write_section(section_path, "gpu-preset", f"Generated by `{command}`; do not edit by hand.\n\n{text}")
        print(f"wrote the gpu-preset section of {section_path}")
    return 0


def calibrate_on_device(device: str, rows: list[dict], out: str | None) -> dict:
    """``ebatch calibrate`` on the device, beside the h200 preset; both presets' predictions of ``rows``."""
    from ebatch.experiments.study.calibrate import calibrate
    from ebatch.experiments.study.preset_check import parameter_rows, predict_runs
    from ebatch.hardware.host import host_preset_text, load_hardware

    fitted = calibrate("lstm-2x512", backend="torch", threads=1, device=device)
    reference = load_hardware("h200")
    if out:
        (Path(out) / "calibrated.yaml").write_text(host_preset_text(fitted.spec))
    print(f"calibrated on {device}: relative RMS error of the fit {fitted.rel_rms_error:.1%}")
    print(f"{'parameter':<30} {'calibrated':>12} {'h200 preset':>12}")
    for p in parameter_rows(fitted.spec, reference):
        print(f"{p.name:<30} {p.measured:>12.4g} {p.reference:>12.4g}")
    predicted = {name: predict_runs(rows, spec) for name, spec in (("calibrated", fitted.spec), ("h200", reference))}
    print(f"{'run':<14} {'B':>3} {'measured s':>10} {'calibrated s':>12} {'h200 s':>8}")
    for mine, theirs in zip(predicted["calibrated"], predicted["h200"]):
        print(f"{mine.name:<14} {mine.batch_size:>3} {mine.measured_s:>10.3f} {mine.predicted_s:>12.3f} "
              f"{theirs.predicted_s:>8.3f}")
    return {"rel_rms_error": fitted.rel_rms_error,
            "parameters": {p.name: {"calibrated": p.measured, "h200": p.reference} for p in
                           parameter_rows(fitted.spec, reference)},
            "predicted_s": {k: [r.predicted_s for r in v] for k, v in predicted.items()}}


SERVE_REQUESTS, SERVE_RATE_RPS, SERVE_TIMEOUT_S = 64, 20.0, 60.0


def serve_on_device(device: str) -> dict:
    """The served model on the device: latency, answers and per-request energy (see the module docstring)."""
    from ebatch.bench.loadgen import run_load
    from ebatch.bench.schedule import make_schedule
    from ebatch.bench.server_process import ServerProcess

    schedule = make_schedule("librispeech-test-clean", "poisson", SERVE_RATE_RPS, requests=SERVE_REQUESTS)
    with ServerProcess("lstm-2x512", ["--device", device, "--energy", "auto"]) as server:
        result = run_load(schedule, server.url, server.name, SERVE_TIMEOUT_S, SERVE_TIMEOUT_S).result
    summary = {"requests": result.requests, "ok": result.ok, "p50_s": result.p50_s, "p99_s": result.p99_s,
               "energy_j_mean": result.energy_j_mean, "energy_source": result.energy_source}
    print(f"served on {device}: {result.ok}/{result.requests} answered, p50 {result.p50_s:.3f} s, p99 "
          f"{result.p99_s:.3f} s, energy per request "
          + (f"{result.energy_j_mean:.3g} J" if result.energy_j_mean is not None else "none")
          + f" ({result.energy_source})")
    return summary


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
    parser.add_argument("--section", default=None, help="Markdown file for --render (default docs/benchmarks.md) "
                        "or --predict (default: print only)")
    parser.add_argument("--calibrate", action="store_true", help="also calibrate on the device and compare with h200")
    parser.add_argument("--serve", action="store_true", help="also serve lstm-2x512 on the device and load it")
    parser.add_argument("--predict", metavar="JSON", help="only predict a saved run's rows with --hardware (no GPU)")
    parser.add_argument("--hardware", default="h200", help="host preset for --predict")
    args = parser.parse_args()
    if args.render:
        return render(args.render, args.section or "docs/benchmarks.md")
    if args.predict:
        return predict(args.predict, args.hardware, args.section)
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
    calibration = calibrate_on_device(args.device, rows, args.out) if args.calibrate else None
    served = serve_on_device(args.device) if args.serve else None
    if args.out:
        result = {"device": name, "torch": torch.__version__, "passed": passed, "failed": failed,
                  "worst_abs_error": worst, "bench": rows, "calibration": calibration, "served": served}
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
