"""Energy meters on fake platforms: a RAPL sysfs tree (packages summed, sub-domains and psys not, one wrap
handled, unreadable files fall back with the reason), a fake pynvml (mJ counter, device mapping), the
estimate from a preset's power, and the chooser's order (NVML on CUDA, then RAPL, then the estimate)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from ebatch.hardware.energy import ASSUMED_POWER_W, MeterUnavailable, PowerEstimate, choose_meter
from ebatch.hardware.nvml import NvmlMeter, nvml_target
from ebatch.hardware.rapl import RaplMeter


def _zone(root: Path, name: str, label: str, energy_uj: int, range_uj: int = 1_000_000) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{range_uj}\n")
    return zone


@pytest.fixture
def rapl_tree(tmp_path) -> Path:
    """Two packages, their core and dram sub-domains (nested and as top-level links), psys and an MMIO copy."""
    root = tmp_path / "powercap"
    root.mkdir()
    (root / "intel-rapl").mkdir()  # the control type: no zone
    p0 = _zone(root, "intel-rapl:0", "package-0", 999_000)  # 1000 uJ short of its range: it wraps
    _zone(p0, "intel-rapl:0:0", "core", 500)
    _zone(root, "intel-rapl:0:1", "dram", 700)
    _zone(root, "intel-rapl:1", "package-1", 10_000, range_uj=50_000_000)
    _zone(root, "intel-rapl:2", "psys", 42_000)
    _zone(root, "intel-rapl-mmio:0", "package-0", 999_000)
    return root


def _set(root: Path, zone: str, energy_uj: int) -> None:
    (root / zone / "energy_uj").write_text(f"{energy_uj}\n")


def test_rapl_sums_packages_only_and_survives_a_wrap(rapl_tree):
    meter = RaplMeter(rapl_tree)
    assert meter.source == "RAPL (package-0, package-1)" and meter.measured
    assert meter.read_j() == 0.0
    _set(rapl_tree, "intel-rapl:0", 3_000)  # wrapped: 1_000 to the range, then 3_000 more
    _set(rapl_tree, "intel-rapl:1", 260_000)
    _set(rapl_tree, "intel-rapl:0:1", 10**9)  # dram, psys and the MMIO copy change: not counted
    _set(rapl_tree, "intel-rapl:2", 10**9)
    _set(rapl_tree, "intel-rapl-mmio:0", 5)
    assert meter.read_j() == pytest.approx((1_000 + 3_000 + 250_000) / 1e6)
    _set(rapl_tree, "intel-rapl:0", 4_000)
    assert meter.read_j() == pytest.approx((1_000 + 3_000 + 250_000 + 1_000) / 1e6)


def test_amd_zones_are_read_like_intel_ones(tmp_path):
    _zone(tmp_path, "amd-rapl:0", "package-0", 100)
    meter = RaplMeter(tmp_path)
    _set(tmp_path, "amd-rapl:0", 2_100)
    assert meter.read_j() == pytest.approx(0.002)


def test_unreadable_rapl_falls_back_to_the_estimate_with_the_reason(rapl_tree, monkeypatch):
    read_text = Path.read_text

    def denied(self, *args, **kwargs):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    choice = choose_meter("auto", "cpu", rapl_root=rapl_tree)
    assert choice.meter.kind == "estimate" and not choice.meter.measured
    assert len(choice.notes) == 1 and "permission denied" in choice.notes[0] and "energy_uj" in choice.notes[0]
    with pytest.raises(ValueError, match="^energy: RAPL: .*energy_uj is not readable"):
        choose_meter("rapl", "cpu", rapl_root=rapl_tree)


def test_no_powercap_tree_and_no_package_zone_are_reported(tmp_path):
    choice = choose_meter("auto", None, rapl_root=tmp_path / "absent")
    assert choice.meter.source == f"estimate (assumed, no --hardware preset: {ASSUMED_POWER_W:g} W x busy time)"
    assert "does not exist" in choice.notes[0]
    _zone(tmp_path, "intel-rapl:0", "psys", 1)
    with pytest.raises(MeterUnavailable, match="no package zone"):
        RaplMeter(tmp_path)


# ---- NVML -------------------------------------------------------------------------------------------------


class _FakeNvml(types.ModuleType):
    """The part of pynvml the meter uses: three GPUs whose counters (mJ) the test advances."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.fail_init = fail_init
        self.energy_mj = {0: 1_000, 1: 5_000_000, 2: 7}
        self.uuids = {"GPU-aaaa": 2}

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetHandleByIndex(self, index):
        if index not in self.energy_mj:
            raise self.NVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return self.uuids[uuid]

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H200" if handle == 1 else "NVIDIA H100"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.energy_mj[handle]


@pytest.fixture
def fake_nvml(monkeypatch):
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return fake


def test_nvml_counts_millijoules_of_the_backends_gpu(fake_nvml, tmp_path):
    choice = choose_meter("auto", "cuda:1", rapl_root=tmp_path)
    meter = choice.meter
    assert meter.kind == "nvml" and meter.source == "NVML (GPU 1: NVIDIA H200)" and choice.notes == ()
    fake_nvml.energy_mj[1] += 2_500
    fake_nvml.energy_mj[0] += 10**6  # another GPU: not this meter's
    assert meter.read_j() == pytest.approx(2.5)


def test_nvml_follows_cuda_visible_devices(fake_nvml, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert nvml_target("cuda") == 2 and nvml_target("cuda:1") == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa")
    assert NvmlMeter("cuda").source == "NVML (GPU GPU-aaaa: NVIDIA H100)"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-1234")
    with pytest.raises(MeterUnavailable, match="MIG instance"):
        NvmlMeter("cuda:0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(MeterUnavailable, match="not among CUDA_VISIBLE_DEVICES"):
        NvmlMeter("cuda:1")


def test_failing_nvml_falls_back_to_rapl_then_nvml_is_refused_on_a_cpu(monkeypatch, rapl_tree):
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml(fail_init=True))
    choice = choose_meter("auto", "cuda", rapl_root=rapl_tree)
    assert choice.meter.kind == "rapl" and "NVML: Driver Not Loaded" in choice.notes[0]
    with pytest.raises(ValueError, match="energy: NVML: Driver Not Loaded"):
        choose_meter("nvml", "cuda")
    with pytest.raises(ValueError, match="energy: nvml measures a GPU but the backend runs on cpu"):
        choose_meter("nvml", "cpu")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert "pip install 'ebatch[energy]'" in choose_meter("auto", "cuda", rapl_root=rapl_tree).notes[0]


# ---- the estimate and the chooser's options ---------------------------------------------------------------


def test_estimate_is_power_times_busy_time_from_a_host_preset():
    meter = PowerEstimate.from_hardware("h200")
    assert meter.source == "estimate (host preset h200: 700 W x busy time)" and not meter.measured
    meter.on_busy(0.5)
    meter.on_busy(0.25)
    assert meter.read_j() == pytest.approx(700 * 0.75)
    assert PowerEstimate.from_hardware(None).power_w == ASSUMED_POWER_W
    with pytest.raises(ValueError, match="hardware: tpu-v1 is an accelerator preset"):
        PowerEstimate.from_hardware("tpu-v1")
    with pytest.raises(ValueError, match="energy: unknown meter 'joulemeter'"):
        choose_meter("joulemeter")
    assert choose_meter("off").meter is None and choose_meter("off").source == "off"
    assert choose_meter("estimate", "cuda", "h200").meter.power_w == 700
