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
from typing import NamedTuple

from ebatch.hardware.preset import HardwareSpec, load_preset
from ebatch.model import RNNModel, get_model
from ebatch.step import BatchStep

__all__ = [
    "MEMO_ENTRIES", "AcceleratorModel", "StepCost", "WaitingOutputs", "gemm_cycles", "overlapped_s", "spill_bytes",
    "working_set_bytes",
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


class _Invocation(NamedTuple):
    """The parts of one invocation's cost that do not depend on the DRAM bytes moved for waiting outputs.

    Every field is computed once with the very operations :meth:`AcceleratorModel._finish` would otherwise
    repeat per step, so a memoised invocation prices to the same floats.
    """

    compute_s: float
    recurrence_s: float
    busy_s: float  # compute_s + recurrence_s
    dram_weight_bytes: float
    own_spill_bytes: float  # the working set's spill beyond the whole activation buffer
    sram_j: float
    mac_j: float
    macs: float
    working_set_bytes: float


#: memoised step shapes kept before the memo starts again (each is a few hundred bytes)
MEMO_ENTRIES = 65536


class AcceleratorModel:
    """Prices steps of one model on one accelerator; keeps the weight buffer's LRU state and the bytes of
    layer outputs waiting in the activation buffer between steps.

    ``cost(step)`` commits the step (updates the buffers); ``cost(step, commit=False)`` only estimates.
    What an invocation costs apart from the waiting outputs is a pure function of (layer, occupied rows,
    columns, weights resident): it is computed once per such key and memoised until :meth:`reset` (at most
    :data:`MEMO_ENTRIES` keys, then the memo starts again), giving the same floats as computing it afresh.
    Each call gets its own breakdown dict. Raises ``ValueError`` (a
    :class:`~ebatch.hardware.preset.PresetError`) for an unknown preset.
    """

    def __init__(self, hardware: str | HardwareSpec, model: str | RNNModel) -> None:
        self.spec = hardware if isinstance(hardware, HardwareSpec) else load_preset(hardware)
        self.model = get_model(model)
        self.notify_latency_s = self.spec.notify_latency_s
        self.reset()

    def reset(self) -> None:
        self._buffer: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._invocations: dict[tuple[int, int, int, bool], _Invocation] = {}
        # one later invocation of a run, per (layer, rows): (time_s, energy_j, *breakdown values)
        self._later: dict[tuple[int, int], tuple[float, ...]] = {}
        spec, model = self.spec, self.model
        bpw = spec.bytes_per_weight
        #: per layer: (W_ih bytes, W_hh bytes) of one direction
        self._weight_bytes = [(x.input_params * bpw, x.recurrent_params * bpw) for x in model.layers]
        self._direction_bytes = [i + r for i, r in self._weight_bytes]
        self.waiting = WaitingOutputs(model, spec.bytes_per_activation, spec.activation_buffer_bytes)
        self._constants = (spec.dram_bandwidth_bytes_per_s, spec.invocation_overhead_s, spec.dram_energy_j_per_byte,
                           spec.static_power_w, spec.clock_hz, spec.array_rows, spec.array_cols, spec.dram_overlap)

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
        layer, rows = step.layer, step.occupied_rows
        resident = self._touch((layer, step.direction), self._direction_bytes[layer], commit)
        columns = step.width if step.fused else 1
        first = self._invocations.get((layer, rows, columns, resident))
        if first is None:
            first = self._memo_invocation(layer, rows, columns, resident)
        waiting_dram = self.waiting.step(layer, step.useful_cells, first.working_set_bytes, commit)
        if step.fused or step.width == 1:
            return self._finish(first, waiting_dram)
        # a run's later invocations find the weights resident when they fit and move no waiting outputs
        later = self._later.get((layer, rows))
        if later is None:
            if len(self._later) >= MEMO_ENTRIES:
                self._later.clear()
            one = self._finish(self._memo_invocation(layer, rows, 1, True), 0.0)
            later = self._later[layer, rows] = (one.time_s, one.energy_j, *one.breakdown.values())
        return self._finish(first, waiting_dram, step.width - 1, later)

    def _memo_invocation(self, layer: int, rows: int, columns: int, resident: bool) -> _Invocation:
        key = (layer, rows, columns, resident)
        invocation = self._invocations.get(key)
        if invocation is None:
            if len(self._invocations) >= MEMO_ENTRIES:
                self._invocations.clear()
            input_bytes, recurrent_bytes = self._weight_bytes[layer]
            invocation = self._invocations[key] = self._invocation(
                self.model.layers[layer], rows, columns, input_bytes, recurrent_bytes, resident)
        return invocation

    def _invocation(self, layer, rows: int, columns: int, input_bytes, recurrent_bytes, resident: bool):
        spec = self.spec
        cells = rows * columns
        dram_weight, sram_weight = weight_traffic(spec, input_bytes, recurrent_bytes, resident, columns)
        sram_act, _ = activation_traffic(spec, cells, layer.input_size, layer.hidden_size, layer.gate_rows)
        args = (spec.array_rows, spec.array_cols, spec.weights_double_buffered)
        input_cycles = gemm_cycles(cells, layer.input_size, layer.gate_rows, *args)
        step_cycles = gemm_cycles(rows, layer.hidden_size, layer.gate_rows, *args) + spec.timestep_latency_cycles
        compute_s = input_cycles / spec.clock_hz
        recurrence_s = columns * step_cycles / spec.clock_hz
        working_set = working_set_bytes(spec, cells, layer.hidden_size, layer.gate_rows)
        macs = float(cells * layer.macs_per_cell)
        return _Invocation(
            compute_s=compute_s,
            recurrence_s=recurrence_s,
            busy_s=compute_s + recurrence_s,
            dram_weight_bytes=dram_weight,
            own_spill_bytes=spill_bytes(working_set, spec.activation_buffer_bytes, spec.spill_dram_passes),
            sram_j=(sram_weight + sram_act) * spec.sram_energy_j_per_byte,
            mac_j=macs * spec.mac_energy_j,
            macs=macs,
            working_set_bytes=working_set,
        )

    def _finish(self, inv: _Invocation, waiting_dram_bytes: float, rest: int = 0,
                later: tuple[float, ...] | None = None) -> StepCost:
        """One invocation's time, energy and breakdown, with the DRAM bytes it moves for waiting outputs;
        plus, entry by entry, ``rest`` times ``later`` (each of a run's later invocations) when given."""
        compute_s, recurrence_s, busy_s, dram_weight_bytes, own_spill_bytes, sram_j, mac_j, macs, _ = inv
        bandwidth, overhead_s, dram_energy, static_power_w, clock_hz, array_rows, array_cols, overlap = self._constants
        spill = own_spill_bytes + waiting_dram_bytes
        dram_bytes = dram_weight_bytes + spill
        dram_s = dram_bytes / bandwidth
        time_s = overlapped_s(busy_s, dram_s, overlap) + overhead_s
        dram_j = dram_bytes * dram_energy
        static_j = static_power_w * time_s
        peak_macs = time_s * clock_hz * array_rows * array_cols
        energy_j = 0 + dram_j + sram_j + mac_j + static_j  # the order sum() over ENERGY_KEYS adds in
        if later is None:
            return StepCost(time_s, energy_j, {  # (time_s, energy_j, breakdown)
                "dram_j": dram_j, "sram_j": sram_j, "mac_j": mac_j, "static_j": static_j,
                "input_gemm_s": compute_s, "recurrence_s": recurrence_s, "dram_s": dram_s,
                "dram_weight_bytes": dram_weight_bytes, "dram_spill_bytes": spill, "macs": macs,
                "peak_macs": peak_macs,
            })
        (later_s, later_j, dram_j_, sram_j_, mac_j_, static_j_, compute_s_, recurrence_s_, dram_s_, dram_weight_,
         spill_, macs_, peak_macs_) = later
        return StepCost(time_s + rest * later_s, energy_j + rest * later_j, {
            "dram_j": dram_j + rest * dram_j_, "sram_j": sram_j + rest * sram_j_, "mac_j": mac_j + rest * mac_j_,
            "static_j": static_j + rest * static_j_, "input_gemm_s": compute_s + rest * compute_s_,
            "recurrence_s": recurrence_s + rest * recurrence_s_, "dram_s": dram_s + rest * dram_s_,
            "dram_weight_bytes": dram_weight_bytes + rest * dram_weight_, "dram_spill_bytes": spill + rest * spill_,
            "macs": macs + rest * macs_, "peak_macs": peak_macs + rest * peak_macs_,
        })
