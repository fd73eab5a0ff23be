"""ebatch's side of the latency cross-check: double buffering and compute/DRAM overlap against ZigZag.

For every zoo layer shape (input projection K = input size and recurrent product K = hidden, N = gate
rows) at B in :data:`BATCH_SIZES` on each preset, three cases, each priced by ZigZag on an accelerator
built from the preset (:mod:`zigzag_inputs`) with its minimum-latency mapping:

- ``dram``: the weights come from DRAM (a miss, or a streamed layer; every ``tpu-v1`` step): ebatch's
  time is ``max(gemm_cycles, DRAM bytes / bytes per cycle)``, the two overlapping perfectly;
- ``buffer``: the weights already sit in the weight buffer (only where the matrix fits it): ebatch's time
  is ``gemm_cycles`` with the preset's double buffering; ZigZag's PEs get two weight registers;
- ``buffer-sb``: the same with one weight register per PE in ZigZag and ebatch's single-buffered count.

ZigZag's latency model charges a memory stall wherever a level cannot deliver a loop's data within the
loop, and the weight registers' refill (one array row a cycle from the weight buffer) is such a transfer,
so it checks both assumptions independently of ebatch's formulas.
"""

from __future__ import annotations

from ebatch.hardware.cost import gemm_cycles
from ebatch.hardware.preset import load_preset
from ebatch.model import ZOO

__all__ = ["BATCH_SIZES", "PRESETS", "latency_cases"]

BATCH_SIZES = (1, 8, 64)
PRESETS = ("tpu-v1", "epur")


def _shapes() -> list[tuple[int, int, str]]:
    """Distinct (K, N) of the zoo's products, with the first model and layer that has each."""
    seen: dict[tuple[int, int], str] = {}
    for model in ZOO.values():
        for index, layer in enumerate(model.layers):
            for product, k in (("W_ih", layer.input_size), ("W_hh", layer.hidden_size)):
                seen.setdefault((k, layer.gate_rows), f"{model.name} layer {index + 1} {product}")
    return [(k, n, where) for (k, n), where in sorted(seen.items())]


def latency_cases() -> list[dict]:
    """Every case with ebatch's cycles; ``job`` names the ZigZag job that prices it."""
    cases = []
    for preset in PRESETS:
        spec = load_preset(preset)
        bytes_per_cycle = spec.dram_bandwidth_bytes_per_s / spec.clock_hz
        array = (spec.array_rows, spec.array_cols)
        for k, n, where in _shapes():
            weight_bytes = k * n * spec.bytes_per_weight
            for m in BATCH_SIZES:
                compute = gemm_cycles(m, k, n, *array, spec.weights_double_buffered)
                dram = weight_bytes / bytes_per_cycle
                variants = [("dram", compute, dram, max(compute, dram))]
                if weight_bytes <= spec.weight_buffer_bytes:
                    variants.append(("buffer", compute, 0.0, compute))
                    single = gemm_cycles(m, k, n, *array, False)
                    variants.append(("buffer-sb", single, 0.0, single))
                for variant, compute_cycles, dram_cycles, cycles in variants:
                    cases.append({
                        "preset": preset, "variant": variant, "m": m, "k": k, "n": n, "where": where,
                        "folds": -(-k // spec.array_rows) * -(-n // spec.array_cols),
                        "ebatch_compute_cycles": compute_cycles, "ebatch_dram_cycles": dram_cycles,
                        "ebatch_cycles": cycles, "job": f"lat-{preset}-{variant}-m{m}-k{k}-n{n}",
                    })
    return cases
