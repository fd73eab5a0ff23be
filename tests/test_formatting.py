"""The one rule for missing numbers (None, NaN, infinities) across JSON, ratios, means and text."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ebatch.experiments.formatting import geomean, json_safe, number, percent, ratio, times

MISSING = (None, float("nan"), float("inf"), -float("inf"), np.float64("nan"))


def test_json_safe_gives_strict_json():
    value = {"a": (1, np.float32(0.5), float("nan")), 2: [np.int64(3), np.array([1.0, np.inf])], "b": None}
    safe = json_safe(value)
    assert safe == {"a": [1, 0.5, None], "2": [3, [1.0, None]], "b": None}
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


@pytest.mark.parametrize("missing", MISSING)
def test_a_missing_side_makes_a_nan_ratio_and_n_a_text(missing):
    assert math.isnan(ratio(missing, 2.0)) and math.isnan(ratio(2.0, missing))
    assert math.isnan(geomean([2.0, missing]))
    assert json_safe(missing) is None
    assert times(missing) == "n/a" and number(missing) == "n/a" and percent(missing) == "n/a"


def test_ratio_needs_a_positive_base():
    assert ratio(3.0, 2.0) == 1.5 and ratio(np.float64(1.0), np.int64(4)) == 0.25
    assert math.isnan(ratio(1.0, 0.0)) and math.isnan(ratio(1.0, -2.0))


def test_geomean_and_text():
    assert geomean([2.0, 8.0]) == pytest.approx(4.0)
    assert math.isnan(geomean([])) and math.isnan(geomean([1.0, 0.0]))
    assert times(1.234) == "1.23x" and number(0.012345) == "0.0123" and number(7) == "7"
    assert percent(0.256) == "26%" and percent(0.256, 1) == "25.6%"
