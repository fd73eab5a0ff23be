"""The energy half of docs/validation.md: ebatch's per-level energy of one GEMM next to ZigZag's.

Two comparisons per GEMM: ZigZag on an accelerator built from the ebatch preset (same sizes and energy
per byte, so a difference is in what is counted), and ZigZag's own ``tpu_like`` example unchanged (its
energy table and hierarchy). Each difference over 20% gets an explanation computed from the numbers
(bytes read and written per level, loop folds, energy per byte).
"""

from __future__ import annotations

import math

from report_cycles import THRESHOLD, pct, rel, table

__all__ = ["energy_section", "largest_energy_difference", "zigzag_level"]

_READS = ("rd_out_to_low", "rd_out_to_high")
_WRITES = ("wr_in_by_high", "wr_in_by_low")


def zigzag_level(run: dict, operand: str | None = None, memory: str | None = None, names: tuple = ()) -> dict:
    """ZigZag energy and read/write energy of the levels matching operand and memory (or memory names)."""
    sel = [lv for lv in run["levels"] if (operand is None or lv["operand"] == operand)
           and (memory is None or lv["memory"] == memory) and (not names or lv["memory"] in names)]
    return {
        "j": sum(lv["energy_j"] for lv in sel),
        "read_j": sum(lv["energy_by_direction_j"][d] for lv in sel for d in _READS),
        "write_j": sum(lv["energy_by_direction_j"][d] for lv in sel for d in _WRITES),
    }


def _fmt_j(x: float) -> str:
    return f"{x:.3e}" if x else "0"


def _fmt_b(x: float) -> str:
    return f"{x:,.0f}"


