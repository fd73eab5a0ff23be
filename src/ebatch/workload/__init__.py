"""Workloads: request lengths (real data sets, CSV files, lists) and arrival times (offline, Poisson, traces)."""

from ebatch.workload.datasets import DATASETS, TRACES, dataset_lengths, trace_arrivals
from ebatch.workload.workload import Workload

__all__ = ["DATASETS", "TRACES", "Workload", "dataset_lengths", "trace_arrivals"]
