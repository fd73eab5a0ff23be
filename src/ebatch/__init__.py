"""ebatch: E-BATCH RNN batching - simulator with accelerator cost models, runtime, experiments."""

from ebatch import policies
from ebatch.hardware import AcceleratorModel, HardwareSpec, StepCost, load_preset
from ebatch.model import Layer, RNNModel, get_model
from ebatch.sim import SimulationResult, Simulator, simulate
from ebatch.step import BatchStep
from ebatch.workload import Workload

__version__ = "0.1.0"

__all__ = [
    "AcceleratorModel", "BatchStep", "HardwareSpec", "Layer", "RNNModel", "SimulationResult", "Simulator",
    "StepCost", "Workload", "get_model", "load_preset", "policies", "simulate",
]
