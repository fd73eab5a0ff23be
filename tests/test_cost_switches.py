"""The cost model's modelling switches, each worked by hand on one step: compute/DRAM overlap, the spill's
DRAM passes, double buffering; and how presets state them (left out: today's behaviour; out of range: an error)."""

from __future__ import annotations

import pytest

from ebatch.hardware import PresetError, load_preset
from test_hardware import epur_text, hand_model, hand_step, param_line

# The by-hand fused step of test_hardware: compute 32 (input GEMM) + 81 (recurrence) = 113 s at 1 Hz, DRAM 48 B
# at 1 B/s = 48 s; activation working set 6 cells x (8 gates x 2 B + 2 hidden x 1 B) = 108 B.


def test_overlap_one_is_the_max_and_zero_the_sum_of_compute_and_dram():
    assert hand_model().cost(hand_step()).time_s == 113  # today's behaviour: max(113, 48)
    assert hand_model(dram_overlap=1.0).cost(hand_step()).time_s == 113
    none = hand_model(dram_overlap=0.0).cost(hand_step())
    assert none.time_s == 113 + 48  # the array waits for every transfer
    assert none.breakdown["static_j"] == 2 * 161  # static power runs for the longer time
    assert hand_model(dram_overlap=0.5).cost(hand_step()).time_s == 113 + 24  # half of the shorter one hides
    # DRAM-bound (0.25 B/s: 192 s of transfer): the shorter side is now the compute
    assert hand_model(dram_bandwidth_bytes_per_s=0.25, dram_overlap=0.0).cost(hand_step()).time_s == 192 + 113
    # overlap changes time only: the bytes moved and the dynamic energy stay
    base, sum_ = hand_model().cost(hand_step()).breakdown, none.breakdown
    assert all(base[k] == sum_[k] for k in ("dram_j", "sram_j", "mac_j", "dram_weight_bytes"))


def test_spill_passes_scale_the_dram_bytes_of_the_excess_working_set():
    # 108 B of working set against a 100 B buffer: 8 B do not fit
    for passes, spilled in ((2.0, 16), (4.0, 32), (1.0, 8), (0.0, 0)):
        cost = hand_model(activation_buffer_bytes=100, spill_dram_passes=passes).cost(hand_step())
        assert cost.breakdown["dram_spill_bytes"] == spilled
        assert cost.breakdown["dram_j"] == 48 + spilled  # 1 J/B, on top of the 48 B weight fetch
    fits = hand_model(activation_buffer_bytes=1000, spill_dram_passes=4.0).cost(hand_step())
    assert fits.breakdown["dram_spill_bytes"] == 0  # nothing beyond the buffer, nothing to multiply


def test_double_buffering_hides_the_second_folds_weight_load():
    # input GEMM 6 x 4 @ 4 x 8 on a 4 x 4 array: two folds of 4 x 4 weights, 6 batch rows each.
    # Single-buffered, each fold: load 4 weight rows, stream 6 rows, drain 4 + 4 - 2: 2 x 16 = 32 cycles.
    # Double-buffered: load fold 1 (4), stream fold 1 (6) while fold 2's weights load behind it, stream
    # fold 2 (6), drain once (6): 22 cycles.
    # Recurrence per time-step: 2 x 4 @ 4 x 8, two folds: single 2 x (4 + 2 + 6) = 24, double 4 + 4 + 2 + 6 = 16,
    # plus 3 cycles of time-step latency, over 3 time-steps.
    single = hand_model(weights_double_buffered=False).cost(hand_step()).breakdown
    double = hand_model(weights_double_buffered=True).cost(hand_step()).breakdown
    assert (single["input_gemm_s"], single["recurrence_s"]) == (32, 3 * (24 + 3))
    assert (double["input_gemm_s"], double["recurrence_s"]) == (22, 3 * (16 + 3))


def test_a_preset_may_leave_the_switches_out_and_gets_todays_behaviour(tmp_path):
    text = epur_text()
    for name in ("dram_overlap", "spill_dram_passes"):
        text = text.replace(param_line(text, name) + "\n", "")
    path = tmp_path / "old.yaml"
    path.write_text(text)
    spec = load_preset(path)
    assert (spec.dram_overlap, spec.spill_dram_passes) == (1.0, 2.0)
    assert spec.sources["dram_overlap"].startswith("default")
    assert spec == load_preset("epur")  # the shipped preset states the same values


@pytest.mark.parametrize("line, field", [
    ("  dram_overlap: {value: 1.5, source: x}", "dram_overlap must be between 0"),
    ("  dram_overlap: {value: -0.1, source: x}", "dram_overlap must be >= 0"),
    ("  dram_overlap: {value: max, source: x}", "dram_overlap must be a number"),
    ("  spill_dram_passes: {value: -1, source: x}", "spill_dram_passes must be >= 0"),
])
def test_switches_out_of_range_are_refused_naming_the_field(tmp_path, line, field):
    text = epur_text()
    name = line.split(":")[0].strip()
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(param_line(text, name), line))
    with pytest.raises(PresetError, match=field):
        load_preset(path)
    with pytest.raises(PresetError, match=name):
        load_preset("epur").replace(**{name: 2.0 if name == "dram_overlap" else -1.0})
