"""ebatch's side of the cross-checks: the numbers ebatch predicts, and the inputs the other tools need.

Runs in ebatch's own environment (``.venv``); the tools run in theirs and never import ebatch.
Writes, under ``validation/work/``:

- ``gemms.json``: per preset (``tpu-v1``, ``epur``), every zoo layer's two matrix products (input
  projection ``W_ih``: M = B cells, K = input size, N = gates x hidden; recurrent ``W_hh``: M = B,
  K = hidden, N = gates x hidden) at each batch size, with ebatch's compute cycles
  (:func:`ebatch.hardware.cost.gemm_cycles`, weights double-buffered as in the preset) and the same formula
  without double buffering, and the SCALE-Sim configuration of the preset's array.
- ``ebatch_energy.json``: ebatch's energy per memory level and for the MACs of one GEMM, per preset,
  from the cost phases (:func:`weight_traffic`, :func:`activation_traffic`, :func:`gemm_cycles`), and
  a check that the per-product split adds back up to ``AcceleratorModel.cost`` of the whole step.
- ``latency.json``: the latency cases of :mod:`latency` (double buffering, compute/DRAM overlap).
- ``sequences.json``: the invocation sequences of :mod:`sequences` (policies' steps, cut into GEMMs).
- ``zigzag/<job>/{accelerator,mapping,workload}.yaml`` for every ZigZag evaluation (:mod:`zigzag_inputs`),
  listed in ``zigzag_jobs.json`` (``id``, ``folder``, ``opt``).

Usage: ``.venv/bin/python validation/prepare.py [--work validation/work]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from latency import latency_cases
from sequences import SCENARIOS, gemm_job_id, scenario_invocations
from zigzag_inputs import write_zigzag_inputs

from ebatch.hardware import AcceleratorModel
from ebatch.hardware.cost import activation_traffic, gemm_cycles, weight_traffic
from ebatch.hardware.preset import load_preset
from ebatch.model import ZOO
from ebatch.step import BatchStep

__all__ = ["BATCH_SIZES", "ENERGY_GEMM", "cycles_table", "gemm_energy", "split_check"]

#: batch sizes of the cycle table per preset (SCALE-Sim's compute model on epur's 16-row array takes
#: about a minute per B = 256 GEMM of the largest layers, so epur stops at 64)
BATCH_SIZES = {"tpu-v1": (1, 8, 64, 256), "epur": (1, 8, 64)}
SCALESIM_CONFIGS = {"tpu-v1": "validation/configs/scalesim_tpu_v1.cfg", "epur": "validation/configs/scalesim_epur.cfg"}
ENERGY_PRESETS = ("tpu-v1", "epur")
#: The GEMM whose energy is compared: EESEN layer 1's input projection at B = 64.
ENERGY_GEMM = {"model": "eesen", "layer": 0, "product": "W_ih", "batch": 64}


def cycles_table(preset: str) -> dict:
    """ebatch's compute cycles of every zoo layer's products at every batch size on ``preset``."""
    spec = load_preset(preset)
    rows = []
    for model in ZOO.values():
        for index, layer in enumerate(model.layers):
            products = (("W_ih", layer.input_size), ("W_hh", layer.hidden_size))
            for batch in BATCH_SIZES[preset]:
                for product, k in products:
                    n = layer.gate_rows
                    args = (batch, k, n, spec.array_rows, spec.array_cols)
                    rows.append({
                        "model": model.name, "layer": index + 1, "cell": layer.cell,
                        "directions": layer.directions, "product": product,
                        "m": batch, "k": k, "n": n,
                        "ebatch_cycles": gemm_cycles(*args, spec.weights_double_buffered),
                        "ebatch_cycles_no_double_buffer": gemm_cycles(*args, False),
                    })
    return {
        "preset": preset, "array_rows": spec.array_rows, "array_cols": spec.array_cols,
        "weights_double_buffered": spec.weights_double_buffered, "batch_sizes": list(BATCH_SIZES[preset]),
        "scalesim_config": SCALESIM_CONFIGS[preset], "gemms": rows,
    }


def gemm_energy(preset: str, m: int, k: int, n: int) -> dict:
    """ebatch's dynamic energy of one (m x k) @ (k x n) input projection, split by level and operand.

    The phases are called for this product alone: the weights are ``W_ih`` with no recurrent matrix, not
    yet resident (a cold buffer, as ZigZag starts with weights in DRAM); the activations are the product's
    inputs (``activation_traffic`` with ``hidden=0, gate_rows=0``) and outputs (``input_size=0``), so the
    recurrent state's reads and writes, which belong to the cell update and not to the GEMM, are left out.
    """
    spec = load_preset(preset)
    w_bytes = k * n * spec.bytes_per_weight
    dram_w, sram_w = weight_traffic(spec, w_bytes, 0.0, resident=False, columns=1)
    sram_in, _ = activation_traffic(spec, m, k, 0, 0)
    sram_out, _ = activation_traffic(spec, m, 0, 0, n)
    _, spill = activation_traffic(spec, m, k, 0, n)
    cycles = gemm_cycles(m, k, n, spec.array_rows, spec.array_cols, spec.weights_double_buffered)
    dram_cycles = (dram_w + spill) / spec.dram_bandwidth_bytes_per_s * spec.clock_hz
    bytes_ = {"dram_W": dram_w, "dram_spill": spill, "sram_W": sram_w, "sram_I": sram_in, "sram_O": sram_out}
    energy = {
        "dram_W_j": dram_w * spec.dram_energy_j_per_byte,
        "dram_spill_j": spill * spec.dram_energy_j_per_byte,
        "sram_W_j": sram_w * spec.sram_energy_j_per_byte,
        "sram_I_j": sram_in * spec.sram_energy_j_per_byte,
        "sram_O_j": sram_out * spec.sram_energy_j_per_byte,
        "mac_j": m * k * n * spec.mac_energy_j,
    }
    return {
        "preset": preset, "m": m, "k": k, "n": n, "bytes": bytes_, "energy": energy,
        "compute_cycles": cycles, "dram_cycles": dram_cycles, "time_cycles": max(cycles, dram_cycles),
        "constants": {
            "dram_j_per_byte": spec.dram_energy_j_per_byte, "sram_j_per_byte": spec.sram_energy_j_per_byte,
            "mac_j": spec.mac_energy_j, "bytes_per_weight": spec.bytes_per_weight,
            "bytes_per_activation": spec.bytes_per_activation, "bytes_per_accumulator": spec.bytes_per_accumulator,
            "array": [spec.array_rows, spec.array_cols], "weight_buffer_bytes": spec.weight_buffer_bytes,
            "activation_buffer_bytes": spec.activation_buffer_bytes,
        },
    }


def split_check(preset: str, model_name: str, layer_index: int, batch: int) -> dict:
    """Does the per-product split add back up to ``AcceleratorModel.cost`` of a one-time-step step?

    Cold buffer, B occupied rows, one column. The step's SRAM energy = the input projection (weights,
    inputs, gate accumulators written and read) + the recurrent product's weights and inputs (the
    previous state; it accumulates into the same gate accumulators, not counted again) + the new
    state's write (the cell update).
    """
    spec = load_preset(preset)
    layer = ZOO[model_name].layers[layer_index]
    ones = np.ones(batch, dtype=np.int64)
    step = BatchStep(
        layer=layer_index, direction=0, width=1, slots=batch, seg_row=np.arange(batch), seg_col=0 * ones,
        seg_request=np.arange(batch), seg_start=0 * ones, seg_length=ones, seg_reset=ones.astype(bool),
    )
    cost = AcceleratorModel(spec, model_name).cost(step).breakdown
    bpw = spec.bytes_per_weight
    dram, sram_w = weight_traffic(spec, layer.input_params * bpw, layer.recurrent_params * bpw, False, 1)
    sram_act, spill = activation_traffic(spec, batch, layer.input_size, layer.hidden_size, layer.gate_rows)
    ih = gemm_energy(preset, batch, layer.input_size, layer.gate_rows)["energy"]
    hh = gemm_energy(preset, batch, layer.hidden_size, layer.gate_rows)["energy"]
    state_write_j = batch * layer.hidden_size * spec.bytes_per_activation * spec.sram_energy_j_per_byte
    parts_sram = ih["sram_W_j"] + ih["sram_I_j"] + ih["sram_O_j"] + hh["sram_W_j"] + hh["sram_I_j"] + state_write_j
    parts_mac = ih["mac_j"] + hh["mac_j"]
    return {
        "model": model_name, "layer": layer_index + 1, "batch": batch,
        "cost_dram_j": cost["dram_j"], "phases_dram_j": (dram + spill) * spec.dram_energy_j_per_byte,
        "cost_sram_j": cost["sram_j"], "products_sram_j": parts_sram,
        "phases_sram_j": (sram_w + sram_act) * spec.sram_energy_j_per_byte,
        "cost_mac_j": cost["mac_j"], "products_mac_j": parts_mac,
        "sram_adds_up": bool(np.isclose(cost["sram_j"], parts_sram, rtol=1e-9)),
        "mac_adds_up": bool(np.isclose(cost["mac_j"], parts_mac, rtol=1e-9)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(Path(__file__).parent / "work"))
    work = Path(parser.parse_args().work)
    work.mkdir(parents=True, exist_ok=True)
    jobs = []

    def job(job_id: str, spec, m: int, k: int, n: int, opt: str, **where) -> None:
        write_zigzag_inputs(spec, m, k, n, work / "zigzag" / job_id, **where)
        jobs.append({"id": job_id, "folder": f"zigzag/{job_id}", "opt": opt})

    tables = {preset: cycles_table(preset) for preset in BATCH_SIZES}
    (work / "gemms.json").write_text(json.dumps({"presets": tables}, indent=1))

    g = ENERGY_GEMM
    layer = ZOO[g["model"]].layers[g["layer"]]
    m, k, n = g["batch"], layer.input_size, layer.gate_rows
    energy = {"gemm": {**g, "m": m, "k": k, "n": n}, "presets": {}, "split_check": {}}
    for preset in ENERGY_PRESETS:
        energy["presets"][preset] = gemm_energy(preset, m, k, n)
        energy["split_check"][preset] = split_check(preset, g["model"], g["layer"], g["batch"])
        job(preset, load_preset(preset), m, k, n, "energy")
    (work / "ebatch_energy.json").write_text(json.dumps(energy, indent=1))

    cases = latency_cases()
    for case in cases:
        spec = load_preset(case["preset"])
        if case["variant"] == "buffer-sb":
            spec = spec.replace(weights_double_buffered=False)
        job(case["job"], spec, case["m"], case["k"], case["n"], "latency",
            weights_in_dram=case["variant"] == "dram")
    (work / "latency.json").write_text(json.dumps(cases, indent=1))

    scenarios = [scenario_invocations(name) for name in SCENARIOS]
    for s in scenarios:
        for gemm in s["gemms"]:
            gemm["job"] = gemm_job_id(s["preset"], gemm)
            if gemm["job"] not in {j["id"] for j in jobs}:
                job(gemm["job"], load_preset(s["preset"]), gemm["m"], gemm["k"], gemm["n"], "energy",
                    weights_in_dram=gemm["weights_in_dram"], outputs_in_dram=gemm["outputs_in_dram"])
    (work / "sequences.json").write_text(json.dumps(scenarios, indent=1))
    (work / "zigzag_jobs.json").write_text(json.dumps(jobs, indent=1))
    print(f"prepare: {sum(len(t['gemms']) for t in tables.values())} GEMMs for SCALE-Sim, {len(jobs)} ZigZag "
          f"jobs ({len(cases)} latency cases, {len(scenarios)} sequences), inputs in {work}")


if __name__ == "__main__":
    main()
