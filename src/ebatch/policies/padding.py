"""``padding``: take up to B queued requests, pad them to the longest, run layer by layer.

Every request of the batch completes when the last layer ends (TensorFlow Serving / PyTorch style).
``max_wait_s`` lets a partial batch wait for more arrivals; ``sort_window=k`` picks, among the oldest k
queued requests, the B of most similar length (bucketing): the oldest request is always included, so no
request starves, and the others are the B-1 whose lengths are closest to a contiguous length range
around it.
"""

from __future__ import annotations

import numpy as np

from ebatch.policies.base import check_positive_int, register
from ebatch.policies.window import Window, WindowPolicy, whole_sequences

__all__ = ["Padding"]


@register("padding")
class Padding(WindowPolicy):
    example_params = ({"batch_size": 3}, {"batch_size": 4, "sort_window": 6}, {"batch_size": 2, "max_wait_s": 1e-3})

    def __init__(self, batch_size: int = 64, max_wait_s: float = 0.0, sort_window: int | None = None) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        if not (isinstance(max_wait_s, (int, float)) and max_wait_s >= 0):
            raise ValueError(f"max_wait_s: must be a number of seconds >= 0, got {max_wait_s!r}")
        self.max_wait_s = float(max_wait_s)
        if sort_window is not None:
            sort_window = check_positive_int("sort_window", sort_window)
        self.sort_window = sort_window

    def wake_time_s(self) -> float | None:
        if self.queue and self.max_wait_s > 0:
            return float(self.arrivals_s[self.queue[0]] + self.max_wait_s)
        return None

    def _form_window(self, now_s: float) -> Window | None:
        if not self.queue:
            return None
        b = self.batch_size
        if len(self.queue) < b and now_s < self.arrivals_s[self.queue[0]] + self.max_wait_s:
            return None  # wait for a fuller batch (wake_time_s says until when)
        if self.sort_window is None or len(self.queue) <= b:
            batch = [self.queue.popleft() for _ in range(min(b, len(self.queue)))]
        else:
            batch = self._bucket(b)
        width = int(self.lengths[batch].max())
        return whole_sequences(batch, self.lengths, width=width, slots=len(batch))

    def _bucket(self, b: int) -> list[int]:
        """The oldest request plus the B-1 of the oldest k whose sorted lengths form the tightest range."""
        k = max(self.sort_window, b)
        candidates = np.array([self.queue[i] for i in range(min(k, len(self.queue)))])
        order = np.argsort(self.lengths[candidates], kind="stable")
        sorted_lengths = self.lengths[candidates[order]]
        oldest_rank = int(np.flatnonzero(order == 0)[0])
        # windows [s, s+b) of the sorted list that contain the oldest request
        first = max(0, oldest_rank - b + 1)
        last = min(oldest_rank, candidates.size - b)
        spans = sorted_lengths[first + b - 1 : last + b] - sorted_lengths[first : last + 1]
        s = first + int(np.argmin(spans))
        chosen = set(candidates[order[s : s + b]].tolist())
        batch = [r for r in self.queue if r in chosen][:b]
        self.queue = type(self.queue)(r for r in self.queue if r not in chosen)
        return batch
