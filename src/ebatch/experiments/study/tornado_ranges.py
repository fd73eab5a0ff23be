"""The plausible range of every assumption the tornado study varies: one table, as data, each range with its reason.

What is varied (:func:`varied_parameters`): every preset parameter whose source says ``assumption`` anywhere
(parsed from the preset, not listed here) and every modelling choice of :data:`MODELLING_CHOICES`, whatever its
source says. :data:`RANGES` gives each (preset, parameter) a low and a high value and why; :func:`ranges_for`
returns a preset's rows and raises ``ValueError`` naming any varied parameter without one, or a range that
does not hold the preset's own value or that the preset refuses (``HardwareSpec.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ebatch.hardware import HardwareSpec, load_preset

__all__ = ["MODELLING_CHOICES", "RANGES", "ParameterRange", "assumed_parameters", "ranges_for", "varied_parameters"]

#: Modelling choices varied on every preset, sourced or not.
MODELLING_CHOICES = (
    "weights_double_buffered", "dram_overlap", "spill_dram_passes", "invocation_overhead_s", "notify_latency_s",
)


@dataclass(frozen=True)
class ParameterRange:
    """The plausible ``low`` and ``high`` values of one preset parameter, and why (``reason``)."""

    preset: str
    parameter: str
    low: float | bool
    high: float | bool
    reason: str


def _both(parameter: str, low, high, reason: str) -> tuple[ParameterRange, ...]:
    return tuple(ParameterRange(p, parameter, low, high, reason) for p in ("epur", "tpu-v1"))


_MIB = 2**20
RANGES: tuple[ParameterRange, ...] = (
    # ---- modelling choices, both presets
    *_both("weights_double_buffered", False, True,
           "the cycle formula with and without prefetching the next fold's weights; SCALE-Sim checks only the "
           "single-buffered one (docs/validation.md)"),
    *_both("dram_overlap", 0.0, 1.0,
           "from no overlap (compute + DRAM, the array stalls on every transfer) to perfect overlap (max); ZigZag's "
           "latency for a DRAM-bound GEMM sits 13-22% above max (issue 13), inside this range"),
    *_both("spill_dram_passes", 0.0, 4.0,
           "0: a window tiled so its working set always fits (no spill); 2: written once, read once; 4: the gate "
           "accumulators also make a round trip between the input GEMM and the recurrent product"),
    # ---- epur (E-PUR-like, Silfa et al. PACT 2018; the preset's values are ours)
    ParameterRange("epur", "clock_hz", 300e6, 1.0e9,
                   "low-power 28 nm accelerators run at a few hundred MHz to about 1 GHz"),
    ParameterRange("epur", "array_rows", 8, 32, "half to twice the assumed 16 rows"),
    ParameterRange("epur", "array_cols", 32, 128, "half to twice the assumed 64 columns"),
    ParameterRange("epur", "bytes_per_accumulator", 2, 4, "FP16 accumulation (2 B) to the assumed FP32 (4 B)"),
    ParameterRange("epur", "weight_buffer_bytes", 2 * _MIB, 16 * _MIB,
                   "half the assumed 4 MiB, up to 16 MiB: both FP16 matrices of a 1024-wide LSTM layer (8 M weights)"),
    ParameterRange("epur", "activation_buffer_bytes", _MIB // 2, 8 * _MIB, "a quarter to 4x the assumed 2 MiB"),
    ParameterRange("epur", "dram_bandwidth_bytes_per_s", 6.4e9, 25.6e9,
                   "one 16-bit LPDDR4-3200 channel to two 32-bit ones (half to twice the assumed one 32-bit channel)"),
    ParameterRange("epur", "dram_energy_j_per_byte", 2.4e-11, 1.2e-10,
                   "3 to 15 pJ/bit: LPDDR4X-class interfaces at the low end; the high end toward Horowitz's "
                   "20-40 pJ/bit for DDR3 (ISSCC 2014)"),
    ParameterRange("epur", "sram_energy_j_per_byte", 3.1e-12, 1.25e-11,
                   "Horowitz's 45 nm 1 MB SRAM (12.5 pJ/B) down to a quarter of it: 28 nm and smaller banks"),
    ParameterRange("epur", "mac_energy_j", 3.9e-13, 1.5e-12,
                   "Horowitz's 45 nm FP16 multiply-add (1.5 pJ) down to a quarter (28 nm at a lower voltage)"),
    ParameterRange("epur", "static_power_w", 0.1, 1.0, "a third to 3.3x the assumed 0.3 W of leakage"),
    ParameterRange("epur", "timestep_latency_cycles", 8, 128, "a quarter to 4x the assumed 32 cycles per time-step"),
    ParameterRange("epur", "invocation_overhead_s", 0.0, 1.0e-6,
                   "none (on-chip controller) to one host command over PCIe per invocation (tpu-v1's assumption)"),
    ParameterRange("epur", "notify_latency_s", 0.0, 1.0e-6,
                   "none to one PCIe interrupt per finished sequence (tpu-v1's assumption)"),
    # ---- tpu-v1 (Jouppi et al. ISCA 2017; only these values are ours)
    ParameterRange("tpu-v1", "sram_energy_j_per_byte", 6.25e-12, 2.5e-11,
                   "half to twice Horowitz's 1 MB figure for the banked 24 MiB unified buffer"),
    ParameterRange("tpu-v1", "mac_energy_j", 1.5e-13, 3.0e-13,
                   "Horowitz's 45 nm 8-bit multiply + 32-bit add (0.3 pJ) down to half (28 nm)"),
    ParameterRange("tpu-v1", "timestep_latency_cycles", 32, 512, "a quarter to 4x the assumed 128 cycles"),
    ParameterRange("tpu-v1", "invocation_overhead_s", 0.0, 1.0e-5,
                   "none to 10 us: a few PCIe round trips per instruction group"),
    ParameterRange("tpu-v1", "notify_latency_s", 0.0, 1.0e-5, "none to 10 us of interrupt handling per sequence"),
)


def assumed_parameters(spec: HardwareSpec) -> list[str]:
    """Parameters whose source says ``assumption`` anywhere (also "..., assumption: not scaled"), in spec order."""
    return [n for n in spec.parameter_names() if "assumption" in str(spec.sources.get(n, "")).lower()]


def varied_parameters(spec: HardwareSpec) -> list[str]:
    """What the tornado varies on ``spec``: its assumed parameters, then the modelling choices not among them."""
    assumed = assumed_parameters(spec)
    return assumed + [n for n in MODELLING_CHOICES if n not in assumed]


def ranges_for(preset: str | HardwareSpec) -> list[ParameterRange]:
    """The rows of :data:`RANGES` for ``preset``, in :func:`varied_parameters` order; checked (module docstring)."""
    spec = preset if isinstance(preset, HardwareSpec) else load_preset(preset)
    table = {(r.preset, r.parameter): r for r in RANGES}
    rows = []
    for name in varied_parameters(spec):
        row = table.get((spec.name, name))
        if row is None:
            raise ValueError(f"tornado: no plausible range for {spec.name}'s {name}; add a ParameterRange to "
                             "RANGES in ebatch/experiments/study/tornado_ranges.py")
        base = getattr(spec, name)
        if not row.low <= base <= row.high:
            raise ValueError(f"tornado: {spec.name}'s {name} = {base} lies outside its range "
                             f"[{row.low}, {row.high}]; widen the range in RANGES or fix the preset")
        for value in (row.low, row.high):
            spec.replace(**{name: value})  # raises PresetError (a ValueError) naming the field
        rows.append(row)
    return rows
