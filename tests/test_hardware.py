"""The accelerator cost model's phases by hand, its LRU weight buffer, and strict preset validation."""

from __future__ import annotations

from importlib import resources

import pytest

import ebatch
from ebatch.hardware import AcceleratorModel, HardwareSpec, PresetError, gemm_cycles, load_preset, preset_names
from ebatch.model import Layer, RNNModel
from ebatch.step import BatchStep

# ---- gemm_cycles ----------------------------------------------------------------------------------------


def test_gemm_cycles_by_hand():
    # 5 x 300 @ 300 x 100 on 256 x 64: folds = ceil(300/256) * ceil(100/64) = 2 * 2 = 4
    assert gemm_cycles(5, 300, 100, 256, 64, double_buffered=False) == 4 * (2 * 256 + 64 + 5 - 2)
    # double buffered: first weight load alone, then each fold but the last takes max(m, rows), drain once
    assert gemm_cycles(5, 300, 100, 256, 64, double_buffered=True) == 256 + 3 * 256 + 5 + 256 + 64 - 2
    assert gemm_cycles(1000, 300, 100, 256, 64, double_buffered=True) == 256 + 3 * 1000 + 1000 + 256 + 64 - 2
    # one fold: nothing to overlap, the same count as without double buffering
    assert gemm_cycles(8, 256, 64, 256, 64, double_buffered=True) == gemm_cycles(8, 256, 64, 256, 64, False)
    # exact fits: one fold
    assert gemm_cycles(8, 256, 64, 256, 64, double_buffered=False) == 2 * 256 + 64 + 8 - 2


# ---- the phases of one step, by hand -------------------------------------------------------------------

HAND = dict(
    clock_hz=1.0, array_rows=4, array_cols=4, weights_double_buffered=False, bytes_per_weight=1,
    bytes_per_activation=1, bytes_per_accumulator=2, weight_buffer_bytes=1000, activation_buffer_bytes=1000,
    dram_bandwidth_bytes_per_s=1.0, dram_energy_j_per_byte=1.0, sram_energy_j_per_byte=0.5, mac_energy_j=0.25,
    static_power_w=2.0, timestep_latency_cycles=3, invocation_overhead_s=0.0, notify_latency_s=0.0,
)
#: one LSTM layer, 4 inputs, 2 hidden: gate rows 8, W_ih 32 B, W_hh 16 B, 48 MACs per cell
HAND_MODEL = RNNModel("hand", (Layer("lstm", 4, 2),))


def hand_step(width=3, fused=True, layer=0, direction=0) -> BatchStep:
    """Two occupied rows (lengths 3 and 2 of a 3-wide window: 6 computed cells when fused)."""
    return BatchStep(
        layer=layer, direction=direction, width=width, slots=2, seg_row=[0, 1], seg_col=[0, 0],
        seg_request=[0, 1], seg_start=[0, 0], seg_length=[width, width - 1], seg_reset=[True, True], fused=fused,
    )


def hand_model(**changes) -> AcceleratorModel:
    return AcceleratorModel(HardwareSpec(**{**HAND, **changes}), HAND_MODEL)


def test_fused_step_phases_by_hand():
    model = hand_model()
    cost = model.cost(hand_step())
    b = cost.breakdown
    # weights: the layer fits (48 B <= 1000 B) and misses: fetched whole; W_ih once + W_hh per column to the array
    assert b["dram_weight_bytes"] == 48
    # compute: input GEMM 6 x 4 @ 4 x 8 on 4 x 4, 2 folds x (2*4 + 4 + 6 - 2) = 32 cycles
    assert b["input_gemm_s"] == 32
    # recurrence: 3 columns x (2 folds x (8 + 4 + 2 - 2) + 3 latency) = 3 x 27
    assert b["recurrence_s"] == 81
    assert b["dram_s"] == 48 and b["dram_spill_bytes"] == 0
    assert cost.time_s == 113  # max(32 + 81, 48) + 0 overhead
    assert b["dram_j"] == 48  # 48 B x 1 J/B
    # SRAM: weights 32 + 3 x 16 = 80 B; activations 6 cells x ((4 + 2 x 2) x 1 + 2 x 8 x 2) = 240 B; x 0.5 J/B
    assert b["sram_j"] == 160
    assert b["macs"] == 6 * 48 and b["mac_j"] == 72
    assert b["static_j"] == 2 * 113
    assert cost.energy_j == 48 + 160 + 72 + 226
    assert b["peak_macs"] == 113 * 16

    again = model.cost(hand_step())  # resident now: no DRAM
    assert again.breakdown["dram_weight_bytes"] == 0 and again.breakdown["dram_j"] == 0
    assert again.time_s == 113 and again.energy_j == 160 + 72 + 226


