"""Numbers of experiment results for JSON and for text, with one rule for what is not a number.

The rule: a value is **missing** when it is ``None``, NaN or infinite. A missing value becomes ``None`` in JSON
(:func:`json_safe`; JSON has no NaN) and ``"n/a"`` in text (:func:`number`, :func:`times`, :func:`percent`).
A ratio (:func:`ratio`) is NaN when either side is missing or the base is not positive; a geometric mean
(:func:`geomean`) is NaN when it has no values or any of them is missing or not positive. The study layer and
the report layer both use these, so a number is missing in the same cases in every file and every sentence.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["geomean", "is_number", "json_safe", "number", "percent", "ratio", "times"]


def is_number(value) -> bool:
    """True for a finite int or float (NumPy scalars included); False for ``None``, NaN, infinities, others."""
    if isinstance(value, np.generic):
        value = value.item()
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def json_safe(value):
    """``value`` for strict JSON: NumPy scalars and arrays as Python numbers and lists, tuples as lists, mapping
    keys as strings, and NaN and infinities as ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def ratio(value, base) -> float:
    """``value / base``, or NaN when either is missing or ``base`` is not positive."""
    if not (is_number(value) and is_number(base)) or not base > 0:
        return float("nan")
    return float(value) / float(base)


def geomean(values) -> float:
    """The geometric mean, or NaN for no values or any value missing or not positive."""
    values = list(values)
    if not values or any(not (is_number(v) and v > 0) for v in values):
        return float("nan")
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def number(value, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits (floats), as it is (others), or ``"n/a"`` when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def times(value) -> str:
    """A ratio as ``"2.00x"``, or ``"n/a"`` when missing."""
    return f"{value:.2f}x" if is_number(value) else "n/a"


def percent(value, decimals: int = 0) -> str:
    """A fraction as a percentage, ``0.256 -> "26%"`` (``decimals`` after the point), or ``"n/a"`` when missing."""
    return f"{100 * value:.{decimals}f}%" if is_number(value) else "n/a"
