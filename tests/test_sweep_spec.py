"""Sweep specs: strict parsing (one-line errors, exit 2, nothing written), the cross product, and where grid
keys apply; the config hash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import ebatch
from ebatch.sweep import RunConfig, WorkloadConfig, load_spec, parse_spec, plan
from test_cli import run_cli

EXAMPLE = Path(__file__).parent.parent / "examples" / "sweep.yaml"

BASE = """\
model: tiny-lstm
hardware: epur
workload: {csv: lengths.csv, requests: 6, seed: 0}
policies: [padding, "ebatch:batch_size=2"]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "lengths.csv").write_text("length\n3\n7\n2\n9\n4\n4\n1\n6\n")
    return tmp_path


def write_spec(folder: Path, text: str) -> Path:
    path = folder / "spec.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    (BASE + "modle: eesen\n", "spec.yaml: modle: unknown key; allowed: model, hardware"),
    (BASE + "model: tiny-gru\n", "spec.yaml: model: given twice (line 5)"),
    (BASE.replace("tiny-lstm", "tiny-lstn"), "spec.yaml: model: unknown model 'tiny-lstn'"),
    (BASE.replace("tiny-lstm", "[tiny-lstm, 3]"), "spec.yaml: model: each entry must be a name"),
    (BASE.replace("hardware: epur", "hardware: [epur, tpu-v2]"), "spec.yaml: hardware: unknown preset 'tpu-v2'"),
    (BASE.replace("hardware: epur\n", ""), "spec.yaml: hardware: missing"),
    (BASE.replace("padding", "paddin"), "spec.yaml: policies: unknown policy 'paddin'"),
    (BASE.replace("batch_size=2", "batch=2"), "spec.yaml: policies: ebatch has no parameter 'batch'"),
    (BASE.replace("batch_size=2", "batch_size=two"), "spec.yaml: policy ebatch: batch_size: must be an integer >= 1"),
    (BASE.replace("seed: 0", "sed: 0"), "spec.yaml: workload.sed: unknown key; allowed: dataset, csv"),
    (BASE.replace("csv: lengths.csv", "csv: missing.csv"), "spec.yaml: workload: file"),
    (BASE.replace("csv: lengths.csv", "dataset: librispeech"), "spec.yaml: workload: unknown dataset"),
    (BASE.replace("csv: lengths.csv, ", ""), "spec.yaml: workload: give exactly one of dataset"),
    (BASE.replace("seed: 0", "arrival: poisson"), "spec.yaml: workload.rate_rps: poisson arrivals need a rate"),
    (BASE.replace("requests: 6", "requests: many"), "spec.yaml: workload.requests: must be a whole number"),
    (BASE.replace("seed: 0", "cv: 2"), "spec.yaml: workload.cv: only gamma arrivals take a cv"),
    (BASE.replace("seed: 0", "arrival: gamma, rate_rps: 5"), "spec.yaml: workload.cv: gamma arrivals need"),
    (BASE + "grid: {timesteps: 8}\n", "spec.yaml: grid.timesteps: must be a list of values"),
    (BASE + "grid: {timesteps: []}\n", "spec.yaml: grid.timesteps: empty list"),
    (BASE + "grid: {priority: [oldest]}\n", "spec.yaml: grid.priority: none of the policies (padding, ebatch) takes"),
    (BASE.replace("padding", "padding:batch_size=2") + "grid: {batch_size: [2, 4]}\n",
     "spec.yaml: grid.batch_size: every policy that takes batch_size fixes it"),
    (BASE + "grid: {timesteps: [0]}\n", "spec.yaml: policy ebatch: timesteps: must be"),
    (BASE + "grid: {hardware.weight_buffer: [1]}\n", "spec.yaml: grid.hardware.weight_buffer: no preset of the spec"),
    (BASE + "grid: {hardware.array_rows: [1.5]}\n", "spec.yaml: hardware.array_rows: must be a whole number"),
    (BASE + "grid: {hardware.clock_hz: [fast]}\n", "spec.yaml: hardware.clock_hz: must be a number"),
    ("[model, hardware]\n", "spec.yaml: spec: must be a mapping"),
    (BASE + "grid: {timesteps: [8}\n", "spec.yaml: not valid YAML"),
])
def test_bad_specs_get_one_line_naming_the_field_exit_2_and_nothing_written(capsys, folder, text, expected):
    spec = write_spec(folder, text)
    out = folder / "out"
    code, stdout, err = run_cli(capsys, "sweep", str(spec), "--out", str(out), "--workers", "0")
    assert code == 2, err
    assert err.startswith(f"error: {expected}"), err
    assert len(err.strip().splitlines()) == 1 and stdout == ""
    assert not out.exists()


