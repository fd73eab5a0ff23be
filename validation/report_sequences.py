"""The sequences part of docs/validation.md: ebatch's energy of whole invocation sequences next to ZigZag's.

ZigZag's figure of a scenario is the sum over its distinct GEMMs (:mod:`sequences`) of the GEMM's energy
times the number of times the policy's steps run it. Levels: DRAM (weights; outputs where ebatch spills),
the weight buffer, the activation buffer (inputs and outputs), the MACs.
"""

from __future__ import annotations

from report_cycles import pct, rel, table
from report_energy import zigzag_level

__all__ = ["sequence_levels", "sequences_section"]

SCENARIO_TEXT = {
    "cellular": "cellular batching's one-column invocations (each a run of single-time-step invocations)",
    "ebatch-fused": "E-BATCH's fused windows (one invocation per window, input projection of all its cells "
                    "as one GEMM)",
    "streamed": "a layer streamed because it exceeds the weight buffer (W_hh fetched every time-step)",
    "spill": "fused windows whose gate accumulators exceed the activation buffer (a spill)",
}


def sequence_levels(scenario: dict, zigzag: dict) -> dict | None:
    """ZigZag's energy per level summed over the scenario's GEMMs (``None`` when one has no result)."""
    total = {"dram_w_j": 0.0, "dram_o_j": 0.0, "sram_w_j": 0.0, "sram_act_j": 0.0, "sram_o_j": 0.0, "mac_j": 0.0,
             "energy_j": 0.0, "sram_w_write_j": 0.0}
    for gemm in scenario["gemms"]:
        run = zigzag["runs"].get(gemm["job"])
        if run is None or "error" in run:
            return None
        c = gemm["count"]
        sram_w = zigzag_level(run, "W", "weight_buffer")
        total["dram_w_j"] += c * zigzag_level(run, "W", "dram")["j"]
        total["dram_o_j"] += c * zigzag_level(run, "O", "dram")["j"]
        total["sram_w_j"] += c * sram_w["j"]
        total["sram_w_write_j"] += c * sram_w["write_j"]
        total["sram_act_j"] += c * zigzag_level(run, None, "activation_buffer")["j"]
        total["sram_o_j"] += c * zigzag_level(run, "O", "activation_buffer")["j"]
        total["mac_j"] += c * run["mac_energy_j"]
        total["energy_j"] += c * run["energy_j"]
    return total


def _rows(s: dict, z: dict) -> list[list]:
    e, k = s["ebatch"], s["constants"]
    dram, sram = k["dram_j_per_byte"], k["sram_j_per_byte"]
    sram_w = e["sram_weight_bytes"] * sram
    waiting = e["waiting_output_bytes"] * dram
    spill = e["working_set_spill_bytes"] * dram
    eb_total = e["dram_j"] + e["sram_j"] + e["mac_j"]

    def row(level, ours, theirs, why=""):
        return [level, f"{ours:.3e}", f"{theirs:.3e}" if theirs is not None else "-",
                pct(rel(ours, theirs)) if theirs else ("n/a" if theirs is None else "+0.0%"), why]

    return [
        row("DRAM, weights", e["dram_weight_bytes"] * dram, z["dram_w_j"], "by construction: ebatch decides which "
            "GEMMs read their weights from DRAM, ZigZag reads the matrix once from its top level"),
        row("DRAM, working-set spill", spill, z["dram_o_j"],
            "ebatch writes the excess over the buffer and reads it back; ZigZag, given a DRAM for the outputs, "
            "keeps each output tile's reduction on chip and writes finished outputs to DRAM once" if spill else ""),
        row("DRAM, waiting layer outputs", waiting, None,
            "outputs of a layer waiting for the layer above beside the working set (`WaitingOutputs`): between "
            "GEMMs, outside ZigZag's one-layer model" if waiting else ""),
        row("SRAM, weights", sram_w, z["sram_w_j"],
            f"ZigZag also writes the weights fetched from DRAM into the buffer ({z['sram_w_write_j']:.2e} J); "
            "the buffer-to-array reads agree by construction (same bytes)"),
        row("SRAM, activations", e["sram_j"] - sram_w, z["sram_act_j"],
            "ebatch: inputs and states once per cell, accumulators written and read once; ZigZag: inputs once per "
            f"column fold, partial sums per reduction fold (outputs {z['sram_o_j']:.2e} J of it), no state update"),
        row("MAC", e["mac_j"], z["mac_j"], "by construction: the same MAC count (padding included) and energy"),
        row("**total (dynamic)**", eb_total, z["energy_j"], "ebatch's includes the waiting outputs"),
    ]


def sequences_section(scenarios: list[dict], zigzag: dict, notes: list[str]) -> str:
    out = [
        "## Energy: ebatch vs ZigZag, whole invocation sequences",
        "",
        "Each scenario simulates a policy on a small workload (all requests at 0) on `epur`, replays its "
        "`BatchStep`s through a fresh `AcceleratorModel`, and cuts each invocation into its GEMMs: the input "
        "projection of all its cells and one recurrent product per column (`validation/sequences.py`). ZigZag "
        "(minimum-energy mapping) prices each distinct GEMM on the preset's accelerator, with the weights in DRAM "
        "where ebatch fetched them (a miss or a streamed layer) and in the weight buffer otherwise, and a DRAM for "
        "the outputs where ebatch's working set spills; its energies are summed with the counts. Static energy is "
        "left out (ZigZag has none).",
    ]
    for s in scenarios:
        z = sequence_levels(s, zigzag)
        out += ["", f"### {s['scenario']}: {SCENARIO_TEXT.get(s['scenario'], '')}", "",
                f"`{s['policy']}` {s['params']} on {s['model']}, `{s['preset']}`, request lengths {s['lengths']}: "
                f"{s['steps']} steps, {s['invocations']} invocations, {len(s['gemms'])} distinct GEMMs "
                f"({sum(g['count'] for g in s['gemms'])} in all).", ""]
        if z is None:
            out.append("ZigZag has no result for some of its GEMMs (see *How the tools ran*).")
            continue
        out.append(table(["level", "ebatch J", "ZigZag J", "rel. diff", "why"], _rows(s, z)))
    out += [""] + [f"- {note}" for note in notes]
    return "\n".join(out)
