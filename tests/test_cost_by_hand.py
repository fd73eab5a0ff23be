"""The cost model and the latency metrics specified by hand: every expected number is worked out in the
docstring from the array's size, the fold counts and the bytes moved, never by calling the code's formula.

Timing of a weight-stationary R x C array (SCALE-Sim's model, docs/validation.md): the weights of one fold
(an R x C tile of the K x N matrix) shift in one array row a cycle, R cycles; the M batch rows then enter
one a cycle, M cycles; the last row's partial sums leave R + C - 2 cycles after it entered (down R rows and
across C columns). Single-buffered, a fold cannot load before the previous one has drained. Double-buffered
(a second weight register per PE), the next fold's weights shift in while the current fold streams, so the
next fold starts as soon as both its weights are in and the current fold's rows have entered.
"""

from __future__ import annotations

import pytest

import ebatch
from ebatch.hardware import AcceleratorModel, HardwareSpec, gemm_cycles, load_preset
from ebatch.model import Layer, RNNModel
from ebatch.step import BatchStep
from simtools import ONE, UnitBackend

#: a 4 x 4 array at 1 Hz (so cycles are seconds), 1-byte weights and activations, 2-byte accumulators
TINY = dict(
    clock_hz=1.0, array_rows=4, array_cols=4, bytes_per_weight=1, bytes_per_activation=1, bytes_per_accumulator=2,
    weight_buffer_bytes=1000, activation_buffer_bytes=1000, dram_bandwidth_bytes_per_s=1.0,
    dram_energy_j_per_byte=1.0, sram_energy_j_per_byte=0.5, mac_energy_j=0.25, static_power_w=2.0,
    timestep_latency_cycles=3, invocation_overhead_s=0.0, notify_latency_s=0.0,
)
#: one LSTM layer, 4 inputs, 2 hidden: 8 gate rows; W_ih 4 x 8 = 32 B, W_hh 2 x 8 = 16 B; 48 MACs a cell
LAYER = RNNModel("by-hand", (Layer("lstm", 4, 2),))


def window() -> BatchStep:
    """One fused invocation, 3 columns wide, 2 occupied rows (requests of 3 and 2 steps): 6 computed cells."""
    return BatchStep(layer=0, direction=0, width=3, slots=2, seg_row=[0, 1], seg_col=[0, 0], seg_request=[0, 1],
                     seg_start=[0, 0], seg_length=[3, 2], seg_reset=[True, True])


def cost_of(double_buffered: bool, **changes):
    spec = HardwareSpec(**{**TINY, "weights_double_buffered": double_buffered, **changes})
    return AcceleratorModel(spec, LAYER).cost(window())


def test_double_buffered_window_by_hand():
    """Folds: W_ih (K 4 x N 8) = 1 x 2 tiles of 4 x 4; W_hh (K 2 x N 8) = 1 x 2 tiles.

    Input projection, M = 6 cells: fold 1's weights shift in (cycles 1-4); its 6 rows enter (5-10) while
    fold 2's weights shift in behind them (5-8, done before the rows are); fold 2's 6 rows enter (11-16);
    the last partial sums leave 4 + 4 - 2 = 6 cycles later (17-22): 22 cycles.
    Recurrent product, M = 2 rows, per column: fold 1 loads (1-4), streams (5-6); fold 2's weights, shifting
    in since cycle 5, are in at cycle 8, so its rows enter at 9-10; drain 11-16: 16 cycles, + 3 cycles of
    activations and state update = 19 per column, 57 for 3 columns.
    Weights: 48 B from DRAM at 1 B/s = 48 s, under the 22 + 57 = 79 s of compute: time 79 s.
    Energy: DRAM 48 B x 1 J; SRAM (32 + 3 x 16 weight bytes to the array + 6 cells x (4 inputs + 2 states read
    + 2 written) x 1 B + 6 cells x 8 accumulators x 2 B written and read) = 80 + 48 + 192 = 320 B x 0.5 J
    = 160 J; MACs 6 x 48 x 0.25 J = 72 J; static 2 W x 79 s = 158 J; total 438 J.
    """
    cost = cost_of(double_buffered=True)
    b = cost.breakdown
    assert b["input_gemm_s"] == 22
    assert b["recurrence_s"] == 57
    assert b["dram_s"] == 48
    assert cost.time_s == 79
    assert (b["dram_j"], b["sram_j"], b["mac_j"], b["static_j"]) == (48, 160, 72, 158)
    assert cost.energy_j == 438


