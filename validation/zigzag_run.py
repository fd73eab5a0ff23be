"""Run ZigZag (PyPI ``zigzag-dse``) on the GEMMs that ``prepare.py`` described; write their breakdowns.

Runs in ``validation/.venv-zigzag``; does not import ebatch. For every job of ``work/zigzag_jobs.json``
(``id``, ``folder`` with accelerator, mapping and workload YAML written by ``prepare.py`` from an ebatch
preset, ``opt``: ``energy`` or ``latency``) and for ZigZag's own shipped TPU-like example
(``zigzag/inputs/hardware/tpu_like.yaml`` with its ``tpu_like`` mapping, unchanged) on the one-GEMM
workload, it runs ``zigzag.api.get_hardware_performance_zigzag`` (LOMA temporal mapping search, the
mapping of minimum energy or latency) and records, per operand and memory level, the energy and the
number of bits moved, the MAC energy and the latency, into ``work/zigzag_energy.json``.

Results are cached in ``work/zigzag/cache.json`` (key: digest of the three files and ``opt``). A job that
fails is recorded with its error; jobs left when ``--budget-s`` has run out are recorded as skipped.

Usage: ``validation/.venv-zigzag/bin/python validation/zigzag_run.py [--work validation/work] [--budget-s S]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import yaml
import zigzag
from zigzag.api import get_hardware_performance_zigzag

__all__ = ["run_one", "summarise"]

STOCK_NAME = "zigzag-tpu_like"
STOCK_PRECISION = {"W": 8, "I": 8, "O": 16, "O_final": 8}
_PJ = 1e-12


def summarise(cme) -> dict:
    """Energy (J) and bits moved per operand and memory level, MAC energy and latency of one evaluation."""
    levels = []
    for op in cme.layer.layer_operands:
        mem_op = cme.memory_operand_links.layer_to_mem_op(op)
        for index in range(cme.mapping.mem_level[op]):
            level = cme.accelerator.get_memory_level(mem_op, index)
            accesses = cme.memory_word_access[op][index].data
            energies = cme.mem_energy_breakdown_further[op][index].data
            levels.append({
                "operand": str(op), "memory": level.name, "level": index,
                "energy_j": float(cme.mem_energy_breakdown[op][index]) * _PJ,
                "accesses": {str(d.value): float(n) for d, n in accesses.items()},
                "energy_by_direction_j": {str(d.value): float(e) * _PJ for d, e in energies.items()},
                "read_pj": float(level.read_energy), "write_pj": float(level.write_energy),
            })
    return {
        "mac_energy_j": float(cme.mac_energy) * _PJ,
        "memory_energy_j": float(cme.mem_energy) * _PJ,
        "energy_j": float(cme.energy_total) * _PJ,
        "latency_cycles": float(cme.latency_total2),
        "latency_parts": {
            "ideal_temporal_cycles": float(cme.ideal_temporal_cycle),
            "stall_slack_cycles": float(cme.stall_slack_comb),
            "onloading_cycles": float(cme.data_onloading_cycle),
            "offloading_cycles": float(cme.data_offloading_cycle),
            "systolic_drain_cycles": float(getattr(cme, "systolic_drain_cycle", 0)),
        },
        "ideal_cycles": float(cme.ideal_cycle),
        "spatial_unrolling": " x ".join(f"{d} {s:g}" for d, s in cme.mapping.spatial_mapping.spatial_loop_dim_size),
        "temporal_loops_inner_first": {str(op): [" ".join(f"{d}{s}" for d, s in level) for level in levels]
                                       for op, levels in cme.mapping.temporal_mapping.mapping_dic_origin.items()},
        "mac_count": int(cme.layer.total_mac_count),
        "levels": levels,
    }


def _layer_cme(found):
    """The single layer's evaluation inside the API's nested ``[(cumulative, [(layer cme, ...)])]`` answer."""
    if hasattr(found, "layer") and hasattr(found, "mem_energy_breakdown"):
        return found
    if isinstance(found, (list, tuple)):
        for item in reversed(found):  # the per-layer entries come after the cumulative one
            cme = _layer_cme(item)
            if cme is not None:
                return cme
    return None


def run_one(workload: Path, accelerator: Path, mapping: Path, dump: Path, opt: str = "energy") -> dict:
    """One ZigZag evaluation (mapping of minimum ``opt``) of ``workload``; returns :func:`summarise`'s dict."""
    start = time.perf_counter()
    if dump.exists():  # ZigZag appends to some of its outputs (loop_ordering.txt): start clean
        shutil.rmtree(dump)
    _, _, cmes = get_hardware_performance_zigzag(
        str(workload), str(accelerator), str(mapping), opt=opt, dump_folder=str(dump),
        loma_show_progress_bar=False,
    )
    summary = summarise(_layer_cme(cmes))
    summary["wall_s"] = time.perf_counter() - start
    summary["inputs"] = {"workload": str(workload), "accelerator": str(accelerator), "mapping": str(mapping)}
    return summary