def test_cli_asks_for_out_and_refuses_workers_with_a_scheduler(capsys, folder):
    spec = write_spec(folder, BASE)
    code, _, err = run_cli(capsys, "sweep", str(spec))
    assert code == 2 and err.startswith("error: out: give --out DIR")
    code, _, err = run_cli(capsys, "sweep", str(spec), "--out", str(folder / "o"), "--workers", "2",
                           "--scheduler", "tcp://127.0.0.1:8786")
    assert code == 2 and err.startswith("error: workers: give --workers")
    code, _, err = run_cli(capsys, "sweep", str(folder), "--out", str(folder / "o"))
    assert code == 2 and "is a folder" in err


def test_grid_keys_apply_only_to_the_policies_and_presets_that_take_them(folder):
    text = BASE.replace("policies: [padding, \"ebatch:batch_size=2\"]",
                        "policies: [padding, ebatch, \"ebatch:timesteps=3\", \"cellular:batch_size=2\"]")
    text += "grid:\n  timesteps: [2, 4]\n  max_wait_s: [0.0, 0.5]\n  hardware.weight_buffer_bytes: [1024, 4096]\n"
    configs = plan(load_spec(write_spec(folder, text)))
    runs = {}
    for c in configs:
        runs.setdefault(c.policy, []).append((dict(c.policy_params), dict(c.hardware_overrides)))
    buffers = [1024.0, 4096.0]
    # padding takes max_wait_s, not timesteps: 2 waits x 2 buffers, not 8 runs
    assert sorted((p["max_wait_s"], h["weight_buffer_bytes"]) for p, h in runs["padding"]) == \
        [(w, b) for w in (0.0, 0.5) for b in buffers]
    # ebatch takes timesteps (2 x 2 buffers); ebatch:timesteps=3 fixes it (once per buffer)
    assert sorted((p["timesteps"], h["weight_buffer_bytes"]) for p, h in runs["ebatch"]) == \
        [(t, b) for t in (2, 3, 4) for b in buffers]
    # cellular takes neither parameter: once per buffer
    assert sorted(h["weight_buffer_bytes"] for _, h in runs["cellular"]) == buffers
    assert len(configs) == 4 + 6 + 2


def test_plan_orders_runs_as_written_and_keeps_equal_runs_once(folder):
    text = BASE.replace("policies: [padding, \"ebatch:batch_size=2\"]",
                        "policies: [\"ebatch:timesteps=16\", ebatch, padding]")  # 16 is ebatch's default
    text = text.replace("model: tiny-lstm", "model: [tiny-lstm, tiny-gru]")
    configs = plan(load_spec(write_spec(folder, text)))
    assert [(c.model, c.policy) for c in configs] == \
        [("tiny-lstm", "ebatch"), ("tiny-lstm", "padding"), ("tiny-gru", "ebatch"), ("tiny-gru", "padding")]


