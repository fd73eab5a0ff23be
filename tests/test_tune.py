"""The tuner: its T grid, Pareto front and choice on hand-made tables, and the true optimum by brute force."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ebatch
from ebatch.cli import main
from ebatch.experiments.study.tune import choose, pareto_front, timestep_grid, tune


def test_timestep_grid_doubles_up_to_the_longest_sequence():
    assert timestep_grid(1) == [1]
    assert timestep_grid(64) == [1, 2, 4, 8, 16, 32, 64]
    assert timestep_grid(69) == [1, 2, 4, 8, 16, 32, 64, 128]
    with pytest.raises(ValueError, match="longest"):
        timestep_grid(0)


def _table(rows):
    return pd.DataFrame(rows, columns=["batch_size", "timesteps", "latency_p99_s", "energy_per_request_j",
                                       "throughput_rps"])


HAND = _table([
    # B, T, p99, energy, throughput
    (8, 1, 1.0, 9.0, 10.0),   # front: lowest latency
    (8, 2, 2.0, 5.0, 12.0),   # front
    (8, 4, 2.5, 6.0, 11.0),   # dominated by (8, 2)
    (16, 1, 3.0, 3.0, 20.0),  # front
    (16, 2, 4.0, 3.0, 25.0),  # dominated by (16, 1): same energy, higher latency
    (16, 4, 6.0, 1.0, 15.0),  # front: lowest energy
])


def test_pareto_front_by_hand():
    assert pareto_front(HAND).tolist() == [True, True, False, True, False, True]


def test_identical_points_put_one_on_the_front():
    table = _table([(8, 1, 1.0, 1.0, 1.0), (8, 2, 1.0, 1.0, 1.0)])
    assert pareto_front(table).tolist() == [True, False]


def test_choose_by_hand():
    assert choose(HAND, "energy") == (5, True)
    assert choose(HAND, "energy", latency_slo_s=3.5) == (3, True)
    assert choose(HAND, "energy", latency_slo_s=2.2) == (1, True)
    assert choose(HAND, "throughput") == (4, True)
    assert choose(HAND, "throughput", latency_slo_s=2.6) == (1, True)
    # edp: 9, 10, 15, 9, 12, 6 -> (16, 4); under a 3.0 s SLO 9 and 9 tie -> the lower p99, (8, 1)
    assert choose(HAND, "edp") == (5, True)
    assert choose(HAND, "edp", latency_slo_s=3.0) == (0, True)
    # nothing meets 0.5 s: the lowest p99, flagged
    assert choose(HAND, "energy", latency_slo_s=0.5) == (0, False)
    with pytest.raises(ValueError, match="objective"):
        choose(HAND, "speed")


def test_tuner_picks_the_brute_force_optimum():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 30, size=40)
    arrivals = np.cumsum(rng.exponential(0.002, size=40))
    work = ebatch.Workload.from_lengths(lengths, arrivals)
    grid_b, grid_t = [2, 4, 8], [1, 4, 16, 32]
    truth = {}
    for b in grid_b:
        for t in grid_t:
            s = ebatch.simulate("tiny-lstm", work, "ebatch", "epur", batch_size=b, timesteps=t).summary()
            truth[(b, t)] = (s["energy_per_request_j"], s["latency_p99_s"])
    slo = float(np.median([v[1] for v in truth.values()]))
    result = tune("tiny-lstm", "epur", work, batch_sizes=grid_b, timesteps=grid_t, latency_slo_s=slo)
    eligible = {k: v for k, v in truth.items() if v[1] <= slo}
    expected = min(eligible, key=lambda k: (eligible[k][0], eligible[k][1], k[1], k[0]))
    assert (result.best["batch_size"], result.best["timesteps"]) == expected
    assert result.slo_met
    assert len(result.points) == len(grid_b) * len(grid_t)
    # the front holds exactly the points no other point beats on both axes
    for _, row in result.points.iterrows():
        beaten = any(
            (e <= row["energy_per_request_j"] and p <= row["latency_p99_s"])
            and (e < row["energy_per_request_j"] or p < row["latency_p99_s"])
            for e, p in truth.values()
        )
        assert not (row["on_front"] and beaten)


def test_more_slots_give_more_throughput_offline_by_hand():
    # 4 equal sequences queued at 0: one slot runs them one after another, four slots side by side
    work = ebatch.Workload.from_lengths([4, 4, 4, 4])
    result = tune("tiny-lstm", "epur", work, batch_sizes=[1, 4], timesteps=[4], objective="throughput")
    assert (result.best["batch_size"], result.best["timesteps"]) == (4, 4)


def test_tune_writes_files_and_cli(tmp_path, capsys):
    code = 0
    try:
        main(["tune", "--model", "tiny-bilstm", "--hardware", "tpu-v1", "--workload", "wmt21-en-de",
              "--requests", "30", "--rate", "2000", "--batch-sizes", "4,8", "--objective", "edp",
              "--latency-slo-s", "0.5", "--out", str(tmp_path)])
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr().out
    assert code == 0
    assert "Pareto front" in out and "objective edp" in out
    data = json.loads((tmp_path / "tune.json").read_text())
    assert data["best"]["batch_size"] in (4, 8) and data["front"]
    assert (tmp_path / "tune.png").stat().st_size > 0
    longest_t = max(p["timesteps"] for p in data["points"])
    assert len(pd.read_csv(tmp_path / "points.csv")) == 2 * len(timestep_grid(longest_t))


def test_cli_rejects_bad_grid(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["tune", "--model", "tiny-lstm", "--hardware", "epur", "--workload", "wmt21-en-de",
              "--batch-sizes", "8,x"])
    assert exc.value.code == 2
    assert "batch_sizes" in capsys.readouterr().err
