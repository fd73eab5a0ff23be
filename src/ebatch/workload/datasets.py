"""Real length tables and arrival traces shipped with ebatch (copied from ../shared/data, see SOURCES.md).

Speech sets store utterance durations in seconds; a request's length in frames is
``ceil(duration_s x frame_rate_hz)`` (default 100 frames/s, a 10 ms hop as in EESEN's filterbank front end).
Translation sets store source words; a request's length in subword tokens is
``ceil(words x subword_factor)`` (default 1.3 subwords per word, DESIGN.md section 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

__all__ = ["DATASETS", "TRACES", "Dataset", "dataset_lengths", "trace_arrivals"]

DEFAULT_FRAME_RATE_HZ = 100.0
DEFAULT_SUBWORD_FACTOR = 1.3


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    kind: str  # "speech" (duration_s) or "text" (words)
    description: str


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset("librispeech-test-clean", "librispeech-test-clean.csv", "speech",
                "LibriSpeech test-clean, 2,620 utterances, durations in seconds"),
        Dataset("librispeech-dev-clean", "librispeech-dev-clean.csv", "speech",
                "LibriSpeech dev-clean, 2,703 utterances"),
        Dataset("librispeech-train-clean-100", "librispeech-train-clean-100.csv", "speech",
                "LibriSpeech train-clean-100, 28,539 utterances"),
        Dataset("wmt21-en-de", "wmt21-en-de.csv", "text", "WMT21 newstest2021 En-De English source, 1,002"),
        Dataset("wmt22-en-de", "wmt22-en-de.csv", "text", "WMT22 general test En-De English source, 2,037"),
        Dataset("iwslt15-en-vi", "iwslt15-en-vi.csv", "text", "IWSLT15 En-Vi tst2013 English source, 1,268"),
    ]
}

TRACES: dict[str, str] = {
    "azure-conv": "Azure LLM inference trace 2023, conversation (19,366 requests over 58 min)",
    "azure-code": "Azure LLM inference trace 2023, code (8,819 requests over 57 min, bursty)",
    "mooncake": "Mooncake conversation trace, FAST'25 (12,031 requests, 3 s buckets)",
}


def _choices(names) -> str:
    return ", ".join(sorted(names))


@cache
def _column(file: str) -> np.ndarray:
    with resources.files("ebatch.data").joinpath(file).open() as f:
        return np.loadtxt(f, skiprows=1, dtype=np.float64, ndmin=1)


def dataset_lengths(
    name: str,
    frame_rate_hz: float = DEFAULT_FRAME_RATE_HZ,
    subword_factor: float = DEFAULT_SUBWORD_FACTOR,
) -> np.ndarray:
    """Lengths in time-steps of every request of a shipped data set, in file order."""
    if name not in DATASETS:
        raise ValueError(f"workload: unknown dataset {name!r}; choose one of {_choices(DATASETS)}")
    data = DATASETS[name]
    if data.kind == "speech":
        if frame_rate_hz <= 0:
            raise ValueError(f"frame_rate_hz: must be > 0, got {frame_rate_hz}")
        scale = frame_rate_hz
    else:
        if subword_factor <= 0:
            raise ValueError(f"subword_factor: must be > 0, got {subword_factor}")
        scale = subword_factor
    # round before ceil so 4.905 s x 100 gives 491 frames, not 491 from float noise like 490.50000001
    return np.maximum(1, np.ceil(np.round(_column(data.file) * scale, 6))).astype(np.int64)


def trace_arrivals(name: str) -> np.ndarray:
    """Arrival times (seconds from the first request) of a shipped trace, sorted."""
    if name not in TRACES:
        raise ValueError(f"arrival: unknown trace {name!r}; choose offline, poisson, gamma or one of "
                         f"{_choices(TRACES)}")
    return _column(f"{name}.csv")
