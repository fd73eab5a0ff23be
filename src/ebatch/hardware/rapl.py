"""``RaplMeter``: the CPU packages' energy from RAPL counters in Linux's powercap sysfs.

Layout the kernel gives (``/sys/class/powercap``): one zone per package, ``intel-rapl:N`` (the same driver
names AMD's zones so; ``amd-rapl:N`` is accepted too), with ``name`` (``package-N``), ``energy_uj`` (a
counter in microjoules) and ``max_energy_range_uj`` (where it wraps to 0). Sub-domains (``intel-rapl:N:M``:
core, uncore, dram) are parts of (or, for dram, beside) their package and are not added; ``psys`` (the
whole platform, packages included) and the MMIO copies (``intel-rapl-mmio:N``) are skipped so nothing is
counted twice. So the meter reports the sum of the package domains: cores, caches and uncore of every
socket, DRAM not included.

Assumptions, stated: a counter wraps at most once between two reads (at 200 W a 262 kJ range wraps every
22 min, and the meter is read at every step); the counters update about every millisecond, so a step much
shorter than that gets a lumpy share; the package counts every process on it, not only this one.
Since Linux 5.10 ``energy_uj`` is readable by root only: the meter then reports that as the reason.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from ebatch.hardware.meter import EnergyMeter, MeterUnavailable

__all__ = ["DEFAULT_ROOT", "RaplMeter"]

DEFAULT_ROOT = Path("/sys/class/powercap")
_PACKAGE_ZONE = re.compile(r"^(intel|amd)-rapl:\d+$")


@dataclass
class _Zone:
    path: Path
    name: str
    range_uj: int
    last_uj: int
    total_uj: int = 0


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise MeterUnavailable(f"RAPL: {path} is not readable (permission denied; since Linux 5.10 only root may "
                               "read energy_uj): run as root or grant read access") from None
    except (OSError, ValueError) as exc:
        raise MeterUnavailable(f"RAPL: cannot read {path} ({exc})") from None


class RaplMeter(EnergyMeter):
    """Sum of the RAPL package domains under ``root`` (see the module docstring). Raises
    :class:`~ebatch.hardware.meter.MeterUnavailable` when there is no package zone or one is unreadable."""

    kind = "rapl"

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        root = Path(root)
        if not root.is_dir():
            raise MeterUnavailable(f"RAPL: {root} does not exist (no powercap interface here: not Linux, a VM "
                                   "without RAPL, or the intel_rapl module not loaded)")
        zones = []
        for path in sorted(root.iterdir()):
            if not _PACKAGE_ZONE.match(path.name):
                continue
            try:
                name = (path / "name").read_text().strip()
            except OSError:
                continue
            if name.startswith("package"):
                zones.append(_Zone(path, name, _read_int(path / "max_energy_range_uj"),
                                   _read_int(path / "energy_uj")))
        if not zones:
            raise MeterUnavailable(f"RAPL: no package zone (intel-rapl:N named package-N) under {root}")
        self._zones = zones
        self._lock = threading.Lock()
        self.source = f"RAPL ({', '.join(z.name for z in zones)})"

    def read_j(self) -> float:
        """Joules since construction: per zone, the counter's increments, one wrap at ``max_energy_range_uj``
        allowed between reads (``raw - last + range`` when the counter went down)."""
        with self._lock:
            for zone in self._zones:
                raw = _read_int(zone.path / "energy_uj")
                delta = raw - zone.last_uj
                if delta < 0:
                    delta += zone.range_uj
                zone.total_uj += delta
                zone.last_uj = raw
            return sum(z.total_uj for z in self._zones) / 1e6
