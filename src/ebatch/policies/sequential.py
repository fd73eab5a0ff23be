"""``sequential``: one request at a time, layer by layer over its whole length (no batching)."""

from __future__ import annotations

from ebatch.policies.base import register
from ebatch.policies.window import Window, WindowPolicy, whole_sequences

__all__ = ["Sequential"]


@register("sequential")
class Sequential(WindowPolicy):
    """Serves queued requests in arrival order, one at a time. No parameters."""

    def __init__(self) -> None:
        pass

    def _form_window(self, now_s: float) -> Window | None:
        if not self.queue:
            return None
        request = self.queue.popleft()
        return whole_sequences([request], self.lengths, width=int(self.lengths[request]), slots=1)
