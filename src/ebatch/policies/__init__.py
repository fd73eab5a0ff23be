"""Batching policies, registered by name: ``sequential``, ``padding``, ``cellular``, ``ebatch``."""

from ebatch.policies import cellular, ebatch, padding, sequential  # noqa: F401  (registers them)
from ebatch.policies.base import Policy, available, get, parameters, register

__all__ = ["Policy", "available", "get", "parameters", "register"]
