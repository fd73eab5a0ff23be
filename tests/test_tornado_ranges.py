"""The tornado's range table: every assumption of both presets and every modelling choice has a checked range."""

from __future__ import annotations

import dataclasses

import pytest

from ebatch.experiments.study import tornado_ranges
from ebatch.experiments.study.tornado_ranges import (
    MODELLING_CHOICES,
    RANGES,
    assumed_parameters,
    ranges_for,
    varied_parameters,
)
from ebatch.hardware import HardwareSpec, load_preset


def test_every_row_names_a_shipped_preset_and_a_parameter_and_gives_a_reason():
    names = set(HardwareSpec.parameter_names())
    for row in RANGES:
        assert row.preset in ("epur", "tpu-v1"), row
        assert row.parameter in names, row
        assert row.low <= row.high, row
        assert len(row.reason) > 10, row
    keys = [(r.preset, r.parameter) for r in RANGES]
    assert len(keys) == len(set(keys)), "one row per (preset, parameter)"


@pytest.mark.parametrize("preset", ["epur", "tpu-v1"])
def test_ranges_cover_every_assumption_parsed_from_the_preset_and_every_modelling_choice(preset):
    spec = load_preset(preset)
    rows = ranges_for(preset)
    covered = {r.parameter for r in rows}
    marked = {n for n, source in spec.sources.items() if "assumption" in source.lower()}
    assert marked, "the presets do mark assumptions"
    assert marked <= covered
    assert set(MODELLING_CHOICES) <= covered
    assert covered == set(varied_parameters(spec))
    for row in rows:  # each range holds the preset's value, and the preset accepts both ends
        assert row.low <= getattr(spec, row.parameter) <= row.high
        assert getattr(spec.replace(**{row.parameter: row.high}), row.parameter) == row.high


def test_assumptions_are_found_anywhere_in_the_source_not_only_at_its_start():
    spec = load_preset("tpu-v1")
    assert "mac_energy_j" in assumed_parameters(spec)  # "Horowitz ..., 45 nm: ...; assumption: not scaled"
    assert "clock_hz" not in assumed_parameters(spec)  # Jouppi et al., sourced


def test_a_preset_with_an_unranged_assumption_is_refused_naming_it(monkeypatch):
    spec = load_preset("tpu-v1")
    sources = {**spec.sources, "clock_hz": "assumption: a guess"}
    guessed = dataclasses.replace(spec, sources=sources)
    with pytest.raises(ValueError, match="tpu-v1's clock_hz"):
        ranges_for(guessed)
    narrow = tuple(dataclasses.replace(r, high=r.low) if (r.preset, r.parameter) == ("epur", "static_power_w") else r
                   for r in RANGES)
    monkeypatch.setattr(tornado_ranges, "RANGES", narrow)
    with pytest.raises(ValueError, match="static_power_w = 0.3 lies outside"):
        ranges_for("epur")
