"""The energy meter interface: a cumulative energy counter with a ``kind`` and a ``source`` in words.

Implementations: :class:`~ebatch.hardware.rapl.RaplMeter`, :class:`~ebatch.hardware.nvml.NvmlMeter` and
:class:`~ebatch.hardware.energy.PowerEstimate`; :func:`ebatch.hardware.energy.choose_meter` picks one.
"""

from __future__ import annotations

__all__ = ["EnergyMeter", "MeterUnavailable"]


class MeterUnavailable(RuntimeError):
    """A meter cannot be read here; the message says why (one line) and what would make it work."""


class EnergyMeter:
    """A cumulative energy counter. Subclasses set ``kind`` and ``source`` and implement :meth:`read_j`."""

    kind: str = "estimate"
    source: str = ""

    @property
    def measured(self) -> bool:
        """Whether the joules come from a hardware counter (``False`` for an estimate)."""
        return self.kind != "estimate"

    def read_j(self) -> float:
        """Joules since an arbitrary origin; non-decreasing. Thread-safe."""
        raise NotImplementedError

    def on_busy(self, seconds: float) -> None:
        """The executor was busy for ``seconds`` (a step, or a whole peer run): an estimate books them."""
