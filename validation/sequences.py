"""ebatch's side of the sequence cross-check: whole invocation sequences as the policies emit them.

Each scenario simulates a policy on a small workload (``keep_plan``), replays its ``BatchStep`` s through a
fresh :class:`~ebatch.hardware.AcceleratorModel`, and cuts every invocation into the GEMMs ZigZag can price:

- the input projection of all the invocation's cells (M = rows x columns, K = input size, N = gate rows);
- one recurrent product per column (M = rows, K = hidden, N = gate rows).

Where the weights come from is ebatch's decision, taken from the replay (by construction in both): a GEMM
whose matrix ebatch fetches from DRAM (a miss, or a layer streamed because it exceeds the weight buffer)
gets a ZigZag accelerator with the weights in DRAM, the others one whose weight buffer already holds them.
An input projection whose working set exceeds the activation buffer (ebatch spills) gets a DRAM for its
outputs too, and ZigZag chooses what goes there. Identical GEMMs are priced once and counted.

The scenarios cover cellular batching's one-column invocations, E-BATCH's fused windows, a layer streamed
because it exceeds ``epur``'s 4 MiB weight buffer (a 1024-wide LSTM layer, 16 MiB), and fused windows
whose working set spills out of the 2 MiB activation buffer.
"""

from __future__ import annotations

from collections import Counter

import ebatch
from ebatch.hardware import AcceleratorModel
from ebatch.hardware.cost import spill_bytes, working_set_bytes
from ebatch.hardware.preset import load_preset
from ebatch.model import get_model

__all__ = ["SCENARIOS", "scenario_invocations"]

#: name -> (preset, model, policy, policy parameters, request lengths); every request arrives at 0
SCENARIOS = {
    "cellular": ("epur", "eesen", "cellular", {"batch_size": 8}, [30] * 4 + [50] * 4),
    "ebatch-fused": ("epur", "eesen", "ebatch", {"batch_size": 8, "timesteps": 16}, [24] * 4 + [40] * 4),
    "streamed": ("epur", "gnmt-enc", "ebatch", {"batch_size": 4, "timesteps": 8}, [16] * 4),
    "spill": ("epur", "eesen", "ebatch", {"batch_size": 16, "timesteps": 32}, [64] * 16),
}


def _gemms(spec, layer, rows: int, columns: int, fetched: bool, fits: bool) -> list[tuple]:
    """(M, K, N, weights in DRAM, outputs in DRAM) of one invocation's products."""
    cells = rows * columns
    spills = working_set_bytes(spec, cells, layer.hidden_size, layer.gate_rows) > spec.activation_buffer_bytes
    out = [(cells, layer.input_size, layer.gate_rows, fetched, spills)]
    for column in range(columns):  # a fitting layer is fetched whole once; a streamed one every time-step
        out.append((rows, layer.hidden_size, layer.gate_rows, fetched and (column == 0 or not fits), False))
    return out


def scenario_invocations(name: str) -> dict:
    """ebatch's energy of the scenario (per phase, dynamic only) and the counted GEMMs for ZigZag."""
    preset, model_name, policy, params, lengths = SCENARIOS[name]
    spec, model = load_preset(preset), get_model(model_name)
    result = ebatch.simulate(model, ebatch.Workload.from_lengths(lengths), policy, spec, keep_plan=True, **params)
    replay = AcceleratorModel(spec, model)
    gemms: Counter = Counter()
    totals = Counter()
    invocations = 0
    for _, step in result.plan:
        cost = replay.cost(step)
        layer = model.layers[step.layer]
        w_bytes = (layer.input_params + layer.recurrent_params) * spec.bytes_per_weight
        fits = w_bytes <= spec.weight_buffer_bytes
        fetched = cost.breakdown["dram_weight_bytes"] > 0
        rows = step.occupied_rows
        parts = [(step.width, fetched)] if step.fused else [(1, fetched and (i == 0 or not fits))
                                                            for i in range(step.width)]
        for columns, this_fetched in parts:
            invocations += 1
            gemms.update(_gemms(spec, layer, rows, columns, this_fetched, fits))
            ws = working_set_bytes(spec, rows * columns, layer.hidden_size, layer.gate_rows)
            totals["working_set_spill_bytes"] += spill_bytes(ws, spec.activation_buffer_bytes)
            totals["sram_weight_bytes"] += (layer.input_params + columns * layer.recurrent_params) \
                * spec.bytes_per_weight
        for key in ("dram_j", "sram_j", "mac_j", "dram_weight_bytes", "dram_spill_bytes", "macs"):
            totals[key] += cost.breakdown[key]
    totals["waiting_output_bytes"] = totals["dram_spill_bytes"] - totals["working_set_spill_bytes"]
    return {
        "scenario": name, "preset": preset, "model": model_name, "policy": policy, "params": params,
        "lengths": lengths, "steps": len(result.plan), "invocations": invocations, "ebatch": dict(totals),
        "constants": {"dram_j_per_byte": spec.dram_energy_j_per_byte, "sram_j_per_byte": spec.sram_energy_j_per_byte,
                      "mac_j": spec.mac_energy_j},
        "gemms": [{"m": m, "k": k, "n": n, "weights_in_dram": w, "outputs_in_dram": o, "count": c}
                  for (m, k, n, w, o), c in sorted(gemms.items())],
    }


def gemm_job_id(preset: str, gemm: dict) -> str:
    """The ZigZag job of one distinct GEMM (shared by scenarios on the same preset)."""
    return (f"seq-{preset}-m{gemm['m']}-k{gemm['k']}-n{gemm['n']}-w{'dram' if gemm['weights_in_dram'] else 'buf'}"
            + ("-spill" if gemm["outputs_in_dram"] else ""))
