"""``ebatch bench`` on a tiny model: every row, the policies' and the torch.nn peers', reports energy per
request with its source, and the report's table has the column."""

from __future__ import annotations

import pytest

from ebatch.bench.runtime import BenchConfig, run_bench
from ebatch.bench.runtime_report import markdown


def test_bench_rows_carry_energy_per_request_from_the_chosen_meter():
    pytest.importorskip("torch")
    cfg = BenchConfig(quick=True, models=("tiny-lstm",), backends=("numpy",), timesteps=(4,), requests=4,
                      energy="estimate", hardware="h200")
    rows = run_bench(cfg)
    assert {r["energy_source"] for r in rows} == {"estimate"}
    for r in rows:
        # an estimate: 700 W x the run's busy seconds, over its requests
        assert 0 < r["energy_per_request_j"] <= 700 * r["wall_s"] / r["requests"] * 1.0001
    assert any(r["policy"].startswith("torch.nn") for r in rows)
    assert "energy: estimate (host preset h200: 700 W x busy time)" in cfg.notes
    text = markdown(rows, cfg, "ebatch bench", 1.0)
    assert "| J/request (estimate) |" in text
