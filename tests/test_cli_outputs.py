"""Commands write files only where asked: run in an empty directory without ``--out`` (and ``--doc``,
``--benchmarks``), each leaves that directory empty."""

from __future__ import annotations

import pytest

from ebatch.cli import main
from ebatch.experiments.study.reproduce_config import Network, ReproduceConfig

TINY_REPRODUCE = ReproduceConfig(
    networks=(Network("tiny-lstm", "librispeech-test-clean", 20.0),), requests=12, batch_size=4, sort_window=8,
    curve_fractions=(1.0,), sensitivity=False, auto_study=False,
)
COMMANDS = [
    ["models"], ["hardware", "epur"], ["datasets"], ["policies"],
    ["simulate", "--model", "tiny-lstm", "--workload", "wmt21-en-de", "--requests", "8"],
    ["compare", "--model", "tiny-lstm", "--workload", "wmt21-en-de", "--requests", "8", "--policies", "padding,ebatch"],
    ["tune", "--model", "tiny-lstm", "--hardware", "epur", "--workload", "wmt21-en-de", "--requests", "8",
     "--batch-sizes", "2", "--timesteps", "2,4"],
    ["reproduce", "--quick"],
    ["calibrate", "--model", "tiny-lstm", "--backend", "numpy", "--repeats", "1"],
]


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code or 0
    return 0


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(ReproduceConfig, "quick", classmethod(lambda cls, **kw: ReproduceConfig(
        **{**TINY_REPRODUCE.__dict__, **kw, "sensitivity": False, "auto_study": False})))
    return work


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_a_command_without_out_writes_nothing(argv, empty_cwd, capsys):
    assert _run(argv) == 0, capsys.readouterr().err
    assert capsys.readouterr().out  # it printed its result instead
    assert sorted(p.name for p in empty_cwd.rglob("*")) == []


def test_bench_without_out_writes_nothing(empty_cwd, capsys):
    pytest.importorskip("torch")
    argv = ["bench", "--quick", "--models", "tiny-lstm", "--requests", "4", "--batch-size", "2", "--timesteps", "2",
            "--backends", "numpy"]
    assert _run(argv) == 0, capsys.readouterr().err
    assert "tiny-lstm" in capsys.readouterr().out
    assert list(empty_cwd.rglob("*")) == []


def test_loadgen_plot_needs_out(empty_cwd, capsys):
    assert _run(["loadgen-plot", "runs.json"]) == 2
    assert "--out" in capsys.readouterr().err
    assert list(empty_cwd.rglob("*")) == []
