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
  working set beyond the activation buffer spills to DRAM: ``spill_dram_passes`` transfers per byte
  (2 by default: written once, read once; :func:`spill_bytes`).
- **waiting layer outputs** (:class:`WaitingOutputs`): a layer's outputs wait until every direction of
  the layer above has read them. They stay in the activation buffer as far as it has room beside the
  running invocation's working set; the rest is written to DRAM when produced and read back by each
  direction of the layer above that reads it. Assumptions: the working set has priority over waiting
  outputs; reads take from DRAM and buffer in proportion to what each holds; the last layer's outputs
  leave for the host at once and the first layer's inputs stream in from it; recurrent state carried
  between windows (B x hidden per cell type) is not counted.
- **time** = compute and DRAM transfer overlapped by the fraction ``dram_overlap`` of the shorter
  (:func:`overlapped_s`; 1 by default: max(compute, DRAM), weights stream while the array works) +
  invocation overhead.
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

__all__ = [
    "AcceleratorModel", "StepCost", "WaitingOutputs", "gemm_cycles", "overlapped_s", "spill_bytes", "working_set_bytes",
]

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


def activation_traffic(spec: HardwareSpec, cells: int, input_size: int, hidden: int, gate_rows: int,
                       room_bytes: float | None = None):
    """(SRAM bytes, DRAM spill bytes) of the activations of ``cells`` cells evaluated in one invocation.

    ``room_bytes``: what is free of the activation buffer (all of it by default); the working set (gate
    accumulators and outputs of the cells) beyond it spills: written to DRAM once and read back once.
    """
    per_cell = (input_size + 2 * hidden) * spec.bytes_per_activation + 2 * gate_rows * spec.bytes_per_accumulator
    return cells * per_cell, spill_bytes(working_set_bytes(spec, cells, hidden, gate_rows),
                                         spec.activation_buffer_bytes if room_bytes is None else room_bytes,
                                         spec.spill_dram_passes)


def working_set_bytes(spec: HardwareSpec, cells: int, hidden: int, gate_rows: int) -> float:
    """Bytes one invocation of ``cells`` cells keeps on chip: gate accumulators and new states."""
    return cells * (gate_rows * spec.bytes_per_accumulator + hidden * spec.bytes_per_activation)


def spill_bytes(working_set: float, room_bytes: float, passes: float = 2.0) -> float:
    """DRAM bytes of the part of a working set that does not fit the room left: ``passes x max(0, working_set -
    room_bytes)``. ``passes`` (the preset's ``spill_dram_passes``) is 2 by default: written once, read once."""
    return passes * max(0.0, working_set - room_bytes)


def overlapped_s(compute_s: float, dram_s: float, overlap: float) -> float:
    """Time of an invocation's compute and DRAM transfer when a fraction ``overlap`` of the shorter one hides
    under the longer: ``max(c, d) + (1 - overlap) min(c, d)``.

    ``overlap`` is the preset's ``dram_overlap``: 1 (the default) gives ``max(c, d)``, weights streaming while
    the array works; 0 gives ``c + d``, the array idle during every transfer.
    """
    return max(compute_s, dram_s) + (1.0 - overlap) * min(compute_s, dram_s)


class WaitingOutputs:
    """Bytes of layer outputs produced and not yet read by every direction of the layer above.

    ``total`` of them wait, ``in_dram`` of those were written to DRAM for want of room. :meth:`step`
    books one step and returns the DRAM bytes it moves for them (reads of spilled inputs plus writes
    of outputs that do not fit beside the step's working set).
    """

    def __init__(self, model: RNNModel, bytes_per_activation: float, buffer_bytes: float) -> None:
        last = model.num_layers - 1
        self.buffer_bytes = buffer_bytes
        #: per layer: output bytes one useful cell produces (0 for the last layer: they leave for the host)
        self.produced = [0.0 if i == last else model.output_size_of(i) * bytes_per_activation / x.directions
                         for i, x in enumerate(model.layers)]
        #: per layer: input bytes one useful cell reads, and the share of them it frees
        self.read = [0.0 if i == 0 else x.input_size * bytes_per_activation for i, x in enumerate(model.layers)]
        self.freed = [r / x.directions for r, x in zip(self.read, model.layers)]
        self.total = 0.0
        self.in_dram = 0.0

    def step(self, layer: int, useful_cells: int, working_set: float, commit: bool) -> float:
        total, in_dram = self.total, self.in_dram
        dram = 0.0
        if layer > 0 and total > 0:
            fraction = in_dram / total
            dram += useful_cells * self.read[layer] * fraction
            freed = min(total, useful_cells * self.freed[layer])
            total -= freed
            in_dram = max(0.0, in_dram - freed * fraction)
        total += useful_cells * self.produced[layer]
        excess = (total - in_dram) - max(0.0, self.buffer_bytes - working_set)
        if excess > 0:
            dram += excess
            in_dram += excess
        if commit:
            self.total, self.in_dram = total, in_dram
        return dram


@dataclass(frozen=True)
class _Invocation:
    """The parts of one invocation's cost that do not depend on the room left in the activation buffer."""

    compute_s: float
    recurrence_s: float
    dram_weight_bytes: float
    sram_bytes: float
    macs: float
    working_set_bytes: float


