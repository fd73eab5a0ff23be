"""Run SCALE-Sim (PyPI ``scalesim``) on every zoo GEMM listed by ``prepare.py``; write its cycle counts.

Runs in ``validation/.venv-scalesim`` (SCALE-Sim needs numpy<2); does not import ebatch. For each preset
in ``gemms.json``, each distinct (M, K, N) becomes a one-row GEMM topology (``Layer, M, N, K,``) run on
the preset's configuration (``configs/scalesim_tpu_v1.cfg``, ``configs/scalesim_epur.cfg``):

- **full**: SCALE-Sim's normal entry point (``scalesim.scale_sim.scalesim(...).run_scale``: compute
  model, then the cycle-by-cycle SRAM/DRAM simulation), whose ``COMPUTE_REPORT.csv`` gives
  ``Total Cycles`` and ``Stall Cycles``. Its memory simulation is a Python loop over cycles (about
  0.3 ms a cycle here), so it is run for the GEMMs of at most ``--full-max-cycles`` cycles.
- **compute**: for every GEMM, SCALE-Sim's own weight-stationary compute model
  (``operand_matrix`` + ``systolic_compute_ws``, exactly as ``single_layer_sim.run`` calls them) builds
  the demand matrices, one row per cycle; with stall-free bandwidth (CALC) the reported ``Total Cycles``
  is the index of the last row, ``rows - 1``. Where both ran, the two are compared (``agrees``).

Results are cached in ``work/scalesim/cache.json`` (key: config file digest and M, K, N), so a rerun
only simulates what is new. Output: ``work/scalesim_cycles.json`` (``{"presets": {name: ...}}``).

Usage: ``validation/.venv-scalesim/bin/python validation/scalesim_run.py [--work DIR] [--full-max-cycles N]``.
"""

from __future__ import annotations

import argparse
import configparser
import csv
import hashlib
import json
import time
from pathlib import Path

from scalesim.compute.operand_matrix import operand_matrix
from scalesim.compute.systolic_compute_ws import systolic_compute_ws
from scalesim.layout_utils import layouts
from scalesim.scale_config import scale_config
from scalesim.scale_sim import scalesim
from scalesim.topology_utils import topologies

__all__ = ["compute_cycles", "full_run"]

HERE = Path(__file__).parent


def _inputs(folder: Path, name: str, m: int, k: int, n: int) -> tuple[Path, Path]:
    """A one-layer GEMM topology (SCALE-Sim's ``-i gemm`` format) and an empty layout file."""
    folder.mkdir(parents=True, exist_ok=True)
    topology, layout = folder / f"{name}.csv", folder / "layout.csv"
    topology.write_text(f"Layer, M, N, K,\n{name}, {m}, {n}, {k},\n")
    layout.write_text("Layer name,\n")
    return topology, layout


def compute_cycles(topology: Path, layout: Path, config: Path) -> dict:
    """SCALE-Sim's WS compute model alone: demand-matrix rows (cycles), folds, mapping efficiency."""
    cfg = scale_config()
    cfg.read_conf_file(str(config))
    topo = topologies()
    topo.load_arrays(topofile=str(topology), mnk_inputs=True)
    lay = layouts()
    lay.load_arrays(layoutfile=str(layout), mnk_inputs=True)
    op_mat = operand_matrix()
    op_mat.set_params(config_obj=cfg, topoutil_obj=topo, layoututil_obj=lay, layer_id=0)
    _, ifmap = op_mat.get_ifmap_matrix()
    _, filt = op_mat.get_filter_matrix()
    _, ofmap = op_mat.get_ofmap_matrix()
    ratio_n, ratio_m = topo.get_layer_sparsity_ratio(0)
    ws = systolic_compute_ws()
    ws.set_params(
        config_obj=cfg, ifmap_op_mat=ifmap, filter_op_mat=filt, ofmap_op_mat=ofmap,
        sparsity_ratio_N=ratio_n, sparsity_ratio_M=ratio_m,
        ifmap_op_mat_original=op_mat.ifmap_addr_matrix_original, sparsity_filter_array=op_mat.sparse_filter_array,
    )
    _, _, ofmap_demand = ws.get_demand_matrices()
    rows = int(ofmap_demand.shape[0])
    return {
        "demand_rows": rows, "cycles": rows - 1, "row_folds": int(ws.row_fold), "col_folds": int(ws.col_fold),
        "mapping_efficiency_pct": 100 * ws.get_avg_mapping_efficiency(),
    }


