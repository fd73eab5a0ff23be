"""Running sweeps: Parquet rows and columns, the same numbers as the single-run path (serially and on dask),
resume after a partial or killed sweep, schemas across resumed sweeps, plots, and import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import ebatch
from ebatch.sim.results import flat_summary
from ebatch.sweep import RunConfig, WorkloadConfig, load_spec, parse_spec, plan, run_configs
from ebatch.sweep.plot import axis_columns
from ebatch.sweep.run import run_sweep
from ebatch.sweep.store import ResultStore
from test_cli import run_cli
from test_sweep_spec import EXAMPLE

SPEC = """\
model: [tiny-lstm, tiny-bilstm]
hardware: [epur, tpu-v1]
workload: {csv: lengths.csv, requests: 6, arrival: poisson, rate_rps: 2000, seed: 3}
policies: ["padding:batch_size=2", "ebatch:batch_size=2"]
grid:
  timesteps: [2, 4]
  hardware.weight_buffer_bytes: [1024, 65536]
"""
RUNS = 2 * 2 * (2 + 2 * 2)  # models x presets x (padding per buffer + ebatch per T and buffer)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "lengths.csv").write_text("length\n3\n7\n2\n9\n4\n4\n1\n6\n")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    return path


def single_run(config: RunConfig) -> dict:
    """The same run through ebatch.simulate with plain arguments (no sweep code)."""
    work = config.workload
    workload = ebatch.Workload.from_csv(work.dataset, n=work.requests, arrival=work.arrival,
                                        rate_rps=work.rate_rps, seed=work.seed)
    hardware = ebatch.load_preset(config.hardware).replace(**dict(config.hardware_overrides))
    return ebatch.simulate(config.model, workload, config.policy, hardware, **dict(config.policy_params)).summary()


def test_results_parquet_has_one_row_per_run_with_config_columns_and_every_summary_key(capsys, spec, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 0, err
    assert f"{RUNS} runs in the spec, 0 already in" in err and f"{RUNS} run in" in err
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == RUNS and table["config_hash"].is_unique
    configs = {c.config_hash: c for c in plan(load_spec(spec))}
    assert set(table["config_hash"]) == set(configs)
    config_columns = ["model", "hardware", "hardware_weight_buffer_bytes", "dataset", "requests", "arrival",
                      "rate_rps", "seed", "policy", "param_batch_size", "param_timesteps", "param_max_wait_s",
                      "config_hash", "ebatch_version", "sim_wall_s", "sim_cpu_s"]
    assert set(config_columns) <= set(table.columns)
    assert (table["ebatch_version"] == ebatch.__version__).all()
    for _, row in table.iterrows():
        config = configs[row["config_hash"]]
        expected = flat_summary(single_run(config))
        assert set(expected) <= set(table.columns)
        for key, value in expected.items():  # identical numbers to the serial single-run path
            assert row[key] == value or (pd.isna(row[key]) and value is None), key
        assert row["hardware_weight_buffer_bytes"] == dict(config.hardware_overrides)["weight_buffer_bytes"]
        assert pd.isna(row["param_timesteps"]) if config.policy == "padding" else \
            row["param_timesteps"] == dict(config.policy_params)["timesteps"]


def test_dask_workers_give_the_serial_numbers(spec, tmp_path):
    from distributed import LocalCluster

    serial = {r.config: r.summary for r in run_configs(plan(load_spec(spec)), workers=0)}
    threads = {r.config: r.summary for r in run_configs(list(serial), workers=2, processes=False, chunk_size=3,
                                                        max_in_flight=2)}
    assert threads == serial
    with LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster:
        remote = run_sweep(spec, tmp_path / "remote", scheduler=cluster.scheduler_address, chunk_size=5)
    assert remote.ran == RUNS
    rows = pd.read_parquet(remote.results).set_index("config_hash")
    for config, summary in serial.items():
        assert rows.loc[config.config_hash, "energy_j"] == summary["energy_j"]
        assert rows.loc[config.config_hash, "latency_p99_s"] == summary["latency_p99_s"]


@pytest.mark.slow
def test_cli_on_a_local_cluster_of_worker_processes(capsys, spec, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "sweep", str(spec), "--out", str(out), "--workers", "2", "--chunk-size", "4")
    assert code == 0, err
    assert "on 2 local workers" in err
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == RUNS and table["config_hash"].is_unique
    serial = {r.config.config_hash: r.summary for r in run_configs(plan(load_spec(spec)))}
    assert all(row["energy_j"] == serial[row["config_hash"]]["energy_j"] for _, row in table.iterrows())


def test_a_rerun_computes_only_what_is_missing(spec, tmp_path):
    out = tmp_path / "out"
    part = spec.with_name("part.yaml")
    part.write_text(SPEC.replace("timesteps: [2, 4]", "timesteps: [2]").replace("[tiny-lstm, tiny-bilstm]",
                                                                                "tiny-lstm"))
    first = run_sweep(part, out)
    assert (first.planned, first.skipped, first.ran) == (2 * (2 + 2), 0, 8)
    second = run_sweep(spec, out)
    assert (second.planned, second.skipped, second.ran) == (RUNS, 8, RUNS - 8)
    third = run_sweep(spec, out)
    assert (third.skipped, third.ran) == (RUNS, 0)
    table = pd.read_parquet(second.results)
    assert len(table) == RUNS and table["config_hash"].is_unique


def test_a_killed_sweep_loses_only_the_runs_in_flight(spec, tmp_path):
    out = tmp_path / "out"

    def kill_after_three_chunks(done: int, total: int) -> None:
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, chunk_size=1, progress=kill_after_three_chunks)
    # a part file a killed process was writing is hidden, ignored by readers and removed on resume
    stale = out / "results.parquet" / ".part-000003.parquet.tmp"
    stale.write_bytes(b"half a file")
    assert len(pd.read_parquet(out / "results.parquet")) == 3
    resumed = run_sweep(spec, out, chunk_size=4)
    assert (resumed.skipped, resumed.ran) == (3, RUNS - 3)
    assert not stale.exists()
    assert len(pd.read_parquet(resumed.results)) == RUNS


def test_resumed_sweeps_keep_one_schema_and_refuse_to_turn_numbers_into_text(spec, tmp_path):
    out = tmp_path / "out"
    one = spec.with_name("one.yaml")
    one.write_text(SPEC.replace("model: [tiny-lstm, tiny-bilstm]", "model: tiny-bilstm")
                   .replace("timesteps: [2, 4]", "timesteps: [2]"))
    run_sweep(one, out)
    store = ResultStore(out / "results.parquet")
    assert str(store.schema.field("param_stage_order").type) == "null"
    # a later sweep gives stage_order values and a fractional buffer: earlier parts are rewritten to match
    two = spec.with_name("two.yaml")
    two.write_text(one.read_text().replace('"ebatch:batch_size=2"', '"ebatch:batch_size=2:bidirectional=stream"')
                   .replace("grid:", "grid:\n  stage_order: [oldest, deepest]")
                   .replace("[1024, 65536]", "[1024.5]"))
    run_sweep(two, out)
    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 2 * (4 + 1 + 2)  # two presets x (first sweep, padding, ebatch per stage order)
    assert set(table["param_stage_order"].dropna()) == {"oldest", "deepest"}
    assert sorted(table["hardware_weight_buffer_bytes"].unique()) == [1024.0, 1024.5, 65536.0]
    three = spec.with_name("three.yaml")
    three.write_text(one.read_text().replace("timesteps: [2]", "timesteps: [auto]"))
    with pytest.raises(ValueError, match=r"^results: .* write this sweep to a new --out$"):
        run_sweep(three, out)


def test_the_example_spec_runs_at_small_scale(tmp_path):
    document = yaml.safe_load(EXAMPLE.read_text())
    document["workload"]["requests"] = 3
    report = run_sweep(parse_spec(document, "example", EXAMPLE.parent), tmp_path)
    table = pd.read_parquet(report.results)
    assert report.ran == len(table) == 24
    assert table.groupby("policy").size().to_dict() == {"cellular": 8, "ebatch": 16}
    assert (table["completed"] == 3).all()


def test_plot_draws_pareto_fronts_and_heatmaps(capsys, spec, tmp_path):
    out = tmp_path / "out"
    run_sweep(spec, out)
    code, _, err = run_cli(capsys, "sweep", str(out), "--plot")
    assert code == 0, err
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    chart = tmp_path / "chart.png"
    code, _, err = run_cli(capsys, "sweep", str(out / "results.parquet"), "--plot", "--out", str(chart),
                           "--metric", "throughput_rps", "--axes", "hardware_weight_buffer_bytes")
    assert code == 0 and chart.stat().st_size > 0, err
    code, _, err = run_cli(capsys, "sweep", str(out), "--plot", "--metric", "speed")
    assert code == 2 and err.startswith("error: metric: no column 'speed'") and len(err.splitlines()) == 1
    code, _, err = run_cli(capsys, "sweep", str(tmp_path / "nothing"), "--plot")
    assert code == 2 and err.startswith("error: plot:")
    table = pd.read_parquet(out / "results.parquet")
    ebatch_runs = table[(table["policy"] == "ebatch") & (table["model"] == "tiny-lstm") & (table["hardware"] == "epur")]
    assert axis_columns(ebatch_runs) == ["hardware_weight_buffer_bytes", "param_timesteps"]
    assert axis_columns(table[table["policy"] == "padding"]) == ["hardware_weight_buffer_bytes"]


def test_run_configs_serially_yields_in_order_and_checks_its_arguments():
    work = WorkloadConfig("librispeech-test-clean", requests=3)
    configs = [RunConfig("tiny-gru", "epur", work, "ebatch", {"batch_size": 2, "timesteps": t}) for t in (1, 2, 3)]
    results = list(run_configs(configs))
    assert [r.config for r in results] == configs and all(r.wall_s > 0 for r in results)
    assert results[2].summary == ebatch.simulate("tiny-gru", work.load(), "ebatch", "epur", batch_size=2,
                                                 timesteps=3).summary()
    with pytest.raises(ValueError, match="^workers: must be a whole number >= 0"):
        list(run_configs(configs, workers=-1))


def test_importing_ebatch_and_its_cli_does_not_import_dask():
    code = ("import sys, ebatch, ebatch.cli, ebatch.sweep; "
            "sys.exit(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
