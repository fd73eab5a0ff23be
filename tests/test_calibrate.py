"""ebatch calibrate and the host cost model: the fit recovers known coefficients, presets round-trip strictly,
the cost formula, and compare() simulates with a host preset."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ebatch.experiments.study.calibrate import StepTiming, calibrate, fit_host
from ebatch.hardware.host import HostCostModel, HostSpec, host_preset_text, load_hardware, load_host_preset
from ebatch.model import Layer, RNNModel
from ebatch.step import LAYOUTS_KEPT, BatchStep, RecentLayouts

MODEL = RNNModel("t", (Layer("lstm", 8, 16), Layer("lstm", 16, 16)))
SPEC = HostSpec(1e-4, 2e-5, 3e-10, 1e-10, 10.0, segment_overhead_s=3e-5, layout_overhead_s=2e-4, name="h",
                sources={})


def _step(layer, rows, columns, fused=True):
    return BatchStep(layer, 0, columns, rows, range(rows), [0] * rows, range(rows), [0] * rows, [columns] * rows,
                     [True] * rows, fused=fused)


def _timed(model: HostCostModel, steps: list[BatchStep]) -> list[StepTiming]:
    """Each step priced in order, with whether its layout was new (as calibration records it)."""
    layouts = RecentLayouts()
    return [StepTiming.of(step, model.cost(step).time_s, "grid", layouts.fetch(step)[1]) for step in steps]


def test_host_cost_formula_and_estimated_energy():
    cost = HostCostModel(SPEC, MODEL).cost(_step(0, 4, 10))
    cells = 40
    want = 1e-4 + 2e-4 + 4 * 3e-5 + 10 * 2e-5 + cells * 2 * 64 * 16 * 3e-10 + cells * 2 * 64 * 8 * 1e-10
    assert cost.time_s == pytest.approx(want) and cost.energy_j == pytest.approx(10.0 * want)
    assert cost.breakdown["estimated_energy_j"] == cost.energy_j
    unfused = HostCostModel(SPEC, MODEL).cost(_step(0, 4, 10, fused=False))
    assert unfused.time_s == pytest.approx(want)  # the executor runs a run of invocations as one call


def test_fit_recovers_known_coefficients():
    model = HostCostModel(SPEC, MODEL)
    steps = [_step(layer, r, c) for layer in (0, 1) for r in (1, 4, 16) for c in (4, 16, 64)]
    steps += [BatchStep(layer, 0, c, 2, [0, 0, 1], [0, c // 2, 0], [0, 1, 2], [0, 0, 0], [c // 2, c // 2, c],
                        [True, True, True], fused=False) for layer in (0, 1) for c in (4, 16)]  # two segments a row
    timings = _timed(model, steps)
    assert 0 < sum(t.new_layout for t in timings) < len(timings)  # layer 1 repeats layer 0's layout
    fitted = fit_host(MODEL, timings, "h", "test", power_w=5.0)
    assert fitted.rel_rms_error < 1e-6 and fitted.total_ratio_by_kind == {"grid": pytest.approx(1.0)}
    for name in ("step_overhead_s", "layout_overhead_s", "segment_overhead_s", "column_overhead_s",
                 "recurrent_s_per_flop", "input_s_per_flop"):
        assert getattr(fitted.spec, name) == pytest.approx(getattr(SPEC, name), rel=1e-4)
    data = json.loads(json.dumps(fitted.to_json(), allow_nan=False))
    assert data["name"] == "h" and len(data["timings"]) == len(timings)
    assert data["parameters"]["power_w"] == 5.0 and data["timings"][0]["columns"] == timings[0].columns


def test_a_layout_among_the_recent_ones_costs_no_plan():
    model = HostCostModel(SPEC, MODEL)
    first = model.cost(_step(0, 4, 10)).time_s
    again = model.cost(_step(0, 4, 10))  # the same layout again: the executor reuses its plan
    assert first - again.time_s == pytest.approx(SPEC.layout_overhead_s)
    others = [_step(0, r, 10) for r in range(5, 5 + LAYOUTS_KEPT)]
    assert model.cost(others[0], commit=False).time_s == pytest.approx(model.cost(others[0], commit=False).time_s)
    for step in others:  # LAYOUTS_KEPT new layouts push the first one out
        model.cost(step)
    assert model.cost(_step(0, 4, 10)).time_s == pytest.approx(first)
    model.reset()
    assert model.cost(others[-1]).time_s == pytest.approx(HostCostModel(SPEC, MODEL).cost(others[-1]).time_s)


def test_column_rows_counts_the_rows_holding_a_cell_in_each_column():
    step = BatchStep(0, 0, 5, 4, [0, 1, 1, 3], [0, 1, 3, 4], [0, 1, 2, 3], [0, 0, 0, 0], [5, 2, 2, 1],
                     [True] * 4)
    assert step.column_rows().tolist() == [1, 2, 2, 2, 3]
    assert int(step.column_rows().sum()) == step.useful_cells


def test_narrow_term_prices_the_first_rows_of_each_column():
    narrow = replace(SPEC, narrow_rows=2.0, narrow_s_per_flop=5e-10)
    step = BatchStep(0, 0, 5, 4, [0, 1, 1, 3], [0, 1, 3, 4], [0, 1, 2, 3], [0, 0, 0, 0], [5, 2, 2, 1],
                     [True] * 4)
    extra = HostCostModel(narrow, MODEL).cost(step).time_s - HostCostModel(SPEC, MODEL).cost(step).time_s
    assert extra == pytest.approx((1 + 2 + 2 + 2 + 2) * 2 * 64 * 16 * 5e-10)  # min(rows, 2) per column
    shared = narrow.on_shared_core(0.5)
    assert shared.narrow_rows == 2.0 and shared.narrow_s_per_flop == pytest.approx(1e-9)  # a count, not a time


def test_fit_finds_the_narrow_rows_knee():
    truth = replace(SPEC, narrow_rows=4.0, narrow_s_per_flop=6e-10)
    model = HostCostModel(truth, MODEL)
    steps = [_step(layer, r, c) for layer in (0, 1) for r in (1, 2, 3, 4, 6, 8, 12, 16) for c in (4, 16, 64)]
    fitted = fit_host(MODEL, _timed(model, steps), "h", "test", power_w=5.0)
    assert fitted.rel_rms_error < 1e-6 and fitted.spec.narrow_rows == 4.0
    assert fitted.spec.narrow_s_per_flop == pytest.approx(6e-10, rel=1e-4)
    assert fitted.spec.recurrent_s_per_flop == pytest.approx(3e-10, rel=1e-4)
    linear = fit_host(MODEL, _timed(HostCostModel(SPEC, MODEL), steps), "h", "test", power_w=5.0)
    assert linear.spec.narrow_s_per_flop == pytest.approx(0.0, abs=1e-15)  # no knee in the data: none fitted


def test_calibrate_writes_a_strict_preset_that_compare_simulates(tmp_path):
    from ebatch.experiments.study.compare import compare

    result = calibrate("lstm-2x512", backend="numpy", threads=None, repeats=1, rows=(1, 2), columns=(2, 4),
                       policy_requests=4)
    assert all(getattr(result.spec, n) >= 0 for n in HostSpec.parameter_names())
    assert "measured by ebatch calibrate on" in result.spec.sources["step_overhead_s"]
    assert result.spec.sources["power_w"].startswith("assumption")
    path = tmp_path / "host.yaml"
    path.write_text(host_preset_text(result.spec))
    assert load_hardware(path) == result.spec
    (sim,) = compare("lstm-2x512", "librispeech-test-clean", [("ebatch", {})], hardware=str(path))
    summary = sim.summary()
    assert summary["throughput_rps"] > 0 and summary["hardware"] == result.spec.name
    path.write_text(host_preset_text(result.spec).replace("power_w:", "power_watts:"))
    with pytest.raises(ValueError, match="unknown \\['power_watts'\\], missing \\['power_w'\\]"):
        load_host_preset(path)
    path.write_text(host_preset_text(result.spec) + "kind: host\n")
    with pytest.raises(ValueError, match="duplicate key"):
        load_host_preset(path)


def test_the_executor_builds_a_plan_once_per_recent_layout():
    import numpy as np

    from ebatch.runtime import NumpyExecutor, RNNWeights

    executor = NumpyExecutor(RNNWeights.random(MODEL, seed=0))
    executor.source = lambda r: np.ones((20, 8), dtype=np.float32)
    run = [BatchStep(0, 0, 1, 2, [0, 1], [0, 0], [0, 1], [c, c], [1, 1], [c == 0] * 2) for c in range(20)]
    for step in run:  # one column at a time over the same requests: the first starts them, the rest continue
        executor.execute(step)
    assert executor.plans_built == 2
    executor.execute(_step(1, 2, 20))
    assert executor.plans_built == 3