def full_run(topology: Path, layout: Path, config: Path, out: Path) -> dict:
    """SCALE-Sim's normal run (compute + memory simulation); its COMPUTE_REPORT.csv row."""
    out.mkdir(parents=True, exist_ok=True)  # SCALE-Sim makes only the last level (os.mkdir)
    sim = scalesim(save_disk_space=True, verbose=False, config=str(config), topology=str(topology),
                   layout=str(layout), input_type_gemm=True)
    sim.run_scale(top_path=str(out))
    report = out / sim.config.get_run_name() / "COMPUTE_REPORT.csv"
    with report.open() as handle:
        row = next(csv.DictReader(handle, skipinitialspace=True))
    return {
        "total_cycles_incl_prefetch": int(float(row["Total Cycles (incl. prefetch)"])),
        "cycles": int(float(row["Total Cycles"])), "stall_cycles": int(float(row["Stall Cycles"])),
        "overall_util_pct": float(row["Overall Util %"]), "mapping_efficiency_pct": float(row["Mapping Efficiency %"]),
    }


def run_preset(work: Path, table: dict, full_max_cycles: float) -> dict:
    """SCALE-Sim's cycles of every distinct GEMM of one preset's table (cached)."""
    config = HERE.parent / table["scalesim_config"]
    conf = configparser.ConfigParser()
    conf.read(config)
    dims = (int(conf["architecture_presets"]["ArrayHeight"]), int(conf["architecture_presets"]["ArrayWidth"]))
    if dims != (table["array_rows"], table["array_cols"]):
        raise ValueError(f"scalesim config: array {dims} differs from the {table['preset']} preset's "
                         f"{(table['array_rows'], table['array_cols'])}; edit {config}")
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12]
    cache_path = work / "scalesim" / "cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    shapes = sorted({(g["m"], g["k"], g["n"]) for g in table["gemms"]}, key=lambda s: s[0] * s[1] * s[2])
    start = time.perf_counter()
    for m, k, n in shapes:
        key = f"{digest}:{m},{k},{n}"
        entry = cache.get(key, {})
        name = f"{table['preset']}_gemm_m{m}_k{k}_n{n}"
        topology, layout = _inputs(work / "scalesim" / "topologies", name, m, k, n)
        if "compute" not in entry:
            t0 = time.perf_counter()
            entry["compute"] = compute_cycles(topology, layout, config)
            entry["compute"]["wall_s"] = time.perf_counter() - t0
        if "full" not in entry and entry["compute"]["cycles"] <= full_max_cycles:
            t0 = time.perf_counter()
            entry["full"] = full_run(topology, layout, config, work / "scalesim" / "runs" / name)
            entry["full"]["wall_s"] = time.perf_counter() - t0
        cache[key] = entry
        cache_path.write_text(json.dumps(cache, indent=1))
        done = "full" if "full" in entry else "compute"
        print(f"scalesim {name}: {entry.get('full', entry['compute'])['cycles']} cycles ({done})", flush=True)
    results = []
    for m, k, n in shapes:
        entry = cache[f"{digest}:{m},{k},{n}"]
        full = entry.get("full")
        results.append({
            "m": m, "k": k, "n": n, "mode": "full" if full else "compute",
            "cycles": full["cycles"] if full else entry["compute"]["cycles"],
            "stall_cycles": full["stall_cycles"] if full else None,
            "compute_cycles": entry["compute"]["cycles"],
            "agrees": (full["cycles"] == entry["compute"]["cycles"]) if full else None,
            "row_folds": entry["compute"]["row_folds"], "col_folds": entry["compute"]["col_folds"],
            "full": full, "compute": entry["compute"],
        })
    return {"config": table["scalesim_config"], "config_digest": digest, "full_max_cycles": full_max_cycles,
            "wall_s": time.perf_counter() - start, "shapes": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--full-max-cycles", type=float, default=40000,
                        help="run the full simulation for GEMMs of at most this many cycles (inf: all)")
    args = parser.parse_args()
    work = Path(args.work)
    tables = json.loads((work / "gemms.json").read_text())["presets"]
    out = {"presets": {name: run_preset(work, table, args.full_max_cycles) for name, table in tables.items()}}
    (work / "scalesim_cycles.json").write_text(json.dumps(out, indent=1))
    print(f"scalesim: {sum(len(p['shapes']) for p in out['presets'].values())} GEMMs written to "
          f"{work / 'scalesim_cycles.json'}")


if __name__ == "__main__":
    main()
