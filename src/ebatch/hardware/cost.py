"""The generic accelerator cost model: prices a ``BatchStep`` in named phases.

Each invocation of a step (one for a fused step, one per column for a non-fused run) costs

- **weights** (:func:`weight_traffic`): a layer direction whose matrices fit the weight buffer is kept
  there, least recently used evicted; fetched from DRAM only on a miss. A larger one is streamed: the
  input matrix W_ih once per invocation (its product over all the invocation's cells is one GEMM), the
  recurrent matrix W_hh once per time-step. Every invocation reads W_ih, and every time-step W_hh, from
  the buffer into the array (SRAM energy).
- **compute** (:func:`gemm_cycles`): a weight-stationary R x C array; a K x N matrix is cut into
  ceil(K/R) x ceil(N/C) folds, each streaming the M batch rows (SCALE-Sim's analytical WS model).
- **recurrence**: the recurrent product of each time-step waits for the previous one, and each time-step
  adds ``timestep_latency_cycles`` (activations, state update).
- **activations** (:func:`activation_traffic`): per cell, the input and previous state are read, the
  new state written, the gate pre-activations written and read as accumulators; the invocation's
  working set beyond the activation buffer spills to DRAM (written once, read once).
- **time** = max(compute, DRAM transfer) + invocation overhead (weights stream while the array works).
- **static**: static power x time.

Energy = DRAM + SRAM + MAC + static; the breakdown's ``*_j`` entries add up to ``energy_j``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from ebatch.hardware.preset import HardwareSpec, load_preset
from ebatch.model import RNNModel, get_model
from ebatch.step import BatchStep

__all__ = ["AcceleratorModel", "StepCost", "gemm_cycles"]

ENERGY_KEYS = ("dram_j", "sram_j", "mac_j", "static_j")


@dataclass(frozen=True)
class StepCost:
    """Time and energy of one step, and the named parts they are made of (units in every key)."""

    time_s: float
    energy_j: float
    breakdown: dict

    @classmethod
    def total(cls, parts: list[StepCost]) -> StepCost:
        keys = {k for p in parts for k in p.breakdown}
        return cls(
            time_s=sum(p.time_s for p in parts),
            energy_j=sum(p.energy_j for p in parts),
            breakdown={k: sum(p.breakdown.get(k, 0.0) for p in parts) for k in sorted(keys)},
        )


def gemm_cycles(m: int, k: int, n: int, rows: int, cols: int, double_buffered: bool) -> int:
    """Cycles of an (m x k) @ (k x n) product on a weight-stationary ``rows x cols`` array.

    ``folds = ceil(k/rows) * ceil(n/cols)``. Without double buffering each fold loads its weights
    (``rows`` cycles), streams ``m`` rows and drains (``rows + cols - 2``): ``folds * (2 rows + cols + m - 2)``.
    With double buffering the next fold's weights load while the current one streams: the first fold's
    weights load alone (``rows``), every fold but the last takes ``max(m, rows)``, the last streams ``m``,
    and the drain is paid once: ``rows + (folds - 1) max(m, rows) + m + rows + cols - 2``. With one
    fold there is nothing to overlap and both forms agree (checked against SCALE-Sim in docs/validation.md).
    """
    folds = math.ceil(k / rows) * math.ceil(n / cols)
    if double_buffered:
        return rows + (folds - 1) * max(m, rows) + m + rows + cols - 2
    return folds * (2 * rows + cols + m - 2)


def weight_traffic(spec: HardwareSpec, input_bytes: float, recurrent_bytes: float, resident: bool, columns: int):
    """(DRAM bytes, buffer-to-array bytes) of one invocation of ``columns`` time-steps.

    ``resident``: the layer direction fits the buffer and was found there (then DRAM traffic is 0); a
    layer that fits but missed is fetched whole; one that does not fit streams W_ih once and W_hh per step.
    """
    to_array = input_bytes + columns * recurrent_bytes
    if input_bytes + recurrent_bytes <= spec.weight_buffer_bytes:
        return (0.0 if resident else input_bytes + recurrent_bytes), to_array
    return to_array, to_array


def activation_traffic(spec: HardwareSpec, cells: int, input_size: int, hidden: int, gate_rows: int):
    """(SRAM bytes, DRAM spill bytes) of the activations of ``cells`` cells evaluated in one invocation."""
    per_cell = (input_size + 2 * hidden) * spec.bytes_per_activation + 2 * gate_rows * spec.bytes_per_accumulator
    working_set = cells * (gate_rows * spec.bytes_per_accumulator + hidden * spec.bytes_per_activation)
    spill = 2.0 * max(0.0, working_set - spec.activation_buffer_bytes)
    return cells * per_cell, spill


class AcceleratorModel:
    """Prices steps of one model on one accelerator; keeps the weight buffer's LRU state between steps.

    ``cost(step)`` commits the step (updates the buffer); ``cost(step, commit=False)`` only estimates.
    A step's cost is a pure function of (layer, occupied rows, width, fused, weights resident), so it is
    computed once per such key and memoised until :meth:`reset`; each call gets its own breakdown dict.
    Raises ``ValueError`` (a :class:`~ebatch.hardware.preset.PresetError`) for an unknown preset.
    """

    def __init__(self, hardware: str | HardwareSpec, model: str | RNNModel) -> None:
        self.spec = hardware if isinstance(hardware, HardwareSpec) else load_preset(hardware)
        self.model = get_model(model)
        self.notify_latency_s = self.spec.notify_latency_s
        self.reset()

    def reset(self) -> None:
        self._buffer: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._costs: dict[tuple[int, int, int, bool, bool], StepCost] = {}
        bpw = self.spec.bytes_per_weight
        #: per layer: (W_ih bytes, W_hh bytes) of one direction
        self._weight_bytes = [(x.input_params * bpw, x.recurrent_params * bpw) for x in self.model.layers]

    def _touch(self, key: tuple[int, int], size: float, commit: bool) -> bool:
        """Whether ``key`` is resident; on commit, load it (evicting least recently used) if it fits."""
        hit = key in self._buffer
        if commit and size <= self.spec.weight_buffer_bytes:
            if hit:
                self._buffer.move_to_end(key)
            else:
                self._buffer[key] = size
                while sum(self._buffer.values()) > self.spec.weight_buffer_bytes:
                    self._buffer.popitem(last=False)
        return hit

    def cost(self, step: BatchStep, commit: bool = True) -> StepCost:
        input_bytes, recurrent_bytes = self._weight_bytes[step.layer]
        resident = self._touch((step.layer, step.direction), input_bytes + recurrent_bytes, commit)
        key = (step.layer, step.occupied_rows, step.width, step.fused, resident)
        cost = self._costs.get(key)
        if cost is None:
            layer = self.model.layers[step.layer]
            cost = self._costs[key] = self._price(step, layer, input_bytes, recurrent_bytes, resident)
        return StepCost(time_s=cost.time_s, energy_j=cost.energy_j, breakdown=dict(cost.breakdown))

    def _price(self, step: BatchStep, layer, input_bytes, recurrent_bytes, resident: bool) -> StepCost:
        rows = step.occupied_rows
        columns = step.width if step.fused else 1
        first = self._invocation(layer, rows, columns, input_bytes, recurrent_bytes, resident)
        if step.fused or step.width == 1:
            return first
        # later invocations of a run find the weights resident when they fit
        steady = self._invocation(layer, rows, columns, input_bytes, recurrent_bytes, True)
        rest = step.width - 1
        return StepCost(
            time_s=first.time_s + rest * steady.time_s,
            energy_j=first.energy_j + rest * steady.energy_j,
            breakdown={k: first.breakdown[k] + rest * steady.breakdown[k] for k in first.breakdown},
        )

    def _invocation(self, layer, rows: int, columns: int, input_bytes, recurrent_bytes, resident: bool) -> StepCost:
        spec = self.spec
        cells = rows * columns
        dram_weight, sram_weight = weight_traffic(spec, input_bytes, recurrent_bytes, resident, columns)
        sram_act, spill = activation_traffic(spec, cells, layer.input_size, layer.hidden_size, layer.gate_rows)

        args = (spec.array_rows, spec.array_cols, spec.weights_double_buffered)
        input_cycles = gemm_cycles(cells, layer.input_size, layer.gate_rows, *args)
        step_cycles = gemm_cycles(rows, layer.hidden_size, layer.gate_rows, *args) + spec.timestep_latency_cycles
        compute_s = input_cycles / spec.clock_hz
        recurrence_s = columns * step_cycles / spec.clock_hz
        dram_s = (dram_weight + spill) / spec.dram_bandwidth_bytes_per_s
        time_s = max(compute_s + recurrence_s, dram_s) + spec.invocation_overhead_s

        macs = cells * layer.macs_per_cell
        breakdown = {
            "dram_j": (dram_weight + spill) * spec.dram_energy_j_per_byte,
            "sram_j": (sram_weight + sram_act) * spec.sram_energy_j_per_byte,
            "mac_j": macs * spec.mac_energy_j,
            "static_j": spec.static_power_w * time_s,
            "input_gemm_s": compute_s,
            "recurrence_s": recurrence_s,
            "dram_s": dram_s,
            "dram_weight_bytes": dram_weight,
            "dram_spill_bytes": spill,
            "macs": float(macs),
            "peak_macs": time_s * spec.clock_hz * spec.array_rows * spec.array_cols,
        }
        energy_j = sum(breakdown[k] for k in ENERGY_KEYS)
        return StepCost(time_s=time_s, energy_j=energy_j, breakdown=breakdown)