def _derived_rows(eb: dict, run: dict) -> list[dict]:
    """(level, ebatch J, ebatch bytes, ZigZag J, ZigZag bytes r/w, why) for a preset-derived ZigZag run."""
    c, e, b = eb["constants"], eb["energy"], eb["bytes"]
    m, k, n = eb["m"], eb["k"], eb["n"]
    rows_, cols = c["array"]
    sram, dram = c["sram_j_per_byte"], c["dram_j_per_byte"]
    out_bytes = m * n * c["bytes_per_accumulator"]
    w_dram, w_sram = zigzag_level(run, "W", "dram"), zigzag_level(run, "W", "weight_buffer")
    i_sram, o_sram = zigzag_level(run, "I", "activation_buffer"), zigzag_level(run, "O", "activation_buffer")
    act_dram = zigzag_level(run, None, "dram")["j"] - w_dram["j"]
    col_folds = math.ceil(n / cols)
    rows = [
        ("DRAM, weights", e["dram_W_j"], f"{_fmt_b(b['dram_W'])} r", w_dram["j"],
         f"{_fmt_b(w_dram['read_j'] / dram)} r", "same bytes at the same energy per byte"),
        ("DRAM, activations (spill)", e["dram_spill_j"], _fmt_b(b["dram_spill"]), act_dram, "-",
         "activations fit on chip in both (ZigZag's DRAM holds weights only)"),
        ("SRAM, weights", e["sram_W_j"], f"{_fmt_b(b['sram_W'])} r", w_sram["j"],
         f"{_fmt_b(w_sram['read_j'] / sram)} r + {_fmt_b(w_sram['write_j'] / sram)} w",
         f"ZigZag also charges writing the {_fmt_b(w_sram['write_j'] / sram)} B fetched from DRAM into the weight "
         "buffer; ebatch charges only the buffer-to-array reads (`weight_traffic`), which agree "
         f"({pct(rel(e['sram_W_j'], w_sram['read_j']))})"),
        ("SRAM, inputs", e["sram_I_j"], f"{_fmt_b(b['sram_I'])} r", i_sram["j"],
         f"{_fmt_b(i_sram['read_j'] / sram)} r",
         f"ZigZag streams the M input rows once per column fold, ceil(N / {cols}) = {col_folds} passes "
         f"(observed {i_sram['read_j'] / e['sram_I_j']:.2f}x"
         + (", ZigZag truncates its access counts to whole accesses" if i_sram["read_j"] < col_folds * e["sram_I_j"]
            * 0.999 else "")
         + "); ebatch reads each input once per invocation (`activation_traffic`)" if e["sram_I_j"] else ""),
        ("SRAM, outputs", e["sram_O_j"], f"{_fmt_b(b['sram_O'] / 2)} w + {_fmt_b(b['sram_O'] / 2)} r", o_sram["j"],
         f"{_fmt_b(o_sram['write_j'] / sram)} w + {_fmt_b(o_sram['read_j'] / sram)} r",
         f"ebatch writes each 4-byte gate pre-activation once and reads it once (the read feeds the activation "
         f"functions, which ZigZag does not model); ZigZag writes the {_fmt_b(out_bytes)} B of outputs "
         f"{o_sram['write_j'] / sram / out_bytes:.0f}x and reads them {o_sram['read_j'] / sram / out_bytes:.0f}x"
         + (f": with K = {k} over {rows_} rows ({math.ceil(k / rows_)} reduction folds) its minimum-energy mapping "
            "accumulates only part of the reduction in the PE's output register and writes partial sums to the "
            "buffer and reads them back for the rest; ebatch counts no partial-sum traffic"
            if o_sram["read_j"] else ": the final outputs of a one-layer workload are written and never read")),
        ("SRAM, all", e["sram_W_j"] + e["sram_I_j"] + e["sram_O_j"], "", zigzag_level(run, names=("weight_buffer",
         "activation_buffer"))["j"], "", "the three SRAM rows above"),
        ("registers", 0.0, "-", zigzag_level(run, names=("w_reg", "o_reg"))["j"], "-",
         "ebatch has no register level; the derived ZigZag registers cost 0 by construction"),
        ("MAC", e["mac_j"], f"{m * k * n:,} MACs", run["mac_energy_j"], f"{run['mac_count']:,} MACs",
         "same MAC count at the same energy per MAC"),
    ]
    rows = [dict(zip(("level", "ebatch_j", "ebatch_b", "zz_j", "zz_b", "why"), r)) for r in rows]
    eb_total = sum(e.values())
    gaps = sorted(((r["zz_j"] - r["ebatch_j"], r["level"]) for r in rows if r["level"] != "SRAM, all"), reverse=True)
    rows.append({"level": "**total (dynamic)**", "ebatch_j": eb_total, "ebatch_b": "", "zz_j": run["energy_j"],
                 "zz_b": "", "why": "the rows above; ZigZag's extra: " + ", ".join(
                     f"{level} {gap:+.2e} J" for gap, level in gaps if abs(gap) > 0.01 * run["energy_j"])})
    lp = run["latency_parts"]
    rows.append({
        "level": "time (cycles)", "ebatch_j": eb["time_cycles"], "ebatch_b": "max(compute, DRAM)",
        "zz_j": run["latency_cycles"], "zz_b": "ZigZag latency",
        "why": f"ebatch: max({eb['compute_cycles']} compute, {eb['dram_cycles']:.0f} DRAM), weights streaming fully "
               f"under the computation; ZigZag: {lp['ideal_temporal_cycles']:.0f} compute + "
               f"{lp['stall_slack_cycles']:.0f} stall where its DRAM port cannot keep up within a loop + "
               f"{lp['onloading_cycles']:.0f} initial loading + {lp['offloading_cycles']:.0f} offloading + "
               f"{lp['systolic_drain_cycles']:.0f} systolic drain",
    })
    for r in rows:
        r["diff"] = rel(r["ebatch_j"], r["zz_j"]) if r["zz_j"] else (0.0 if not r["ebatch_j"] else float("inf"))
    return rows