def test_single_buffered_window_by_hand():
    """The same window without the second weight register: each fold loads, streams and drains alone.

    Input projection: 2 folds x (4 load + 6 rows + 6 drain) = 32 cycles. Recurrent product per column:
    2 x (4 + 2 + 6) = 24, + 3 = 27; 81 for 3 columns. Time max(32 + 81, 48) = 113 s; the energy differs
    only in static energy: 2 W x 113 s = 226 J, so 48 + 160 + 72 + 226 = 506 J.
    """
    cost = cost_of(double_buffered=False)
    b = cost.breakdown
    assert (b["input_gemm_s"], b["recurrence_s"], cost.time_s) == (32, 81, 113)
    assert cost.energy_j == 506


def test_double_buffered_window_waits_for_dram():
    """At 0.25 B/s the 48 B of weights take 192 s: the step takes the DRAM's time, not the array's 79 s."""
    cost = cost_of(double_buffered=True, dram_bandwidth_bytes_per_s=0.25)
    assert cost.breakdown["dram_s"] == 192 and cost.time_s == 192
    assert cost.breakdown["static_j"] == 384


def test_epur_array_one_product_by_hand():
    """EESEN layer 1's input projection at B = 64 (K 120, N 1280) on `epur`'s 16 x 64 array.

    Folds: ceil(120 / 16) = 8 row tiles x 1280 / 64 = 20 column tiles = 160. Double-buffered: the first
    fold's 16 weight rows shift in (16 cycles); each fold's 64 rows take 64 cycles, long enough for the next
    fold's 16 weight rows to shift in behind them, so a fold starts every 64 cycles: 160 x 64 = 10240; the last
    partial sums leave 16 + 64 - 2 = 78 cycles after the last row: 16 + 10240 + 78 = 10334 cycles.
    Single-buffered: 160 x (16 + 64 + 78) = 25280 cycles (SCALE-Sim reports 25279, its cycles counted from 0).
    """
    spec = load_preset("epur")
    assert (spec.array_rows, spec.array_cols, spec.weights_double_buffered) == (16, 64, True)
    assert gemm_cycles(64, 120, 1280, 16, 64, double_buffered=True) == 10334
    assert gemm_cycles(64, 120, 1280, 16, 64, double_buffered=False) == 25280


def test_latency_mean_and_percentiles_by_hand():
    """Ten requests served one after the other, 1 s a time-step: nine of 1 step, then one of 91.

    Latencies 1, 2, ..., 9 and 100 s. Mean 145 / 10 = 14.5 s. Percentiles interpolate linearly between
    order statistics (NumPy's default, Hyndman & Fan type 7): the q-th percentile of n sorted values sits at
    position (n - 1) q / 100 counted from 0. p50: position 4.5, between 5 and 6: 5.5 s. p90: position 8.1,
    9 + 0.1 x (100 - 9) = 18.1 s. p99: position 8.91, 9 + 0.91 x 91 = 91.81 s. (Nearest-rank percentiles
    would give 5, 9 and 100; reporting the mean as p50 would give 14.5.)
    """
    result = ebatch.simulate(ONE, ebatch.Workload.from_lengths([1] * 9 + [91]), "sequential", UnitBackend())
    assert result.requests["latency_s"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 100]
    summary = result.summary()
    assert summary["latency_mean_s"] == pytest.approx(14.5)
    assert summary["latency_p50_s"] == pytest.approx(5.5)
    assert summary["latency_p90_s"] == pytest.approx(18.1)
    assert summary["latency_p99_s"] == pytest.approx(91.81)
