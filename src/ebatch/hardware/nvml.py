"""``NvmlMeter``: an NVIDIA GPU's energy from NVML (``nvidia-ml-py``, the ``energy`` extra).

``nvmlDeviceGetTotalEnergyConsumption`` counts millijoules since the driver was loaded (Volta and newer);
it is a 64-bit counter, so it does not wrap. It covers the whole board and every process on it.

Which GPU: the backend's device ``cuda`` or ``cuda:N`` is CUDA's N-th visible device (0 for ``cuda``).
With ``CUDA_VISIBLE_DEVICES`` set, its N-th entry names the GPU: an index is NVML's index, a ``GPU-...``
UUID is looked up by UUID (a MIG instance has no energy counter of its own and is refused). Without it,
N is taken as NVML's index, which holds when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or all GPUs are alike
(CUDA's default order puts the fastest first, NVML's follows the PCI bus): an assumption.
"""

from __future__ import annotations

import os

from ebatch.hardware.meter import EnergyMeter, MeterUnavailable

__all__ = ["NvmlMeter", "nvml_target"]


def nvml_target(device: str | None) -> str | int:
    """The NVML index (int) or UUID (str) of the backend's CUDA ``device`` (see the module docstring)."""
    text = str(device or "cuda")
    _, _, index_text = text.partition(":")
    if not text.startswith("cuda") or (index_text and not index_text.isdigit()):
        raise MeterUnavailable(f"NVML: device {text!r} is not a CUDA device ('cuda' or 'cuda:N')")
    index = int(index_text or 0)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return index
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if index >= len(entries):
        raise MeterUnavailable(f"NVML: {text} is not among CUDA_VISIBLE_DEVICES={visible!r}")
    entry = entries[index]
    if entry.isdigit():
        return int(entry)
    if entry.startswith("MIG-"):
        raise MeterUnavailable(f"NVML: {entry} is a MIG instance, which has no energy counter of its own")
    return entry


class NvmlMeter(EnergyMeter):
    """Energy of the GPU behind ``device``. Raises :class:`~ebatch.hardware.meter.MeterUnavailable` when
    ``pynvml`` is missing, NVML does not start, or the GPU has no energy counter."""

    kind = "nvml"

    def __init__(self, device: str | None = "cuda") -> None:
        try:
            import pynvml
        except ImportError:
            raise MeterUnavailable("NVML: nvidia-ml-py is not installed: pip install 'ebatch[energy]'") from None
        target = nvml_target(device)
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
            if isinstance(target, int):
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(target)
            else:
                self._handle = pynvml.nvmlDeviceGetHandleByUUID(target)
            name = pynvml.nvmlDeviceGetName(self._handle)
            self._origin_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except pynvml.NVMLError as exc:
            raise MeterUnavailable(f"NVML: {exc} (GPU {target})") from None
        name = name.decode() if isinstance(name, bytes) else str(name)
        self.source = f"NVML (GPU {target}: {name})"

    def read_j(self) -> float:
        """Joules since construction."""
        return (self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._origin_mj) / 1000.0
