"""Benchmarks: the runtime benchmark behind ``ebatch bench`` (wall clock, with torch.nn peers), a cost model's
figures next to measured ones, and the open-loop load generator against a live ``ebatch serve``."""

__all__: list[str] = []
