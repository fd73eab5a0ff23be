"""What a request submitted to the online engine resolves to: a result, or one of the errors below.

:class:`RequestFuture` is the future :meth:`ebatch.serve.online.OnlineEngine.submit` returns;
:class:`StepListener` is the hook through which the HTTP layer's metrics see every executed step.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ebatch.step import BatchStep

__all__ = ["Cancelled", "DeadlineExceeded", "InferenceResult", "Rejected", "RequestFuture", "StepListener"]


class Rejected(Exception):
    """The request was not admitted. ``reason``: ``"input"`` (bad input or arguments: fix the request),
    ``"busy"`` (a full queue, or a deadline the queue cannot meet: retry after ``retry_after_s``) or
    ``"closed"`` (the engine is closing)."""

    def __init__(self, message: str, retry_after_s: float | None = None, reason: str = "busy") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason


class DeadlineExceeded(Exception):
    """The request's deadline passed while it was still queued."""


class Cancelled(Exception):
    """The request was cancelled (:meth:`OnlineEngine.cancel`) or dropped when the engine closed."""


@dataclass(frozen=True)
class InferenceResult:
    """One request's output ``[length, output_size]`` and where its time went (seconds on the clock)."""

    output: np.ndarray
    queue_s: float  # from admission to the first step holding it
    compute_s: float  # from that step's start to the end of the step that completed it
    final_state: tuple | None = None  # with submit(keep_state=True): the state a stream's next chunk continues
    energy_j: float | None = None  # its share of its steps' energy (serve.energy); None without a meter


class StepListener(Protocol):
    """Told about every step the engine ran (metrics); called on the worker thread, so it must be quick."""

    def on_step(self, step: BatchStep, duration_s: float) -> None: ...


class RequestFuture(Future):
    """A :class:`concurrent.futures.Future` that knows its request id (for :meth:`OnlineEngine.cancel`)."""

    request_id: int = -1