class AcceleratorModel:
    """Prices steps of one model on one accelerator; keeps the weight buffer's LRU state and the bytes of
    layer outputs waiting in the activation buffer between steps.

    ``cost(step)`` commits the step (updates the buffers); ``cost(step, commit=False)`` only estimates.
    The room-independent part of a step's cost is a pure function of (layer, occupied rows, width,
    fused, weights resident), computed once per such key and memoised until :meth:`reset`; each call
    gets its own breakdown dict. Raises ``ValueError`` (a :class:`~ebatch.hardware.preset.PresetError`)
    for an unknown preset.
    """

    def __init__(self, hardware: str | HardwareSpec, model: str | RNNModel) -> None:
        self.spec = hardware if isinstance(hardware, HardwareSpec) else load_preset(hardware)
        self.model = get_model(model)
        self.notify_latency_s = self.spec.notify_latency_s
        self.reset()

    def reset(self) -> None:
        self._buffer: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._parts: dict[tuple[int, int, int, bool, bool], tuple[_Invocation, _Invocation | None]] = {}
        spec, model = self.spec, self.model
        bpw = spec.bytes_per_weight
        #: per layer: (W_ih bytes, W_hh bytes) of one direction
        self._weight_bytes = [(x.input_params * bpw, x.recurrent_params * bpw) for x in model.layers]
        self.waiting = WaitingOutputs(model, spec.bytes_per_activation, spec.activation_buffer_bytes)

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
        layer = step.layer
        input_bytes, recurrent_bytes = self._weight_bytes[layer]
        resident = self._touch((layer, step.direction), input_bytes + recurrent_bytes, commit)
        key = (layer, step.occupied_rows, step.width, step.fused, resident)
        parts = self._parts.get(key)
        if parts is None:
            parts = self._parts[key] = self._price(step, self.model.layers[layer], input_bytes, recurrent_bytes,
                                                   resident)
        first, steady = parts
        waiting_dram = self.waiting.step(layer, step.useful_cells, first.working_set_bytes, commit)
        cost = self._finish(first, waiting_dram)
        if steady is not None:  # later invocations of a run find the weights resident when they fit
            rest, more = step.width - 1, self._finish(steady, 0.0)
            cost = StepCost(
                time_s=cost.time_s + rest * more.time_s,
                energy_j=cost.energy_j + rest * more.energy_j,
                breakdown={k: cost.breakdown[k] + rest * more.breakdown[k] for k in cost.breakdown},
            )
        return cost

    def _price(self, step: BatchStep, layer, input_bytes, recurrent_bytes, resident: bool):
        """(first invocation, each later one or ``None``): a run's later invocations find weights resident."""
        rows = step.occupied_rows
        columns = step.width if step.fused else 1
        first = self._invocation(layer, rows, columns, input_bytes, recurrent_bytes, resident)
        if step.fused or step.width == 1:
            return first, None
        return first, self._invocation(layer, rows, columns, input_bytes, recurrent_bytes, True)

    def _invocation(self, layer, rows: int, columns: int, input_bytes, recurrent_bytes, resident: bool):
        spec = self.spec
        cells = rows * columns
        dram_weight, sram_weight = weight_traffic(spec, input_bytes, recurrent_bytes, resident, columns)
        sram_act, _ = activation_traffic(spec, cells, layer.input_size, layer.hidden_size, layer.gate_rows)
        args = (spec.array_rows, spec.array_cols, spec.weights_double_buffered)
        input_cycles = gemm_cycles(cells, layer.input_size, layer.gate_rows, *args)
        step_cycles = gemm_cycles(rows, layer.hidden_size, layer.gate_rows, *args) + spec.timestep_latency_cycles
        return _Invocation(
            compute_s=input_cycles / spec.clock_hz,
            recurrence_s=columns * step_cycles / spec.clock_hz,
            dram_weight_bytes=dram_weight,
            sram_bytes=sram_weight + sram_act,
            macs=float(cells * layer.macs_per_cell),
            working_set_bytes=working_set_bytes(spec, cells, layer.hidden_size, layer.gate_rows),
        )

    def _finish(self, inv: _Invocation, waiting_dram_bytes: float) -> StepCost:
        """One invocation's time, energy and breakdown, with the DRAM bytes it moves for waiting outputs."""
        spec = self.spec
        spill = spill_bytes(inv.working_set_bytes, spec.activation_buffer_bytes, spec.spill_dram_passes)
        spill += waiting_dram_bytes
        dram_s = (inv.dram_weight_bytes + spill) / spec.dram_bandwidth_bytes_per_s
        time_s = overlapped_s(inv.compute_s + inv.recurrence_s, dram_s, spec.dram_overlap) + spec.invocation_overhead_s
        breakdown = {
            "dram_j": (inv.dram_weight_bytes + spill) * spec.dram_energy_j_per_byte,
            "sram_j": inv.sram_bytes * spec.sram_energy_j_per_byte,
            "mac_j": inv.macs * spec.mac_energy_j,
            "static_j": spec.static_power_w * time_s,
            "input_gemm_s": inv.compute_s,
            "recurrence_s": inv.recurrence_s,
            "dram_s": dram_s,
            "dram_weight_bytes": inv.dram_weight_bytes,
            "dram_spill_bytes": spill,
            "macs": inv.macs,
            "peak_macs": time_s * spec.clock_hz * spec.array_rows * spec.array_cols,
        }
        energy_j = sum(breakdown[k] for k in ENERGY_KEYS)
        return StepCost(time_s=time_s, energy_j=energy_j, breakdown=breakdown)
