"""``ebatch``: E-BATCH (Silfa, Arnau, Gonzalez, arXiv 2009.10656), as DESIGN.md section 4 interprets it.

B slots, window of T time-steps. Each window is evaluated layer by layer (weights of a layer loaded
once per window), and the hardware notifies the runtime as soon as a sequence's last cell is done.

- Unidirectional models: slots *stream*. At each window start every slot's window is filled with the
  rest of its current sequence, then queued sequences back to back (state reset at each start), until
  T columns are full or the queue is empty. A sequence spanning windows carries its state. The window
  is as wide as its fullest slot (at most T), so an emptying queue does not compute padding.
- Models with a bidirectional layer: a sequence cannot be split (the backward direction needs its end).
  Each window packs whole sequences into the B slots, first fit in FIFO order over the oldest
  ``lookahead`` queued sequences; the window is ``W = max(T, longest of the B oldest)`` columns, so the
  B oldest always fit, and shorter ones fill the remaining room of each slot. With speech lengths
  (hundreds to thousands of frames) T therefore only acts above the longest of the B oldest: a larger T
  packs more sequences per slot (less padding, fewer weight loads) at the price of longer windows.
"""

from __future__ import annotations

import numpy as np

from ebatch.model import RNNModel
from ebatch.policies.auto import AutoTimesteps, check_timestep_params
from ebatch.policies.base import check_positive_int, register
from ebatch.policies.window import Window, WindowPolicy

__all__ = ["EBatch"]


@register("ebatch")
class EBatch(WindowPolicy):
    notify = True

    def __init__(
        self,
        batch_size: int = 64,
        timesteps: int | str = 16,
        lookahead: int | None = None,
        latency_slo_s: float | None = None,
        min_timesteps: int | None = None,
        max_timesteps: int | None = None,
    ) -> None:
        self.batch_size = check_positive_int("batch_size", batch_size)
        # timesteps="auto": T chosen per window online (ebatch.policies.auto), within the bounds, for the SLO
        self.timesteps, self.latency_slo_s, self.min_timesteps, self.max_timesteps = check_timestep_params(
            timesteps, latency_slo_s, min_timesteps, max_timesteps
        )
        if lookahead is not None:
            lookahead = check_positive_int("lookahead", lookahead)
        self.lookahead = lookahead

    def start(self, model: RNNModel) -> None:
        super().start(model)
        self._slot_request = np.full(self.batch_size, -1, dtype=np.int64)
        self._slot_position = np.zeros(self.batch_size, dtype=np.int64)
        self.auto = None
        if self.timesteps == "auto":
            self.auto = AutoTimesteps(self.latency_slo_s, self.min_timesteps, self.max_timesteps)

    def wake_time_s(self) -> float | None:
        return self.auto.wake_time_s() if self.auto is not None else None

    def _form_window(self, now_s: float) -> Window | None:
        if self.auto is not None:
            return self.auto.form(self, now_s)
        if self.model.bidirectional:
            return self._pack_whole(self.timesteps)
        return self._stream(self.timesteps)

    # ---- unidirectional: streaming slots ------------------------------------------------------------

    def _stream(self, t: int) -> Window | None:
        current, position, lengths = self._slot_request, self._slot_position, self.lengths
        # slots carrying a sequence: the rest of it, up to t columns (numpy over all such slots at once)
        slots = (current >= 0).nonzero()[0]
        carried = current[slots]
        carried_start = position[slots]
        remaining = lengths[carried] - carried_start
        carried_n = np.minimum(remaining, t)
        carried_done = carried_n == remaining
        current[slots[carried_done]] = -1
        position[slots[~carried_done]] = (carried_start + carried_n)[~carried_done]
        # slots with room left take queued sequences back to back, in slot order, while the queue lasts
        new_rows: list[int] = []
        new_cols: list[int] = []
        new_requests: list[int] = []
        new_lengths: list[int] = []
        queue = self.queue
        free = (current < 0).nonzero()[0] if queue else slots[:0]  # empty, or ended in this window
        if free.size:
            used = np.zeros(self.batch_size, dtype=np.int64)
            used[slots] = carried_n
            for slot in free.tolist():
                col = int(used[slot])
                while col < t and queue:
                    request = queue.popleft()
                    length = int(lengths[request])
                    n = min(t - col, length)
                    new_rows.append(slot)
                    new_cols.append(col)
                    new_requests.append(request)
                    new_lengths.append(n)
                    col += n
                    if n != length:
                        current[slot], position[slot] = request, n
                if not queue:
                    break
        if not new_rows:
            if not slots.size:
                return None
            return Window(  # only carried sequences: one segment per slot, in slot order
                width=int(carried_n.max()),
                slots=self.batch_size,
                rows=slots,
                cols=np.zeros(slots.size, dtype=np.int64),
                requests=carried,
                starts=carried_start,
                lengths=carried_n,
                resets=np.zeros(slots.size, dtype=bool),
                completes=carried[carried_done],
            )
        fresh = len(new_rows)
        requests = np.concatenate([carried, np.array(new_requests, dtype=np.int64)])
        seg_lengths = np.concatenate([carried_n, np.array(new_lengths, dtype=np.int64)])
        rows = np.concatenate([slots, np.array(new_rows, dtype=np.int64)])
        cols = np.concatenate([np.zeros(slots.size, dtype=np.int64), np.array(new_cols, dtype=np.int64)])
        resets = np.concatenate([np.zeros(slots.size, dtype=bool), np.ones(fresh, dtype=bool)])
        completes = np.concatenate([carried_done, seg_lengths[slots.size :] == lengths[requests[slots.size :]]])
        order = np.lexsort((cols, rows))  # segments by slot, then column, as they fill the window
        requests, seg_lengths, rows, cols = requests[order], seg_lengths[order], rows[order], cols[order]
        return Window(
            width=int((cols + seg_lengths).max()),
            slots=self.batch_size,
            rows=rows,
            cols=cols,
            requests=requests,
            starts=np.concatenate([carried_start, np.zeros(fresh, dtype=np.int64)])[order],
            lengths=seg_lengths,
            resets=resets[order],
            completes=requests[completes[order]],
        )

    # ---- bidirectional: whole sequences packed per window -------------------------------------------

    def _pack_whole(self, t: int) -> Window | None:
        if not self.queue:
            return None
        b = self.batch_size
        lookahead = self.lookahead or 4 * b
        candidates = [self.queue[i] for i in range(min(len(self.queue), max(lookahead, b)))]
        cand_lengths = self.lengths[candidates]
        width = max(t, int(cand_lengths[:b].max()))
        used = np.zeros(b, dtype=np.int64)
        rows, cols, chosen = [], [], []
        for request, length in zip(candidates, cand_lengths.tolist()):
            fits = np.flatnonzero(used + length <= width)
            if fits.size == 0:
                continue
            slot = int(fits[0])
            rows.append(slot)
            cols.append(int(used[slot]))
            chosen.append(request)
            used[slot] += length
        taken = set(chosen)
        self.queue = type(self.queue)(r for r in self.queue if r not in taken)
        requests = np.array(chosen, dtype=np.int64)
        n = requests.size
        return Window(
            width=int(used.max()),
            slots=b,
            rows=np.array(rows),
            cols=np.array(cols),
            requests=requests,
            starts=np.zeros(n, dtype=np.int64),
            lengths=self.lengths[requests],
            resets=np.ones(n, dtype=bool),
            completes=requests,
        )
