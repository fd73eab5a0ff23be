"""Host presets: the weight-read roofline, optional parameters, the shipped h200 preset (sources, loading by
name everywhere, golden predictions of the measured H200 runs) and the preset-against-measurement check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ebatch
from ebatch.experiments.study.preset_check import implied_overheads, predict_runs
from ebatch.hardware import PresetError, load_preset
from ebatch.hardware.host import FLOAT32_BYTES, HostCostModel, HostSpec, load_hardware, load_host_preset
from ebatch.model import Layer, RNNModel
from ebatch.step import BatchStep

MODEL = RNNModel("t", (Layer("lstm", 8, 16),))
GPU_CHECK = Path(__file__).parent.parent / "docs" / "data" / "gpu_check_h200.json"


def _step(rows, columns, fused=True):
    return BatchStep(0, 0, columns, rows, range(rows), [0] * rows, range(rows), [0] * rows, [columns] * rows,
                     [True] * rows, fused=fused)


def test_roofline_takes_the_longer_of_arithmetic_and_weight_reads():
    layer = MODEL.layers[0]
    flops_s = 4 * 10 * 2 * layer.gate_rows * (16 * 1e-12 + 8 * 2e-12)
    weight_bytes = FLOAT32_BYTES * (layer.input_params + 10 * layer.recurrent_params)
    slow_memory = HostSpec(1e-4, 1e-5, 1e-12, 2e-12, 10.0, weight_bandwidth_bytes_per_s=1e6)
    cost = HostCostModel(slow_memory, MODEL).cost(_step(4, 10))
    assert cost.breakdown["weights_s"] == pytest.approx(weight_bytes / 1e6)
    assert cost.time_s == pytest.approx(1e-4 + 10 * 1e-5 + weight_bytes / 1e6)
    fast_memory = HostSpec(1e-4, 1e-5, 1e-12, 2e-12, 10.0, weight_bandwidth_bytes_per_s=1e15)
    assert HostCostModel(fast_memory, MODEL).cost(_step(4, 10)).time_s == pytest.approx(1e-4 + 1e-4 + flops_s)
    # the executor runs a non-fused run as one call: one input GEMM reads W_ih once, as for a fused step
    unfused = HostCostModel(slow_memory, MODEL).cost(_step(4, 10, fused=False))
    assert unfused.breakdown["weights_s"] == pytest.approx(weight_bytes / 1e6)
    no_roofline = HostSpec(1e-4, 1e-5, 1e-12, 2e-12, 10.0)
    assert HostCostModel(no_roofline, MODEL).cost(_step(4, 10)).breakdown["weights_s"] == 0


def test_the_roofline_parameter_is_optional_and_exponents_without_sign_load(tmp_path):
    text = ("kind: host\nname: x\ndescription: d\nparameters:\n"
            + "".join(f"  {n}: {{value: 1.0e-3, source: s}}\n" for n in
                      ("step_overhead_s", "column_overhead_s", "recurrent_s_per_flop", "input_s_per_flop")))
    path = tmp_path / "x.yaml"
    path.write_text(text + "  power_w: {value: 5, source: s}\n")
    assert load_host_preset(path).weight_bandwidth_bytes_per_s == 0
    path.write_text(text + "  power_w: {value: 5, source: s}\n"
                    "  weight_bandwidth_bytes_per_s: {value: 2e9, source: s}\n")
    assert load_host_preset(path).weight_bandwidth_bytes_per_s == 2e9
    path.write_text(text)
    with pytest.raises(ValueError, match=r"missing \['power_w'\]"):
        load_host_preset(path)


def test_h200_preset_is_sourced_and_loads_by_name_wherever_hardware_is_taken(capsys):
    spec = load_hardware("h200")
    assert isinstance(spec, HostSpec) and set(spec.sources) == set(HostSpec.parameter_names())
    assert spec.weight_bandwidth_bytes_per_s == 4.8e12 and spec.power_w == 700
    assert spec.recurrent_s_per_flop == pytest.approx(1 / 67e12, rel=1e-3)
    with pytest.raises(PresetError, match="a host preset \\(kind: host\\)"):
        load_preset("h200")
    assert ebatch.simulate("tiny-lstm", "librispeech-test-clean", "ebatch", "h200").hardware == "h200"
    from ebatch.cli import main

    main(["compare", "--model", "lstm-2x512", "--hardware", "h200", "--requests", "8", "--policies",
          "padding,ebatch", "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    assert {r["hardware"] for r in rows} == {"h200"} and all(r["throughput_rps"] > 0 for r in rows)


def test_h200_predictions_of_the_measured_runs_are_pinned():
    rows = json.loads(GPU_CHECK.read_text())["bench"]
    runs = predict_runs(rows, "h200")
    assert [(r.name, r.batch_size) for r in runs] == [
        ("padding", 16), ("ebatch T=16", 16), ("ebatch T=64", 16), ("padding", 64), ("ebatch T=16", 64),
        ("ebatch T=64", 64)]
    assert [round(r.predicted_s, 3) for r in runs] == [0.614, 0.472, 0.380, 0.189, 0.257, 0.207]
    assert [round(r.measured_s, 3) for r in runs] == [1.338, 1.042, 0.772, 0.370, 0.854, 0.572]


def test_implied_overheads_recover_the_costs_that_made_the_runs():
    truth = HostSpec(2e-3, 1e-4, 0.0, 0.0, 0.0)
    rows = []
    for b, name in ((4, "padding"), (4, "ebatch T=8"), (8, "ebatch T=32"), (8, "padding")):
        fake = {"name": name, "batch_size": b, "wall_s": 1.0, "sequences_per_s": 12.0}
        fake["wall_s"] = predict_runs([fake], truth, model="tiny-lstm")[0].predicted_s
        fake["sequences_per_s"] = 12.0 / fake["wall_s"]
        rows.append(fake)
    step_s, column_s, rel = implied_overheads(rows + [{"name": "torch.nn packed", "batch_size": 4}], "tiny-lstm")
    assert (step_s, column_s) == (pytest.approx(2e-3), pytest.approx(1e-4)) and rel < 1e-9