def _stock_rows(eb: dict, run: dict) -> list[dict]:
    c, e = eb["constants"], eb["energy"]
    costs = run["costs"]
    dram_w = zigzag_level(run, "W", "dram")["j"]
    dram_act = zigzag_level(run, None, "dram")["j"] - dram_w
    regs = tuple(name for name in costs if name.startswith("rf"))
    srams = tuple(name for name in costs if name not in regs and name not in ("dram", "mac"))
    eb_sram = e["sram_W_j"] + e["sram_I_j"] + e["sram_O_j"]
    d = costs["dram"]
    rows = [
        ("DRAM, weights", e["dram_W_j"], dram_w,
         f"same bytes; DRAM read {d['r_pj_per_byte']:.1f} pJ/B in ZigZag's table vs {c['dram_j_per_byte'] * 1e12:.0f} "
         "pJ/B in ebatch's (Horowitz, DDR3 upper end)"),
        ("DRAM, activations", e["dram_spill_j"], dram_act,
         "ZigZag's tpu_like keeps inputs and outputs in DRAM (inputs read once, 8-bit outputs written once, at "
         f"{d['r_pj_per_byte']:.1f}/{d['w_pj_per_byte']:.1f} pJ/B); ebatch keeps them in the unified buffer"),
        ("SRAM, all", eb_sram, zigzag_level(run, names=srams)["j"],
         f"ZigZag's {', '.join(srams)} holds inputs and outputs only (weights go from DRAM straight to 128 B "
         f"per-PE registers) at {costs[srams[0]]['r_pj_per_byte']:.2f} pJ/B read vs ebatch's "
         f"{c['sram_j_per_byte'] * 1e12:.1f} pJ/B, with 16-bit partial sums instead of 32-bit"),
        ("registers", 0.0, zigzag_level(run, names=regs)["j"], "ebatch has no register level"),
        ("MAC", e["mac_j"], run["mac_energy_j"],
         f"{costs['mac']['pj']} pJ per MAC in ZigZag's table vs {c['mac_j'] * 1e12:.1f} pJ in ebatch's "
         "(Horowitz 45 nm 8-bit multiply + 32-bit add)"),
    ]
    rows = [dict(zip(("level", "ebatch_j", "zz_j", "why"), r)) for r in rows]
    rows.append({"level": "**total (dynamic)**", "ebatch_j": sum(e.values()), "zz_j": run["energy_j"],
                 "why": "the rows above: mostly the DRAM energy per byte"})
    for r in rows:
        r["diff"] = rel(r["ebatch_j"], r["zz_j"]) if r["zz_j"] else (0.0 if not r["ebatch_j"] else float("inf"))
    return rows


def _loops(run: dict, operand: str) -> str:
    memories = [lv["memory"] for lv in run["levels"] if lv["operand"] == operand]
    loops = run["temporal_loops_inner_first"].get(operand, [])
    return "; ".join(f"{mem}: {lp or 'none'}" for mem, lp in zip(memories, loops))


def _why(r: dict) -> str:
    return r["why"] if abs(r["diff"]) > THRESHOLD else ""


def largest_energy_difference(ebatch: dict, zigzag: dict) -> tuple[str, dict]:
    """(preset, row) of the largest ratio either way among the preset-derived comparisons' energy rows."""
    found = []
    for preset, eb in ebatch["presets"].items():
        if preset in zigzag["runs"]:
            for r in _derived_rows(eb, zigzag["runs"][preset]):
                if r["level"] != "time (cycles)" and r["zz_j"] and r["ebatch_j"]:
                    found.append((preset, r))
    return max(found, key=lambda pr: abs(math.log(pr[1]["ebatch_j"] / pr[1]["zz_j"])))


