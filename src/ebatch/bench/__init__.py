"""Serving benchmarks against a live ``ebatch serve``: the open-loop load generator and its reports."""

__all__: list[str] = []
