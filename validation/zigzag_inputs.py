"""ZigZag input files (accelerator, mapping, workload) for one GEMM on an ebatch hardware preset.

The accelerator mirrors the preset as ebatch models it, so that a difference with ZigZag comes from how
accesses are counted, not from the energy tables:

- a systolic ``rows x cols`` MAC array, ``unit_energy`` = the preset's ``mac_energy_j``; the reduction
  dimension C (ebatch's K) unrolled over the rows (D1), the output dimension K (ebatch's N) over the
  columns (D2): weight-stationary, as SCALE-Sim and ebatch assume;
- per-PE registers for the weight (two if double-buffered) and the partial sum, at zero energy (ebatch
  has no register level; ZigZag needs one to hold the stationary weight);
- ``weight_buffer`` (W) and ``activation_buffer`` (I and O) of the preset's sizes, at its SRAM energy;
- ``dram`` holding the weights (``weights_in_dram``; otherwise they start in the weight buffer, as a
  layer ebatch finds resident) and, with ``outputs_in_dram``, the outputs too: ebatch keeps activations
  on chip unless the working set exceeds the activation buffer (a spill), so ZigZag gets a DRAM for the
  outputs only where ebatch spills, and then chooses itself what goes there.

Every memory's port moves at most ``bandwidth_max`` bits a cycle and is charged per ``bandwidth_min =
8`` bits, so ``r_cost = w_cost = energy per byte x bandwidth_max / 8`` (pJ) makes ZigZag charge energy
per byte moved, like ebatch.
Raises ``ValueError`` when the preset's byte widths are not whole bits.
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["accelerator", "mapping", "workload", "write_zigzag_inputs"]

_PJ = 1e12


def _bits(nbytes: float, what: str) -> int:
    bits = nbytes * 8
    if bits != int(bits) or bits < 1:
        raise ValueError(f"zigzag inputs: {what} = {nbytes} bytes is not a whole number of bits")
    return int(bits)


def _port(name: str, kind: str, bw_max: int, allocation: list[str], bw_min: int = 8) -> dict:
    return {"name": name, "type": kind, "bandwidth_min": bw_min, "bandwidth_max": bw_max, "allocation": allocation}


def _memory(size_bits: int, pj_per_byte: float, bw_bits: int, operands: list[str], ports: list[dict],
            served: list[str]) -> dict:
    cost = pj_per_byte * bw_bits / 8
    return {
        "size": int(size_bits), "r_cost": float(cost), "w_cost": float(cost), "area": 0.0, "latency": 1,
        "operands": operands, "ports": ports, "served_dimensions": served,
    }


def _register(bits: int, operand: str) -> dict:
    if operand == "O":
        ports = [_port("r_port_1", "read", bits, ["O, tl"], bits), _port("r_port_2", "read", bits, ["O, th"], bits),
                 _port("w_port_1", "write", bits, ["O, fh"], bits), _port("w_port_2", "write", bits, ["O, fl"], bits)]
    else:
        ports = [_port("r_port_1", "read", bits, [f"{operand}, tl"], bits),
                 _port("w_port_1", "write", bits, [f"{operand}, fh"], bits)]
    return {"size": bits, "r_cost": 0.0, "w_cost": 0.0, "area": 0.0, "latency": 1, "operands": [operand],
            "ports": ports, "served_dimensions": []}


def accelerator(spec, weights_in_dram: bool = True, outputs_in_dram: bool = False) -> dict:
    """A ZigZag accelerator description of an ebatch :class:`~ebatch.hardware.preset.HardwareSpec`."""
    w_bits = _bits(spec.bytes_per_weight, "bytes_per_weight")
    i_bits = _bits(spec.bytes_per_activation, "bytes_per_activation")
    o_bits = _bits(spec.bytes_per_accumulator, "bytes_per_accumulator")
    sram_pj = spec.sram_energy_j_per_byte * _PJ
    # widths: the weight buffer fills one array row a cycle; the activation buffer feeds one input
    # vector (rows) or takes one output vector (cols) a cycle; DRAM moves bandwidth / clock.
    w_bw = spec.array_cols * w_bits
    act_bw = max(spec.array_rows * i_bits, spec.array_cols * o_bits)
    dram_bw = max(8, int(round(spec.dram_bandwidth_bytes_per_s / spec.clock_hz)) * 8)
    memories = {
        "w_reg": _register(w_bits * (2 if spec.weights_double_buffered else 1), "I2"),
        "o_reg": _register(o_bits, "O"),
        "weight_buffer": _memory(
            spec.weight_buffer_bytes * 8, sram_pj, w_bw, ["I2"],
            [_port("r_port_1", "read", w_bw, ["I2, tl"]), _port("w_port_1", "write", w_bw, ["I2, fh"])],
            ["D1", "D2"],
        ),
        "activation_buffer": _memory(
            spec.activation_buffer_bytes * 8, sram_pj, act_bw, ["I1", "O"],
            [_port("r_port_1", "read", act_bw, ["I1, tl", "O, tl", "O, th"]),
             _port("w_port_1", "write", act_bw, ["I1, fh", "O, fh", "O, fl"])],
            ["D1", "D2"],
        ),
    }
    operands = (["I2"] if weights_in_dram else []) + (["O"] if outputs_in_dram else [])
    if operands:
        allocation = (["I2, fh", "I2, tl"] if weights_in_dram else []) + (
            ["O, fh", "O, tl", "O, fl", "O, th"] if outputs_in_dram else [])
        memories["dram"] = _memory(2**36, spec.dram_energy_j_per_byte * _PJ, dram_bw, operands,
                                   [_port("rw_port_1", "read_write", dram_bw, allocation)], ["D1", "D2"])
    return {
        "name": f"ebatch_{spec.name}".replace("-", "_"),
        "memories": memories,
        "operational_array": {
            "input_precision": [i_bits, w_bits], "unit_energy": float(spec.mac_energy_j * _PJ), "unit_area": 1.0,
            "dimensions": ["D1", "D2"], "sizes": [spec.array_rows, spec.array_cols],
            # inputs move across the array and partial sums down it, as in ZigZag's tpu_like example
            "systolic_dimensions": ["D1", "D2"],
        },
    }


def mapping(spec) -> list[dict]:
    """Weight-stationary spatial mapping: reduction (C) over the rows, outputs (K) over the columns."""
    return [{
        "name": "default",
        "spatial_mapping": {"D1": [f"C, {spec.array_rows}"], "D2": [f"K, {spec.array_cols}"]},
        "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
    }]


def workload(spec, m: int, k: int, n: int) -> list[dict]:
    """One GEMM in ZigZag's form (its ``gemm_layer.yaml`` example): ``O[b][k] += I[b][c] * W[c][k]``."""
    o_bits = _bits(spec.bytes_per_accumulator, "bytes_per_accumulator")
    return [{
        "id": 0, "name": "gemm", "operator_type": "Gemm", "equation": "O[b][k]+=I[b][c]*W[c][k]",
        "dimension_relations": [], "loop_dims": ["B", "C", "K"], "loop_sizes": [int(m), int(k), int(n)],
        "operand_precision": {
            "W": _bits(spec.bytes_per_weight, "bytes_per_weight"),
            "I": _bits(spec.bytes_per_activation, "bytes_per_activation"), "O": o_bits, "O_final": o_bits,
        },
        "operand_source": {"I": 0, "W": 0},
    }]


def write_zigzag_inputs(spec, m: int, k: int, n: int, folder: Path, weights_in_dram: bool = True,
                        outputs_in_dram: bool = False) -> None:
    """Write ``accelerator.yaml``, ``mapping.yaml`` and ``workload.yaml`` for the GEMM into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in (("accelerator", accelerator(spec, weights_in_dram, outputs_in_dram)),
                           ("mapping", mapping(spec)),
                           ("workload", workload(spec, m, k, n))):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