def test_the_example_spec_plans_the_issue_s_24_runs():
    configs = plan(load_spec(EXAMPLE))
    assert len(configs) == 2 * 2 * (2 + 2 * 2)  # models x presets x (cellular per buffer + ebatch per T and buffer)
    cellular = [c for c in configs if c.policy == "cellular"]
    assert len(cellular) == 8 and all("timesteps" not in dict(c.policy_params) for c in cellular)
    assert {dict(c.policy_params)["timesteps"] for c in configs if c.policy == "ebatch"} == {8, 32}
    assert all(dict(c.policy_params)["batch_size"] == 32 for c in configs)


def test_workload_lists_are_axes_and_relative_paths_follow_the_spec(folder):
    text = BASE.replace("seed: 0", "seed: [0, 1], arrival: [offline, poisson], rate_rps: 50")
    spec = load_spec(write_spec(folder, text))
    assert [(w.seed, w.arrival) for w in spec.workloads] == [(0, "offline"), (0, "poisson"), (1, "offline"),
                                                              (1, "poisson")]
    assert all(w.dataset == str(folder / "lengths.csv") for w in spec.workloads)


def test_gamma_cv_is_a_workload_axis(folder):
    spec = load_spec(write_spec(folder, BASE.replace("seed: 0", "arrival: gamma, rate_rps: 50, cv: [0.5, 2]")))
    assert [w.cv for w in spec.workloads] == [0.5, 2]
    smooth, bursty = (w.load().arrivals_s for w in spec.workloads)
    assert np.std(np.diff(smooth)) < np.std(np.diff(bursty))
    hashes = {c.config_hash for c in plan(spec)}
    assert len(hashes) == 2 * len(spec.policies)


def test_config_hash_follows_the_preset_contents_the_workload_file_and_the_version(folder, monkeypatch):
    epur_text = Path(ebatch.__file__).parent.joinpath("hardware", "presets", "epur.yaml").read_text()
    (folder / "same.yaml").write_text(epur_text)
    (folder / "faster.yaml").write_text(epur_text.replace("clock_hz: {value: 500.0e6", "clock_hz: {value: 600.0e6"))
    work = WorkloadConfig(str(folder / "lengths.csv"), requests=4)

    def run(hardware="epur", workload=work, overrides=None, **params) -> RunConfig:
        return RunConfig("tiny-lstm", hardware, workload, "ebatch", {"batch_size": 2, **params}, overrides or {})

    base = run().config_hash
    assert run(str(folder / "same.yaml")).config_hash == base  # the same contents, by name or by path
    assert run(str(folder / "faster.yaml")).config_hash != base
    # an override that sets the preset's own value is the same simulation; another value is not
    assert run(overrides={"weight_buffer_bytes": 4194304}).config_hash == base
    assert run(overrides={"weight_buffer_bytes": 4194305}).config_hash != base
    # parameters at their defaults, written or not, hash alike; a different one does not
    assert run(timesteps=16).config_hash == base != run(timesteps=8).config_hash
    # a CSV counts by its name and contents, not its folder
    for name, text in (("copy", "length\n3\n7\n2\n9\n4\n4\n1\n6\n"), ("other", "length\n5\n5\n5\n5\n")):
        (folder / name).mkdir()
        (folder / name / "lengths.csv").write_text(text)
    assert run(workload=WorkloadConfig(str(folder / "copy" / "lengths.csv"), requests=4)).config_hash == base
    assert run(workload=WorkloadConfig(str(folder / "other" / "lengths.csv"), requests=4)).config_hash != base
    monkeypatch.setattr(ebatch, "__version__", "99.0")
    assert run().config_hash != base


def test_parse_spec_takes_a_document(folder):
    document = yaml.safe_load(BASE)
    spec = parse_spec(document, "inline", folder)
    assert spec.models == ("tiny-lstm",) and spec.policies[1] == ("ebatch", (("batch_size", 2),))
    with pytest.raises(ValueError, match=r"^inline: grid: must be a mapping"):
        parse_spec({**document, "grid": [1]}, "inline", folder)
