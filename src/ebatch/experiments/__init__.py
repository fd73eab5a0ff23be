"""Experiment tooling: comparisons, reproduction of the paper, tuning, benchmarks, reports and plots."""
