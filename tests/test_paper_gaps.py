"""The reproduction report's table of what the paper leaves out: its stand-ins follow the configuration and presets."""

from __future__ import annotations

from ebatch.experiments.report.paper_gaps import GAPS, gap_rows, paper_gaps
from ebatch.experiments.study.reproduce_config import ReproduceConfig
from ebatch.hardware import load_preset
from ebatch.model import get_model


def test_paper_gaps_follow_the_configuration_and_presets():
    config = ReproduceConfig(batch_size=32, load_fraction=0.5, presets=("epur",))
    rows = {part: stand_in for part, _, stand_in in gap_rows(config)}
    assert list(rows) == [part for part, _ in GAPS]
    assert "B = 32 slots" in rows["the batch sizes"]
    assert "Poisson at 0.5 x" in rows["the arrival model and load"]
    spec = load_preset("epur")
    assert f"{spec.array_rows}x{spec.array_cols} MACs" in rows["the E-PUR configuration"]
    assumed = sum("assumption" in s.lower() for s in spec.sources.values())
    assert f"{assumed} of its {len(spec.parameter_names())} parameters are assumptions" in rows[
        "the E-PUR configuration"]
    assert rows["the TPU configuration"] == "not run"
    model = get_model("gnmt-enc")
    assert f"`gnmt-enc` ({model.num_layers} LSTM layers" in rows["the networks"]
    section = paper_gaps(config)
    assert section.startswith("## What the paper does not tell us") and "| the batch sizes | not given |" in section