def _energy_table(accelerator: Path) -> dict:
    """Per-byte energy of each memory of a ZigZag accelerator file (pJ per access / bytes per access)."""
    document = yaml.safe_load(accelerator.read_text())
    table = {}
    for name, mem in document["memories"].items():
        widths = [p["bandwidth_max"] for p in mem["ports"]]
        table[name] = {
            "operands": mem["operands"], "r_pj": mem.get("r_cost"), "w_pj": mem.get("w_cost"),
            "bits_per_access": max(widths), "size_bits": mem["size"],
            "r_pj_per_byte": mem.get("r_cost", 0) / (max(widths) / 8),
            "w_pj_per_byte": mem.get("w_cost", 0) / (max(widths) / 8),
        }
    table["mac"] = {"pj": document["operational_array"].get("unit_energy"),
                    "array": document["operational_array"]["sizes"]}
    return table


def _digest(folder: Path, opt: str) -> str:
    files = b"".join((folder / f"{name}.yaml").read_bytes() for name in ("accelerator", "mapping", "workload"))
    return hashlib.sha256(files + opt.encode() + getattr(zigzag, "__version__", "?").encode()).hexdigest()[:16]


def run_jobs(work: Path, budget_s: float) -> dict:
    """Every job of ``zigzag_jobs.json``, from the cache where it ran before; ``{id: summary or error}``."""
    jobs = json.loads((work / "zigzag_jobs.json").read_text())
    cache_path = work / "zigzag" / "cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    runs, start = {}, time.perf_counter()
    for index, job in enumerate(jobs):
        folder, opt = work / job["folder"], job.get("opt", "energy")
        key = _digest(folder, opt)
        if key not in cache:
            if time.perf_counter() - start > budget_s:
                runs[job["id"]] = {"error": f"skipped: the {budget_s:.0f} s budget (--budget-s) ran out"}
                continue
            try:
                summary = run_one(folder / "workload.yaml", folder / "accelerator.yaml", folder / "mapping.yaml",
                                  work / "zigzag_out" / job["id"], opt)
            except Exception as exc:  # noqa: BLE001 - one failing evaluation is recorded, not fatal
                runs[job["id"]] = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
                continue
            summary["costs"] = _energy_table(folder / "accelerator.yaml")
            summary["opt"] = opt
            cache[key] = summary
            cache_path.write_text(json.dumps(cache))
            logging.warning("zigzag %d/%d %s: %.3e J, %.0f cycles (%.1f s)", index + 1, len(jobs), job["id"],
                            summary["energy_j"], summary["latency_cycles"], summary["wall_s"])
        runs[job["id"]] = cache[key]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(Path(__file__).parent / "work"))
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="stop starting new (uncached) evaluations after this many seconds")
    args = parser.parse_args()
    work = Path(args.work)
    logging.getLogger().setLevel(logging.WARNING)
    results = {"zigzag_version": getattr(zigzag, "__version__", "?"), "runs": run_jobs(work, args.budget_s)}
    inputs = Path(zigzag.__file__).parent / "inputs"
    stock_hw, stock_map = inputs / "hardware" / "tpu_like.yaml", inputs / "mapping" / "tpu_like.yaml"
    # the same GEMM at the precisions of ZigZag's own examples (W, I 8 bits; partial sums 16, outputs 8):
    # the stock tpu_like's 16-bit output registers cannot hold 32-bit partial sums
    document = yaml.safe_load((work / "zigzag" / "tpu-v1" / "workload.yaml").read_text())
    document[0]["operand_precision"] = STOCK_PRECISION
    stock_workload = work / "zigzag_out" / "stock_workload.yaml"
    stock_workload.parent.mkdir(parents=True, exist_ok=True)
    stock_workload.write_text(yaml.safe_dump(document, sort_keys=False))
    results["runs"][STOCK_NAME] = run_one(stock_workload, stock_hw, stock_map, work / "zigzag_out" / STOCK_NAME)
    results["runs"][STOCK_NAME]["precision"] = STOCK_PRECISION
    results["runs"][STOCK_NAME]["costs"] = _energy_table(stock_hw)
    (work / "zigzag_energy.json").write_text(json.dumps(results, indent=1))
    print(f"zigzag: {len(results['runs'])} runs written to {work / 'zigzag_energy.json'}")


if __name__ == "__main__":
    main()