def test_dram_bound_step_and_activation_spill():
    slow = hand_model(dram_bandwidth_bytes_per_s=0.25).cost(hand_step())
    assert slow.breakdown["dram_s"] == 192 and slow.time_s == 192  # 48 B at 0.25 B/s outlasts 113 s of compute
    assert slow.breakdown["static_j"] == 384

    # working set 6 cells x (8 x 2 + 2 x 1) = 108 B against a 100 B buffer: 8 B written and read back
    spill = hand_model(activation_buffer_bytes=100).cost(hand_step())
    assert spill.breakdown["dram_spill_bytes"] == 16
    assert spill.breakdown["dram_s"] == 48 + 16 and spill.breakdown["dram_j"] == 48 + 16
    assert spill.breakdown["dram_weight_bytes"] == 48

    overhead = hand_model(invocation_overhead_s=5.0).cost(hand_step(fused=False))
    assert overhead.time_s == 3 * (51 + 5)  # one overhead per invocation of a non-fused run


def test_non_fused_run_fetches_a_fitting_layer_once():
    cost = hand_model().cost(hand_step(fused=False))
    # each invocation: 2 cells, input GEMM 2 x (8 + 4 + 2 - 2) = 24 cycles, one recurrent step 27 cycles
    assert cost.breakdown["input_gemm_s"] == 3 * 24 and cost.breakdown["recurrence_s"] == 3 * 27
    assert cost.time_s == 3 * 51  # the first invocation's 48 s fetch hides under its 51 s of compute
    assert cost.breakdown["dram_weight_bytes"] == 48
    # every invocation reads W_ih and W_hh from the buffer into the array
    assert cost.breakdown["sram_j"] == pytest.approx(0.5 * (3 * 48 + 6 * 40))


def test_layer_larger_than_the_buffer_streams():
    model = hand_model(weight_buffer_bytes=40)  # 48 B of weights do not fit
    fused = model.cost(hand_step())
    assert fused.breakdown["dram_weight_bytes"] == 32 + 3 * 16  # W_ih once per invocation, W_hh per column
    assert model.cost(hand_step()).breakdown["dram_weight_bytes"] == 80  # never resident
    run = model.cost(hand_step(fused=False))
    assert run.breakdown["dram_weight_bytes"] == 3 * (32 + 16)  # each invocation of the run streams both


def test_lru_weight_buffer_keeps_what_fits_and_evicts_the_least_recently_used():
    # layer 0: 48 B; layers 1 and 2: 8 x 2 + 8 x 2 = 32 B each; the buffer holds 85 B (two layers)
    model3 = RNNModel("three", (Layer("lstm", 4, 2), Layer("lstm", 2, 2), Layer("lstm", 2, 2)))
    model = AcceleratorModel(HardwareSpec(**{**HAND, "weight_buffer_bytes": 85}), model3)
    order = [0, 1, 0, 2, 0, 1, 2]
    fetched = [model.cost(hand_step(layer=layer)).breakdown["dram_weight_bytes"] for layer in order]
    # 2 evicts 1 (least recently used), 1 evicts 2, 2 evicts 0
    assert fetched == [48, 32, 0, 32, 0, 32, 32]
    model.reset()
    assert model.cost(hand_step(layer=0)).breakdown["dram_weight_bytes"] == 48


def test_directions_are_cached_separately_and_estimates_do_not_commit():
    bi = RNNModel("bi", (Layer("lstm", 4, 2, bidirectional=True),))
    model = AcceleratorModel(HardwareSpec(**HAND), bi)
    assert model.cost(hand_step(), commit=False).breakdown["dram_weight_bytes"] == 48
    assert model.cost(hand_step(), commit=False).breakdown["dram_weight_bytes"] == 48
    assert model.cost(hand_step()).breakdown["dram_weight_bytes"] == 48
    assert model.cost(hand_step(direction=1)).breakdown["dram_weight_bytes"] == 48
    assert model.cost(hand_step()).breakdown["dram_weight_bytes"] == 0
    assert model.cost(hand_step(direction=1)).breakdown["dram_weight_bytes"] == 0


def test_step_costs_add_up_to_the_breakdown():
    model = AcceleratorModel("tpu-v1", "eesen")
    step = BatchStep(layer=2, direction=1, width=16, slots=8, seg_row=range(8), seg_col=[0] * 8,
                     seg_request=range(8), seg_start=[15] * 8, seg_length=[16] * 8, seg_reset=[True] * 8)
    cost = model.cost(step)
    b = cost.breakdown
    assert cost.energy_j == pytest.approx(b["dram_j"] + b["sram_j"] + b["mac_j"] + b["static_j"], rel=1e-12)
    assert b["static_j"] == pytest.approx(28.0 * cost.time_s)
    # tpu-v1 keeps no EESEN layer (2.46 MB) in its 256 KiB weight FIFO: W_ih once, W_hh per time-step
    layer = ebatch.get_model("eesen").layers[2]
    assert b["dram_weight_bytes"] == layer.input_params + 16 * layer.recurrent_params


# ---- presets ---------------------------------------------------------------------------------------------


