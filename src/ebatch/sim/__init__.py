"""The event-driven simulator and its results."""

from ebatch.sim.api import simulate
from ebatch.sim.engine import Backend, Simulator
from ebatch.sim.results import SimulationResult

__all__ = ["Backend", "SimulationResult", "Simulator", "simulate"]
