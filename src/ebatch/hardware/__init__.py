"""Accelerator cost models and their YAML presets."""

from ebatch.hardware.cost import AcceleratorModel, StepCost, gemm_cycles
from ebatch.hardware.preset import HardwareSpec, PresetError, load_preset, preset_names

__all__ = ["AcceleratorModel", "HardwareSpec", "PresetError", "StepCost", "gemm_cycles", "load_preset", "preset_names"]
