"""The tornado study on a tiny bounded run: its ratios are those of direct simulate() calls, T is reproduce's tuning,
every bar's span holds the base; the report names the widest bars; the command writes only where asked."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from ebatch.cli import main
from ebatch.experiments.formatting import ratio
from ebatch.experiments.report.tornado import tornado_markdown, write_tornado
from ebatch.experiments.study.reproduce_config import Network, ReproduceConfig, case_workload
from ebatch.experiments.study.tornado import METRICS, Bar, Ratios, TornadoConfig, run_tornado
from ebatch.experiments.study.tornado_ranges import ranges_for
from ebatch.experiments.study.tune import tune
from ebatch.hardware import load_preset
from ebatch.sim import simulate

TINY = TornadoConfig(networks=(Network("gnmt-enc", "wmt22-en-de"),), presets=("tpu-v1",), requests=24)


@pytest.fixture(scope="module")
def tiny():
    return run_tornado(TINY)


def _pair(r: Ratios) -> tuple[float, float]:
    return r.throughput_vs_cellular, r.energy_efficiency_vs_cellular


def _direct(spec, net, timesteps, requests) -> tuple[float, float]:
    work = case_workload(net, ReproduceConfig(requests=requests))
    cellular = simulate(net.model, work, "cellular", spec, batch_size=64).summary()
    ebatch = simulate(net.model, work, "ebatch", spec, batch_size=64, timesteps=timesteps).summary()
    return (ratio(ebatch["throughput_rps"], cellular["throughput_rps"]),
            ratio(ebatch["requests_per_j"], cellular["requests_per_j"]))


def test_tuned_t_is_what_reproduces_tuner_picks_at_the_same_load(tiny):
    net, base = TINY.networks[0], tiny.base["tpu-v1"]
    protocol = TINY.protocol()
    work = case_workload(net, protocol, "poisson", base.load_rps[net.model])
    picked = tune(net.model, "tpu-v1", work, batch_sizes=[protocol.batch_size], objective=protocol.tune_objective)
    assert base.tuned_timesteps[net.model] == picked.best["timesteps"]


def test_base_and_both_ends_equal_direct_simulate_calls(tiny):
    net, base = TINY.networks[0], tiny.base["tpu-v1"]
    t = base.tuned_timesteps[net.model]
    spec = load_preset("tpu-v1")
    assert _pair(base.headline) == pytest.approx(_direct(spec, net, t, TINY.requests))
    bar = next(b for b in tiny.bars if b.parameter == "invocation_overhead_s")
    assert _pair(bar.low) == pytest.approx(_direct(spec.replace(invocation_overhead_s=bar.low_value), net, t, 24))
    assert _pair(bar.high) == pytest.approx(_direct(spec.replace(invocation_overhead_s=bar.high_value), net, t, 24))
    assert bar.high.throughput_vs_cellular != bar.low.throughput_vs_cellular  # 10 us per invocation does move it


def test_every_ranged_parameter_has_a_bar_whose_span_holds_the_base(tiny):
    assert [b.parameter for b in tiny.bars] == [r.parameter for r in ranges_for("tpu-v1")]
    for b in tiny.bars:
        for m in METRICS:
            low, high = b.span(m)
            assert low <= getattr(b.base, m) <= high
            assert b.swing(m) == pytest.approx(high - low)
    double = next(b for b in tiny.bars if b.parameter == "weights_double_buffered")
    assert double.high == double.base  # the preset's own value reuses the base runs
    widths = [b.widest for b in tiny.bars_by_swing()]
    assert widths == sorted(widths, reverse=True)
    json.dumps(tiny.to_json(), allow_nan=False)


def _bar(parameter: str, low: float, high: float, base: float = 2.0) -> Bar:
    return Bar("epur", parameter, "assumption: x", "a reason", 1.0, 0.5, 2.0, Ratios(base, base), Ratios(low, low),
               Ratios(high, high))


def test_report_names_the_three_widest_bars_in_order_and_says_where_the_paper_sits(tiny):
    bars = (_bar("static_power_w", 1.9, 2.1), _bar("clock_hz", 1.0, 4.0), _bar("mac_energy_j", 2.0, 2.0),
            _bar("array_rows", 0.8, 2.2), _bar("array_cols", 1.5, 2.5))
    result = replace(tiny, base={"epur": replace(tiny.base["tpu-v1"], preset="epur")}, bars=bars)
    text = tornado_markdown(result)
    section = text.split("assumptions that move the conclusion most")[1].split("## The ranges")[0]
    named = [line.split("**`")[1].split("`**")[0] for line in section.splitlines() if "**`" in line]
    assert named == ["clock_hz", "array_rows", "array_cols"]
    assert "takes in the paper's 1.8x" in section  # clock_hz spans 1.0x - 4.0x
    assert "E-BATCH falls below cellular (a ratio under 1x) at an end of: `epur` `array_rows`." in section
    assert "`epur` `mac_energy_j`" in section.split("move neither ratio")[1]


def test_write_tornado_writes_only_into_the_given_places(tiny, tmp_path):
    paths = write_tornado(tiny, tmp_path / "out", doc=tmp_path / "docs" / "tornado.md")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tornado.csv", "tornado.json", "tornado.md",
                                                                   "tornado.png"]
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["tornado.md", "tornado.png"]
    assert "![tornado chart](tornado.png)" in (tmp_path / "docs" / "tornado.md").read_text()
    assert len(paths) == 6


def test_command_prints_without_out_and_refuses_bad_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["tornado", "--requests", "12", "--networks", "gnmt-enc", "--presets", "tpu-v1"])
    assert "invocation_overhead_s" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit) as exc:
        main(["tornado", "--presets", "tpu-v9"])
    assert exc.value.code == 2
    assert "presets: unknown tpu-v9" in capsys.readouterr().err