def energy_section(ebatch: dict, zigzag: dict, stock_name: str) -> str:
    g = ebatch["gemm"]
    out = [
        "## Energy: ebatch vs ZigZag, one GEMM",
        "",
        f"GEMM: {g['model']} layer {g['layer'] + 1}'s input projection W_ih at B = {g['batch']}: M = {g['m']}, "
        f"K = {g['k']}, N = {g['n']}. ebatch: the cost phases for this product alone (`weight_traffic` with a cold "
        "buffer, `activation_traffic` for its inputs and gate accumulators, MACs x `mac_energy_j`); static energy "
        "is left out (ZigZag has none). ZigZag: `get_hardware_performance_zigzag` (LOMA mapper, minimum energy) "
        "on its GEMM form `O[b][k] += I[b][c] * W[c][k]`.",
        "",
        "Check that the split is ebatch's own: "
        + "; ".join(f"`{p}`: input projection + recurrent product + state write = `AcceleratorModel.cost` of the "
                    f"whole one-step invocation (SRAM {'yes' if s['sram_adds_up'] else 'NO'}, MAC "
                    f"{'yes' if s['mac_adds_up'] else 'NO'})" for p, s in ebatch["split_check"].items()) + ".",
    ]
    for preset, eb in ebatch["presets"].items():
        if preset not in zigzag["runs"]:
            continue
        run = zigzag["runs"][preset]
        c = eb["constants"]
        out += [
            "", f"### `{preset}`, ZigZag on the same accelerator", "",
            f"ZigZag input: `validation/work/zigzag/{preset}/` (generated by `validation/zigzag_inputs.py`): a "
            f"{c['array'][0]}x{c['array'][1]} weight-stationary array, {c['weight_buffer_bytes'] / 2**20:g} MiB weight "
            f"buffer, {c['activation_buffer_bytes'] / 2**20:g} MiB activation buffer (inputs and outputs) at "
            f"{c['sram_j_per_byte'] * 1e12:g} pJ/B, DRAM (weights) at {c['dram_j_per_byte'] * 1e12:g} pJ/B, "
            f"{c['mac_j'] * 1e12:g} pJ per MAC, per-PE registers at 0 pJ. ZigZag's minimum-energy mapping: "
            f"spatial {run['spatial_unrolling']} (C = K of the GEMM over the rows, K = N over the columns), "
            f"the outputs' temporal loops, per memory level (innermost first): {_loops(run, 'O')} "
            f"(all loops: `validation/work/zigzag_out/{preset}/loop_ordering.txt`). Energy in joules; bytes read "
            "(r) and written (w).", "",
            table(["level", "ebatch J", "ebatch bytes", "ZigZag J", "ZigZag bytes", "rel. diff", "why (> 20%)"],
                   [[r["level"], _fmt_j(r["ebatch_j"]) if r["level"] != "time (cycles)" else f"{r['ebatch_j']:.0f}",
                     r["ebatch_b"], _fmt_j(r["zz_j"]) if r["level"] != "time (cycles)" else f"{r['zz_j']:.0f}",
                     r["zz_b"], pct(r["diff"]) if math.isfinite(r["diff"]) else "n/a", _why(r)]
                    for r in _derived_rows(eb, run)]),
        ]
    if stock_name in zigzag["runs"] and "tpu-v1" in ebatch["presets"]:
        run, eb = zigzag["runs"][stock_name], ebatch["presets"]["tpu-v1"]
        costs = run["costs"]
        out += [
            "", "### `tpu-v1` next to ZigZag's own `tpu_like` example (its energy table, unchanged)", "",
            "ZigZag's shipped `inputs/hardware/tpu_like.yaml` and `inputs/mapping/tpu_like.yaml` on the same GEMM, "
            f"at the precisions of ZigZag's examples ({run.get('precision')}): a {costs['mac']['array'][0]}x"
            f"{costs['mac']['array'][1]} array, DRAM holding weights, inputs and outputs. Energy per byte (read) in "
            "its table: " + ", ".join(f"{name} {v['r_pj_per_byte']:.3g} pJ/B" for name, v in costs.items()
                                       if name != "mac") + f", MAC {costs['mac']['pj']} pJ.", "",
            table(["level", "ebatch `tpu-v1` J", "ZigZag tpu_like J", "rel. diff", "why (> 20%)"],
                   [[r["level"], _fmt_j(r["ebatch_j"]), _fmt_j(r["zz_j"]),
                     pct(r["diff"]) if math.isfinite(r["diff"]) else "n/a", _why(r)]
                    for r in _stock_rows(eb, run)]),
        ]
    return "\n".join(out)
