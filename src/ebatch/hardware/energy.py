"""Energy meters: one interface over a cumulative energy counter, measured where the platform exposes one.

A meter's :meth:`EnergyMeter.read_j` returns joules consumed since an arbitrary origin (only differences
mean anything); ``kind`` says where they come from and ``source`` says it in words:

- ``"rapl"`` (:class:`~ebatch.hardware.rapl.RaplMeter`): the CPU packages' RAPL counters (Linux powercap);
- ``"nvml"`` (:class:`~ebatch.hardware.nvml.NvmlMeter`): an NVIDIA GPU's total-energy counter;
- ``"estimate"`` (:class:`PowerEstimate`): no measurement at all, ``power_w x busy seconds`` from a host
  preset's ``power_w`` (or an assumed 15 W), and labelled so everywhere it is reported.

The caller tells a meter how long the executor was busy (:meth:`EnergyMeter.on_busy`): an estimate books
those seconds, a counter ignores them. :func:`choose_meter` picks one: NVML when the backend runs on CUDA and
NVML works, else RAPL when it is readable, else the estimate; each fallback keeps the reason it was taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ebatch.hardware.host import HostSpec, load_hardware
from ebatch.hardware.meter import EnergyMeter, MeterUnavailable
from ebatch.hardware.nvml import NvmlMeter
from ebatch.hardware.rapl import DEFAULT_ROOT, RaplMeter

__all__ = ["ASSUMED_POWER_W", "ENERGY_CHOICES", "EnergyMeter", "MeterChoice", "MeterUnavailable", "PowerEstimate",
           "choose_meter"]

#: what ``auto`` may choose, and ``off`` (no meter)
ENERGY_CHOICES = ("auto", "rapl", "nvml", "estimate", "off")
#: the estimate's power without a host preset: an assumption (a few busy cores of a server CPU), the same
#: default as ``ebatch calibrate --power-w``
ASSUMED_POWER_W = 15.0


class PowerEstimate(EnergyMeter):
    """``power_w x busy seconds``: an estimate, not a measurement. Idle time costs nothing here (a host
    preset gives one power, the busy one), so the idle energy it reports is 0 by construction."""

    kind = "estimate"

    def __init__(self, power_w: float, origin: str) -> None:
        if not power_w >= 0:
            raise ValueError(f"power_w: must be >= 0 watts, got {power_w}")
        self.power_w = float(power_w)
        self.source = f"estimate ({origin}: {self.power_w:g} W x busy time)"
        self._busy_s = 0.0

    def read_j(self) -> float:
        return self.power_w * self._busy_s

    def on_busy(self, seconds: float) -> None:
        self._busy_s += max(0.0, float(seconds))

    @classmethod
    def from_hardware(cls, hardware: str | Path | None) -> PowerEstimate:
        """From a host preset's ``power_w`` (a shipped name or a YAML file), or :data:`ASSUMED_POWER_W`.
        Raises ``ValueError`` for an accelerator preset: its cost model prices an accelerator, not this host."""
        if hardware is None:
            return cls(ASSUMED_POWER_W, "assumed, no --hardware preset")
        spec = load_hardware(hardware)
        if not isinstance(spec, HostSpec):
            raise ValueError(f"hardware: {hardware} is an accelerator preset; the energy estimate needs a host "
                             "preset (kind: host) with power_w, e.g. h200 or one written by ebatch calibrate")
        return cls(spec.power_w, f"host preset {spec.name}")


@dataclass(frozen=True)
class MeterChoice:
    """The meter chosen (``None`` with ``off``) and, for each one passed over, why."""

    meter: EnergyMeter | None
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return "off" if self.meter is None else self.meter.source


def _on_cuda(device: str | None) -> bool:
    return device is not None and str(device).startswith("cuda")


def choose_meter(energy: str = "auto", device: str | None = None, hardware: str | Path | None = None,
                 rapl_root: str | Path | None = None) -> MeterChoice:
    """The meter for ``energy`` (one of :data:`ENERGY_CHOICES`) on a backend running on ``device``.

    ``auto``: NVML when ``device`` is CUDA and NVML answers, else RAPL when readable, else
    :meth:`PowerEstimate.from_hardware` (``hardware``: a host preset for its ``power_w``). An explicit
    ``rapl`` or ``nvml`` that cannot be read raises ``ValueError`` with the reason; so does an unknown choice.
    ``rapl_root``: the powercap folder (tests give a fake tree).
    """
    if energy not in ENERGY_CHOICES:
        raise ValueError(f"energy: unknown meter {energy!r}; choose one of {', '.join(ENERGY_CHOICES)}")
    root = DEFAULT_ROOT if rapl_root is None else rapl_root
    if energy == "off":
        return MeterChoice(None)
    if energy == "estimate":
        return MeterChoice(PowerEstimate.from_hardware(hardware))
    if energy == "nvml" and not _on_cuda(device):
        raise ValueError(f"energy: nvml measures a GPU but the backend runs on {device or 'cpu'}; "
                         "choose rapl, estimate or auto")
    def open_meter(kind: str) -> EnergyMeter:
        return RaplMeter(root) if kind == "rapl" else NvmlMeter(device)

    if energy != "auto":
        try:
            return MeterChoice(open_meter(energy))
        except MeterUnavailable as exc:
            raise ValueError(f"energy: {exc}") from None
    notes = []
    for kind in ("nvml", "rapl") if _on_cuda(device) else ("rapl",):
        try:
            return MeterChoice(open_meter(kind), tuple(notes))
        except MeterUnavailable as exc:
            notes.append(str(exc))
    return MeterChoice(PowerEstimate.from_hardware(hardware), tuple(notes))