def test_shipped_presets_load_with_a_source_for_every_parameter():
    assert {"epur", "tpu-v1"} <= set(preset_names())
    for name in ("epur", "tpu-v1"):
        spec = load_preset(name)
        assert spec.name == name
        assert set(spec.sources) == set(HardwareSpec.parameter_names())
        assert all(src.strip() for src in spec.sources.values())
    tpu = load_preset("tpu-v1")
    assert (tpu.clock_hz, tpu.array_rows, tpu.array_cols, tpu.bytes_per_weight) == (700e6, 256, 256, 1)
    assert tpu.dram_bandwidth_bytes_per_s == 34e9 and tpu.activation_buffer_bytes == 24 * 2**20
    assert "weight_buffer_bytes" in load_preset("epur").assumptions


def epur_text() -> str:
    return resources.files("ebatch.hardware").joinpath("presets", "epur.yaml").read_text()


def param_line(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(f"{name}:"))


def edit_clock(new_line: str):
    def edit(text: str) -> str:
        return text.replace(param_line(text, "clock_hz"), new_line)
    return edit


BAD_PRESETS = {
    "unknown parameter": (
        lambda t: t.replace("parameters:\n", "parameters:\n  clock_mhz: {value: 500, source: x}\n"), "clock_mhz"
    ),
    "unknown top-level key": (lambda t: t + "\nvendor: nobody\n", "vendor"),
    "duplicate key": (lambda t: t + param_line(t, "mac_energy_j") + "\n", "duplicate key .mac_energy_j"),
    "missing parameter": (lambda t: t.replace(param_line(t, "static_power_w") + "\n", ""), "static_power_w"),
    "missing source": (
        lambda t: t.replace(param_line(t, "mac_energy_j"), '  mac_energy_j: {value: 1.0e-12, source: ""}'),
        "mac_energy_j",
    ),
    "no source key": (lambda t: t.replace(param_line(t, "mac_energy_j"), "  mac_energy_j: {value: 1.0e-12}"),
                      "mac_energy_j"),
    "bare value": (edit_clock("  clock_hz: 500.0e6"), "clock_hz"),
    "negative value": (edit_clock("  clock_hz: {value: -1, source: x}"), "clock_hz"),
    "zero value": (edit_clock("  clock_hz: {value: 0, source: x}"), "clock_hz"),
    "not a number": (edit_clock("  clock_hz: {value: fast, source: x}"), "clock_hz"),
    "fractional array": (
        lambda t: t.replace(param_line(t, "array_rows"), "  array_rows: {value: 16.5, source: x}"), "array_rows"
    ),
    "boolean as number": (
        lambda t: t.replace(param_line(t, "weights_double_buffered"),
                            "  weights_double_buffered: {value: 1, source: x}"),
        "weights_double_buffered",
    ),
    "number as boolean": (
        lambda t: t.replace(param_line(t, "static_power_w"), "  static_power_w: {value: true, source: x}"),
        "static_power_w",
    ),
    "no parameters": (lambda t: "name: x\ndescription: y\n", "parameters"),
    "not a mapping": (lambda t: "- 1\n- 2\n", "mapping"),
    "not YAML": (lambda t: t + "\n  : : [\n", "YAML"),
}


@pytest.mark.parametrize("case", list(BAD_PRESETS))
def test_bad_preset_raises_naming_the_field(case, tmp_path):
    edit, field = BAD_PRESETS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(edit(epur_text()))
    with pytest.raises(PresetError, match=field):
        load_preset(path)
    with pytest.raises(ValueError, match=field):  # the CLI turns ValueError into a one-line error
        ebatch.simulate("tiny-lstm", ebatch.Workload.from_lengths([2]), "sequential", str(path))


def test_user_preset_file_works_wherever_a_name_does(tmp_path):
    path = tmp_path / "slow-epur.yaml"
    path.write_text(epur_text().replace("name: epur", "name: slow-epur").replace(
        param_line(epur_text(), "clock_hz"), '  clock_hz: {value: 250.0e6, source: "assumption: half clock"}'))
    spec = load_preset(path)
    assert spec.name == "slow-epur" and spec.clock_hz == 250e6
    workload = ebatch.Workload.from_lengths([5, 3])
    slow = ebatch.simulate("tiny-lstm", workload, "sequential", str(path)).summary()
    fast = ebatch.simulate("tiny-lstm", workload, "sequential", "epur").summary()
    assert slow["hardware"] == "slow-epur" and slow["makespan_s"] > fast["makespan_s"]


def test_unknown_preset_names_the_choices():
    with pytest.raises(PresetError, match="tpu-v1"):
        load_preset("tpu-v9")


def test_spec_replace_validates():
    spec = load_preset("epur")
    assert spec.replace(weight_buffer_bytes=1024).weight_buffer_bytes == 1024
    with pytest.raises(PresetError, match="weight_buffer"):
        spec.replace(weight_buffer=1024)
    with pytest.raises(PresetError, match="clock_hz"):
        spec.replace(clock_hz=0)
