"""The command line: simulate/compare in every format, --out files, info commands, and bad input (exit 2, one line)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import ebatch
from ebatch.cli import main
from ebatch.experiments.study.compare import (
    apply_defaults,
    compare,
    comparison_rows,
    parse_policies,
    policy_labels,
)
from ebatch.model import ZOO

POLICIES = "sequential,padding,cellular,ebatch"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``ebatch argv`` in process; returns (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str):
    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture
def lengths_csv(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    path.write_text("length\n3\n7\n2\n9\n4\n4\n1\n6\n")
    return path


def tiny(csv_path: Path, *extra: str) -> list[str]:
    return ["--model", "tiny-lstm", "--workload", str(csv_path), "--batch-size", "3", "--timesteps", "4", *extra]


# ---- simulate / compare ---------------------------------------------------------------------------------


def test_compare_json_lists_one_summary_per_policy_with_ratios_to_the_first(capsys, lengths_csv):
    code, out, err = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", POLICIES, "--format", "json")
    assert code == 0, err
    rows = strict_json(out)
    assert [r["label"] for r in rows] == POLICIES.split(",")
    assert all(r["completed"] == r["requests"] == 8 for r in rows)
    first = rows[0]
    assert first["throughput_ratio"] == first["energy_efficiency_ratio"] == first["latency_p99_ratio"] == 1.0
    for r in rows:
        assert r["baseline"] == "sequential"
        assert r["throughput_ratio"] == pytest.approx(r["throughput_rps"] / first["throughput_rps"])
        assert r["energy_efficiency_ratio"] == pytest.approx(first["energy_per_request_j"] / r["energy_per_request_j"])
        assert r["latency_p99_ratio"] == pytest.approx(r["latency_p99_s"] / first["latency_p99_s"])
    # --batch-size and --timesteps reach only the policies that take them
    params = {r["label"]: r["params"] for r in rows}
    assert params["sequential"] == {}
    assert params["padding"]["batch_size"] == params["cellular"]["batch_size"] == 3
    assert params["ebatch"]["batch_size"] == 3 and params["ebatch"]["timesteps"] == 4
    assert rows[2]["padding_fraction"] == 0.0  # cellular never pads


def test_compare_measured_puts_real_executor_figures_beside_the_simulated(capsys, lengths_csv):
    code, out, err = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", "padding,cellular,ebatch",
                             "--measured", "numpy", "-f", "json")
    assert code == 0, err
    rows = strict_json(out)
    for row in rows:
        measured = row["measured"]
        assert measured["backend"] == "numpy"
        # measured wall-clock figures of the same 8 requests: positive and finite, not the simulated ones
        assert measured["throughput_rps"] > 0 and measured["latency_p99_s"] >= measured["latency_p50_s"] > 0
        assert measured["throughput_rps"] != row["throughput_rps"]
    code, out, _ = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", "ebatch", "--measured", "numpy")
    assert code == 0 and "measured on the numpy executor" in out
    code, _, err = run_cli(capsys, "compare", *tiny(lengths_csv), "--measured", "gpu")
    assert code == 2 and "measured" in err and len(err.strip().splitlines()) == 1


def test_compare_json_matches_the_python_api(capsys, lengths_csv):
    code, out, _ = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", "padding,ebatch", "-f", "json")
    assert code == 0
    workload = ebatch.Workload.from_csv(lengths_csv)
    specs = apply_defaults(parse_policies("padding,ebatch"), {"batch_size": 3, "timesteps": 4})
    results = compare("tiny-lstm", workload, specs, "epur", seed=0)
    assert strict_json(out) == comparison_rows(results)


def test_compare_with_progress_equals_ebatch_simulate(lengths_csv):
    workload = ebatch.Workload.from_csv(lengths_csv)
    calls = []
    specs = [("cellular", {"batch_size": 3}), ("ebatch", {"batch_size": 3, "timesteps": 4})]
    results = compare("tiny-bilstm", workload, specs, "tpu-v1", progress=lambda *a: calls.append(a))
    for (name, params), result in zip(specs, results):
        direct = ebatch.simulate("tiny-bilstm", workload, name, "tpu-v1", **params)
        assert result.summary() == direct.summary()
        assert result.requests.equals(direct.requests)
    assert calls[-1] == ("ebatch", 8, 8) and ("cellular", 8, 8) in calls


def test_compare_table_prints_every_policy_and_unit_ratios_for_the_first(capsys, lengths_csv):
    code, out, _ = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", POLICIES)
    assert code == 0
    lines = out.splitlines()
    for name in POLICIES.split(","):
        assert any(line.lstrip("│ ").startswith(name) for line in lines), name
    sequential_row = next(line for line in lines if line.lstrip("│ ").startswith("sequential"))
    assert sequential_row.count("1.00x") == 3
    assert "throughput x" in out and "energy eff. x" in out and "p99 x" in out


def test_compare_csv_has_one_row_per_policy(capsys, lengths_csv):
    code, out, _ = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", POLICIES, "-f", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["label"] for r in rows] == POLICIES.split(",")
    assert float(rows[0]["throughput_ratio"]) == 1.0
    assert rows[0]["param_batch_size"] == "" and rows[1]["param_batch_size"] == "3"
    assert float(rows[3]["energy_j"]) == pytest.approx(sum(float(rows[3][f"energy_{k}_j"])
                                                           for k in ("dram", "sram", "mac", "static")))


def test_simulate_runs_one_policy_in_each_format(capsys, lengths_csv):
    code, out, _ = run_cli(capsys, "simulate", *tiny(lengths_csv), "--policy", "ebatch", "-f", "json")
    assert code == 0
    (row,) = strict_json(out)
    assert row["policy"] == "ebatch" and row["params"]["timesteps"] == 4 and row["completed"] == 8
    code, out, _ = run_cli(capsys, "simulate", *tiny(lengths_csv), "--policy", "ebatch", "-f", "csv")
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 1
    code, out, _ = run_cli(capsys, "simulate", *tiny(lengths_csv), "--policy", "ebatch")
    assert code == 0 and "ebatch" in out and "1.00x" not in out  # no ratio columns for one policy


def test_per_policy_parameters_and_labels(capsys, lengths_csv):
    spec = "padding:sort_window=4,max_wait_s=0.5,ebatch:timesteps=2,ebatch:timesteps=8"
    code, out, err = run_cli(capsys, "compare", "--model", "tiny-lstm", "--workload", str(lengths_csv),
                             "--batch-size", "2", "--policies", spec, "-f", "json")
    assert code == 0, err
    rows = strict_json(out)
    assert [r["label"] for r in rows] == ["padding", "ebatch:timesteps=2", "ebatch:timesteps=8"]
    assert rows[0]["params"] == {"batch_size": 2, "max_wait_s": 0.5, "sort_window": 4}
    assert [r["params"]["timesteps"] for r in rows[1:]] == [2, 8]
    assert all(r["params"]["batch_size"] == 2 for r in rows)


def test_parse_policies_syntax():
    assert parse_policies("sequential, padding:sort_window=256:batch_size=8,max_wait_s=0.01,ebatch") == [
        ("sequential", {}),
        ("padding", {"sort_window": 256, "batch_size": 8, "max_wait_s": 0.01}),
        ("ebatch", {}),
    ]
    assert parse_policies("ebatch:lookahead=none") == [("ebatch", {"lookahead": None})]
    assert policy_labels([("ebatch", {"timesteps": 4}), ("ebatch", {"timesteps": 4})]) == ["ebatch", "ebatch#2"]
    assert policy_labels([("padding", {"sort_window": None}), ("padding", {"sort_window": 256}), ("ebatch", {})]) == [
        "padding", "padding:sort_window=256", "ebatch"]
    for bad in ("", "a,,b", "timesteps=4,ebatch", ":x=1", "ebatch:timesteps"):
        with pytest.raises(ValueError, match="policies"):
            parse_policies(bad)


def test_out_writes_csvs_json_and_a_png(capsys, lengths_csv, tmp_path):
    out_dir = tmp_path / "results" / "epur"
    code, out, err = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", POLICIES, "-f", "json",
                             "--out", str(out_dir))
    assert code == 0
    assert f"wrote 11 files to {out_dir}" in err
    for name in POLICIES.split(","):
        requests = list(csv.DictReader((out_dir / f"requests_{name}.csv").open()))
        assert len(requests) == 8 and all(float(r["finish_s"]) >= float(r["arrival_s"]) for r in requests)
        steps = list(csv.DictReader((out_dir / f"steps_{name}.csv").open()))
        assert steps and {"time_s", "energy_j", "layer"} <= set(steps[0])
    assert strict_json((out_dir / "summary.json").read_text()) == strict_json(out)
    assert [r["label"] for r in csv.DictReader((out_dir / "summary.csv").open())] == POLICIES.split(",")
    png = (out_dir / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000


def test_several_presets_compare_within_each(capsys, lengths_csv, tmp_path):
    code, out, _ = run_cli(capsys, "compare", *tiny(lengths_csv), "--policies", "cellular,ebatch",
                           "--hardware", "epur,tpu-v1", "-f", "json", "--out", str(tmp_path / "r"))
    assert code == 0
    rows = strict_json(out)
    assert [(r["hardware"], r["label"]) for r in rows] == [
        ("epur", "cellular"), ("epur", "ebatch"), ("tpu-v1", "cellular"), ("tpu-v1", "ebatch")]
    assert rows[0]["throughput_ratio"] == rows[2]["throughput_ratio"] == 1.0
    assert rows[1]["energy_per_request_j"] != rows[3]["energy_per_request_j"]
    assert (tmp_path / "r" / "epur" / "compare.png").is_file()
    assert (tmp_path / "r" / "tpu-v1" / "summary.json").is_file()


def test_shipped_dataset_with_poisson_arrivals_is_deterministic(capsys):
    argv = ["compare", "--model", "tiny-bilstm", "--requests", "20", "--arrival", "poisson", "--rate", "2000",
            "--policies", "padding,ebatch", "--seed", "3", "-f", "json"]
    code, first, _ = run_cli(capsys, *argv)
    assert code == 0
    _, second, _ = run_cli(capsys, *argv)
    assert first == second
    rows = strict_json(first)
    assert rows[0]["workload"] == "librispeech-test-clean" and rows[0]["requests"] == 20


def test_gamma_arrivals_with_their_cv(capsys):
    argv = ["compare", "--model", "tiny-bilstm", "--requests", "200", "--arrival", "gamma", "--rate", "2000",
            "--policies", "padding,ebatch", "--seed", "3"]
    code, bursty, _ = run_cli(capsys, *argv, "-f", "json", "--cv", "4")
    assert code == 0
    _, smooth, _ = run_cli(capsys, *argv, "-f", "json", "--cv", "0.25")
    # the same requests, sent in bursts or evenly: bursts wait longer in the queue
    assert strict_json(bursty)[0]["latency_p99_s"] > strict_json(smooth)[0]["latency_p99_s"]
    _, table, _ = run_cli(capsys, *argv, "--cv", "4")
    assert "arrival gamma (cv 4)" in " ".join(table.split())


# ---- info commands ----------------------------------------------------------------------------------------


def test_models_lists_the_zoo_with_parameter_counts(capsys):
    code, out, _ = run_cli(capsys, "models", "-f", "json")
    assert code == 0
    rows = {r["name"]: r for r in strict_json(out)}
    assert set(rows) == set(ZOO)
    assert rows["eesen"]["params"] == ZOO["eesen"].params and rows["eesen"]["layers"] == 5
    assert rows["gnmt-enc"]["bidirectional"] == "layers 1"
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "deepspeech2" in out


def test_hardware_lists_presets_and_shows_a_user_file(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "hardware", "-f", "json")
    assert code == 0
    rows = {r["name"]: r for r in strict_json(out)}
    assert set(rows) == {"epur", "tpu-v1", "h200"}
    assert "notify_latency_s" in rows["tpu-v1"]["assumptions"] and "clock_hz" not in rows["tpu-v1"]["assumptions"]
    assert rows["h200"]["kind"] == "host" and rows["h200"]["assumptions"] == ["step_overhead_s"]
    assert "4.8 TB/s" in rows["h200"]["parameters"]["weight_bandwidth_bytes_per_s"]["source"]
    text = (Path(ebatch.__file__).parent / "hardware" / "presets" / "epur.yaml").read_text()
    user = tmp_path / "mine.yaml"
    user.write_text(text.replace("name: epur", "name: mine"))
    code, out, _ = run_cli(capsys, "hardware", str(user))
    assert code == 0 and "mine" in out and "dram_bandwidth_bytes_per_s" in out and "LPDDR4" in out


def test_datasets_and_policies_are_listed(capsys):
    code, out, _ = run_cli(capsys, "datasets", "-f", "json")
    assert code == 0
    rows = {r["name"]: r for r in strict_json(out)}
    assert rows["librispeech-test-clean"]["requests"] == 2620 and rows["mooncake"]["kind"] == "trace"
    code, out, _ = run_cli(capsys, "policies", "-f", "json")
    assert code == 0
    assert {r["name"] for r in strict_json(out)} == set(ebatch.policies.available())


# ---- bad input: one line on stderr, exit code 2 ----------------------------------------------------------


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "neg.csv": "length\n3\n-2\n",
        "zero.csv": "length\n3\n0\n",
        "empty.csv": "length\n",
        "nocol.csv": "words,speaker\n3,a\n",
        "incomplete.yaml": "name: x\nparameters:\n  clock_hz: {value: 1.0e9, source: a}\n",
        "duplicate.yaml": "name: x\nname: y\nparameters: {}\n",
        "malformed.yaml": "name: [unclosed\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in files}


BAD = [
    (["--model", "nope"], "model"),
    (["--policies", "sequential,nope"], "policy"),
    (["--policies", "ebatch:nope=1"], "nope"),
    (["--hardware", "nope"], "hardware"),
    (["--workload", "nope"], "workload"),
    (["--arrival", "nope"], "arrival"),
    (["--arrival", "poisson"], "rate"),
    (["--arrival", "gamma", "--rate", "5", "--cv", "0"], "cv"),
    (["--batch-size", "0"], "batch_size"),
    (["--timesteps", "0"], "timesteps"),
    (["--policies", "ebatch:timesteps=0"], "timesteps"),
    (["--requests", "0"], "requests"),
    (["--workload", "{neg.csv}"], "lengths"),
    (["--workload", "{zero.csv}"], "lengths"),
    (["--workload", "{empty.csv}"], "workload"),
    (["--workload", "{nocol.csv}"], "length"),
    (["--hardware", "{incomplete.yaml}"], "missing parameter"),
    (["--hardware", "{duplicate.yaml}"], "duplicate key"),
    (["--hardware", "{malformed.yaml}"], "YAML"),
    (["--batch-size", "abc"], "--batch-size"),
    (["--bogus"], "--bogus"),
    (["--format", "xml"], "format"),
    (["--policies", "sequential", "--timesteps", "4"], "timesteps"),
]


@pytest.mark.parametrize("command", ["compare", "simulate"])
@pytest.mark.parametrize(("args", "field"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, command, args, field):
    files = _files(tmp_path)
    args = [str(files[a[1:-1]]) if a.startswith("{") else a for a in args]
    if command == "simulate" and "--policies" not in args:
        args = [*args, "--policy", "ebatch"]
    code, out, err = run_cli(capsys, command, "--model", "tiny-lstm", "--requests", "3", *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    assert field in lines[0]


def test_unknown_command_and_bad_preset_file_in_hardware_exit_2(capsys, tmp_path):
    files = _files(tmp_path)
    for argv in (["nosuchcommand"], ["hardware", str(files["malformed.yaml"])], ["hardware", "nope"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, argv
