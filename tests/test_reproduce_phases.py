"""reproduce and tune as phases of sweep run configurations: what each phase runs, resampled backlogs,
the same numbers serially and on 2 dask workers, tune's default load, the headline ratios by hand."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

import ebatch
from ebatch.cli import main
from ebatch.experiments.study.headline import geomean_ratios, load_ratios, offline_ratios
from ebatch.experiments.study.phases import PhaseRunner, run_label
from ebatch.experiments.study.reproduce import run_reproduce
from ebatch.experiments.study.reproduce_config import Network, ReproduceConfig, workload_config
from ebatch.experiments.study.reproduce_plan import CasePlan, curve_name
from ebatch.experiments.study.tune import timestep_grid

NET = Network("tiny-lstm", "librispeech-test-clean", 20.0)
SMALL = ReproduceConfig(
    networks=(NET,), presets=("epur",), requests=24, batch_size=4, sort_window=16, curve_fractions=(0.5, 0.7),
    sensitivity=False, auto_study=False,
)


def test_case_plan_phases():
    plan = CasePlan(NET, "epur", SMALL)
    first = plan.offline_baselines()
    # three baselines on each backlog: the test set, 2x and 4x its size
    assert len(first) == 3 * 3
    assert sorted({c.workload.requests for c in first}) == [24, 48, 96]
    assert {run_label(c) for c in first} == {"padding", "padding-sorted", "cellular"}
    assert all(c.workload.arrival == "offline" and c.workload.seed == SMALL.seed for c in first)
    runs = plan.loaded(100.0)
    assert list(runs) == ["poisson", "trace", curve_name(0.5), curve_name(0.7)]
    assert runs["poisson"]["cellular"].workload.rate_rps == pytest.approx(70.0)
    assert runs["trace"]["cellular"].workload.arrival == SMALL.trace
    assert runs[curve_name(0.7)] == runs["poisson"]  # the same runs: a phase runs them once
    grid = plan.tune_configs(100.0)
    longest = int(plan.tune_configs(100.0)[0].workload.load().lengths.max())
    assert [dict(c.policy_params)["timesteps"] for c in grid] == timestep_grid(longest)
    assert all(c.policy == "ebatch" and dict(c.policy_params)["batch_size"] == 4 for c in grid)
    third = plan.tuned_runs(8, 100.0)
    assert all(c.policy == "ebatch" and dict(c.policy_params)["timesteps"] == 8 for c in third)
    assert len(set(third)) == 3 + 3  # three backlogs; poisson (= curve 0.7), trace, curve 0.5


def test_resampled_backlogs_are_deterministic_by_seed():
    whole = replace(SMALL, requests=None)
    two = workload_config(NET, whole, backlog_factor=2)
    size = len(ebatch.Workload.from_dataset(NET.dataset))
    assert two.requests == 2 * size
    first = ebatch.Workload.from_dataset(NET.dataset, n=two.requests, seed=0, frame_rate_hz=20.0).lengths
    again = ebatch.Workload.from_dataset(NET.dataset, n=two.requests, seed=0, frame_rate_hz=20.0).lengths
    other = ebatch.Workload.from_dataset(NET.dataset, n=two.requests, seed=1, frame_rate_hz=20.0).lengths
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert np.array_equal(two.load().lengths, first)
    # with replacement: some length of the set is drawn more often than it occurs in it
    values, counts = np.unique(ebatch.Workload.from_dataset(NET.dataset, frame_rate_hz=20.0).lengths,
                               return_counts=True)
    drawn = dict(zip(*np.unique(first, return_counts=True)))
    assert any(drawn.get(v, 0) > 2 * c for v, c in zip(values, counts))


def test_runner_runs_a_config_once_across_phases():
    plan = CasePlan(NET, "epur", SMALL)
    with PhaseRunner() as runner:
        first = runner.run("one", plan.backlog(1).values())
        again = runner.run("two", plan.backlog(1).values())
    assert first == again
    assert sum(t.runs for t in runner.timing().values()) == 3
    assert set(runner.phases_s) == {"one", "two"}


def test_serial_and_two_workers_give_identical_numbers():
    serial = run_reproduce(SMALL).to_json()
    parallel = run_reproduce(SMALL, workers=2).to_json()
    for data in (serial, parallel):
        data.pop("timing")
    assert serial == parallel
    assert serial["headline"]["epur"]["throughput_vs_cellular"] > 0


def test_headline_ratios_by_hand():
    runs = {
        "ebatch": {"throughput_rps": 6.0, "requests_per_j": 3.0, "steady_throughput_rps": 5.0,
                   "steady_requests_per_j": 2.0, "latency_p99_s": 1.0},
        "cellular": {"throughput_rps": 2.0, "requests_per_j": 1.0, "steady_throughput_rps": 4.0,
                     "steady_requests_per_j": 2.0, "latency_p99_s": 4.0},
        "padding": {"throughput_rps": 3.0, "requests_per_j": 1.5, "steady_throughput_rps": 2.5,
                    "steady_requests_per_j": 0.5, "latency_p99_s": 2.0},
    }
    whole = offline_ratios(runs)
    assert whole["throughput_vs_cellular"] == 3.0 and whole["energy_efficiency_vs_padding"] == 2.0
    assert whole["throughput_vs_best_baseline"] == 2.0
    steady = offline_ratios(runs, steady=True)
    assert steady["throughput_vs_cellular"] == 1.25 and steady["energy_efficiency_vs_best_baseline"] == 1.0
    load = load_ratios(runs)
    assert load["p99_latency_vs_cellular"] == 0.25 and load["energy_efficiency_under_load_vs_padding"] == 2.0
    mean = geomean_ratios([{"x": 2.0}, {"x": 8.0}])
    assert mean["x"] == pytest.approx(4.0)


def test_tune_states_its_default_load(tmp_path, capsys):
    args = ["tune", "--model", "tiny-lstm", "--hardware", "epur", "--workload", "wmt21-en-de", "--requests", "30",
            "--batch-sizes", "4,8", "--timesteps", "4,16", "--out", str(tmp_path)]
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr().out
    assert code == 0
    settings = json.loads((tmp_path / "tune.json").read_text())["settings"]
    assert "0.7 x saturation" in settings["load"] and "0.7 x saturation" in " ".join(out.split())
    # the saturation: the best baseline offline at the largest B, on the same requests
    work = ebatch.Workload.from_dataset("wmt21-en-de", n=30, seed=0)
    best = max(ebatch.simulate("tiny-lstm", work, name, "epur", **params).summary()["throughput_rps"]
               for name, params in (("padding", {"batch_size": 8}), ("padding", {"batch_size": 8, "sort_window": 256}),
                                    ("cellular", {"batch_size": 8})))
    rate = float(settings["load"].split("mean rate ")[1].split(" ")[0])
    assert rate == pytest.approx(0.7 * best, rel=1e-3)
    assert not math.isnan(rate)
