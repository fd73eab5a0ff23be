"""``ebatch reproduce`` end to end on a tiny configuration: files, columns, finite ratios, the report."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from importlib import resources

import pandas as pd
import pytest

from ebatch.cli import main
from ebatch.experiments.formatting import geomean
from ebatch.experiments.report.reproduce import write_outputs
from ebatch.experiments.report.reproduce_discussion import discussion
from ebatch.experiments.study.reproduce import run_reproduce
from ebatch.experiments.study.reproduce_config import HEADLINE_KEYS, Network, ReproduceConfig

TINY = ReproduceConfig(
    networks=(Network("tiny-bilstm", "wmt21-en-de"), Network("tiny-lstm", "librispeech-test-clean", 20.0)),
    requests=24,
    batch_size=4,
    sort_window=16,
    curve_fractions=(0.5, 1.0),
    sensitivity_request_counts=(8, 16),
    auto_requests=30,
    auto_extra_networks=(),
)


@pytest.fixture(scope="module")
def tiny_result():
    return run_reproduce(TINY, command="ebatch reproduce --tiny")


def test_geomean():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert math.isnan(geomean([1.0, 0.0]))
    assert math.isnan(geomean([]))


def test_every_case_and_the_headline(tiny_result):
    cases = tiny_result.cases
    assert {(c.network, c.preset) for c in cases} == {
        (n.model, p) for n in TINY.networks for p in ("epur", "tpu-v1")
    }
    for case in cases:
        assert set(case.policies) == {"padding", "padding-sorted", "cellular", "ebatch"}
        for entry in case.policies.values():
            for run in ("offline", "poisson", "trace"):
                assert getattr(entry, run).completed == TINY.requests
        assert case.saturation_policy != "ebatch"
        assert case.load_rps == pytest.approx(TINY.load_fraction * case.saturation_rps)
        assert all(math.isfinite(v) and v > 0 for v in case.ratios.values())
        assert case.tuned_timesteps in [p["timesteps"] for p in case.tune.points]
        assert [p.fraction for p in case.curve] == list(TINY.curve_fractions)
    for preset in ("epur", "tpu-v1"):
        head = tiny_result.headline[preset]
        assert set(head) >= set(HEADLINE_KEYS)
        assert all(math.isfinite(v) and v > 0 for v in head.values())
        # the headline: steady state on the largest backlog; p99 under Poisson load
        steady = [c.backlogs[-1].steady_ratios["throughput_vs_cellular"] for c in cases if c.preset == preset]
        assert head["throughput_vs_cellular"] == pytest.approx(geomean(steady))
        p99 = [c.ratios["p99_latency_vs_cellular"] for c in cases if c.preset == preset]
        assert head["p99_latency_vs_cellular"] == pytest.approx(geomean(p99))
        whole = [c.ratios["throughput_vs_cellular"] for c in cases if c.preset == preset]
        row = next(r for r in tiny_result.convergence if (r.preset, r.backlog_factor, r.window) == (preset, 1, "whole"))
        assert row.ratios["throughput_vs_cellular"] == pytest.approx(geomean(whole))
    # sensitivity: 5 DRAM + 5 buffer + 4 batch-size + 2 request-count variants per preset
    assert len(tiny_result.sensitivity) == 2 * 16
    base = [r for r in tiny_result.sensitivity if r.parameter == "dram_energy_j_per_byte" and r.factor == 1]
    for row in base:  # the 1x variant on the main runs' requests repeats the test set's whole-run ratios
        whole = [c.ratios["throughput_vs_cellular"] for c in cases if c.preset == row.preset]
        assert row.throughput_vs_cellular == pytest.approx(geomean(whole))
    assert all(math.isfinite(r.energy_efficiency_vs_cellular) for r in tiny_result.sensitivity)
    auto = tiny_result.auto_study
    assert len(auto) == 4 and all(r.auto_completed == TINY.auto_requests for r in auto)
    assert all(r.best_fixed_latency_p99_s <= r.latency_slo_s for r in auto)


def test_outputs_written(tiny_result, tmp_path):
    doc = tmp_path / "docs" / "reproduction.md"
    paths = write_outputs(tiny_result, tmp_path / "out", doc=doc)
    names = {p.name for p in paths}
    assert {"reproduction.json", "reproduction.csv", "headline.csv", "latency_vs_load.csv", "sensitivity.csv",
            "auto_study.csv", "convergence.csv", "normalised.png", "energy_breakdown.png", "latency_vs_load.png",
            "sensitivity.png", "auto_study.png", "reproduction.md"} <= names
    data = json.loads((tmp_path / "out" / "reproduction.json").read_text())
    assert set(data["headline"]) == {"epur", "tpu-v1"}
    assert set(data["headline"]["epur"]) >= set(HEADLINE_KEYS)
    table = pd.read_csv(tmp_path / "out" / "reproduction.csv")
    for column in ("network", "preset", "policy", "throughput_rps", "requests_per_j", "latency_p50_s",
                   "latency_p99_s", "trace_latency_p99_s", "ebatch_throughput_ratio",
                   "ebatch_energy_efficiency_ratio", "ebatch_p99_ratio"):
        assert column in table
    assert len(table) == 4 * 4
    text = doc.read_text()
    assert text.splitlines()[2].startswith("Generated by `ebatch reproduce --tiny`")
    assert "| `epur` |" in text and "3.60x" in text and "2.10x" in text  # the paper's figures beside ours
    assert "dram_energy_j_per_byte" in text and "assumption" in text
    assert "timesteps=\"auto\"" in text
    # the headline's basis and why, energy under load, and the convergence table over every backlog
    assert "steady state (middle 80% of completions) of the largest offline backlog" in text
    assert "Second headline: energy per request under load" in text
    assert "## Convergence of the offline ratios" in text and "4x resampled (96/96)" in text
    assert len(pd.read_csv(tmp_path / "out" / "convergence.csv")) == 2 * 3 * 2  # presets x backlogs x windows


def test_cli_quick_writes_report_and_benchmark(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ReproduceConfig, "quick", classmethod(
        lambda cls, **kw: ReproduceConfig(**{**TINY.__dict__, "sensitivity": False, "auto_study": False,
                                             "quick_run": True, **kw})
    ))
    bench = tmp_path / "benchmarks.md"
    code = 0
    try:
        main(["reproduce", "--quick", "--out", str(tmp_path / "r"), "--benchmarks", str(bench),
              "--doc", str(tmp_path / "doc.md")])
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr().out
    assert code == 0
    assert "E-BATCH, geometric mean" in out and "tpu-v1" in out
    assert (tmp_path / "r" / "reproduction.json").exists() and (tmp_path / "doc.md").exists()
    # a quick run says plainly, in its output and its report, that it is not comparable to the paper
    assert "not comparable to the paper" in " ".join(out.split())
    assert "not comparable to the paper's" in (tmp_path / "doc.md").read_text()
    text = bench.read_text()
    assert "<!-- reproduce:begin -->" in text and "cellular" in text and "reproduce --quick" in text


def test_bad_config_fails_before_running():
    with pytest.raises(ValueError, match="dataset"):
        run_reproduce(ReproduceConfig(networks=(Network("eesen", "no-such-set"),)))
    with pytest.raises(ValueError, match="model"):
        run_reproduce(ReproduceConfig(networks=(Network("no-such-model", "wmt21-en-de"),)))



def test_prose_follows_the_configuration(tiny_result):
    text = discussion(tiny_result)
    assert f"{TINY.load_fraction:g} x the best baseline's" in text
    assert "1 of the 2 networks have a bidirectional layer" in text and "`tiny-bilstm`" in text
    assert "0.5 x the best baseline's" in discussion(replace(tiny_result, config=replace(TINY, load_fraction=0.5)))
    unidirectional = replace(tiny_result, cases=tuple(c for c in tiny_result.cases if c.network == "tiny-lstm"))
    assert "bidirectional layer" not in discussion(unidirectional)


def test_prose_follows_the_presets(tiny_result, tmp_path):
    text = discussion(tiny_result)
    assert "DRAM at 5 pJ/bit" in text and "(2 MiB, assumed, for `epur`)" in text
    assert "the published 28 W static power" in text
    shipped = resources.files("ebatch.hardware").joinpath("presets", "epur.yaml").read_text()
    changed = (shipped.replace("dram_energy_j_per_byte: {value: 4.0e-11", "dram_energy_j_per_byte: {value: 8.0e-11")
               .replace("activation_buffer_bytes: {value: 2097152", "activation_buffer_bytes: {value: 4194304"))
    path = tmp_path / "epur-changed.yaml"  # still named epur, so the cases match it
    path.write_text(changed)
    text = discussion(replace(tiny_result, config=replace(TINY, presets=(str(path), "tpu-v1"))))
    assert "DRAM at 10 pJ/bit" in text and "(4 MiB, assumed, for `epur`)" in text
    assert "5 pJ/bit" not in text and "2 MiB" not in text
