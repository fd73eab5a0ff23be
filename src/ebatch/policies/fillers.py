"""How E-BATCH fills a window's B slots: streaming slots, or whole sequences packed first fit.

Both fillers keep a FIFO queue of the request ids ready for them and form one :class:`Window` at a time
(``form(t, lengths)``; ``None`` when there is nothing to run). :class:`ebatch.policies.auto.AutoTimesteps`
chooses ``t`` through the same interface (``queue``, :meth:`in_flight`, ``packs``), whichever filler it is.

- :class:`StreamSlots`: every slot holds the rest of its current sequence, then queued sequences back to
  back (state reset at each start), until ``t`` columns are full or the queue is empty; a sequence that
  does not fit is split and carries its state into the next window. A backward filler walks every
  sequence from its end: its window positions are ``length - 1 - k`` for the k-th cell processed.
- :class:`PackedQueue`: whole sequences only (a bidirectional model evaluated window by window); first fit
  in FIFO order over the oldest ``lookahead`` queued, in a window of ``max(t, longest of the B oldest)``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ebatch.policies.window import Window

__all__ = ["PackedQueue", "StreamSlots"]

_EMPTY = np.zeros(0, dtype=np.int64)


class StreamSlots:
    """B streaming slots fed from a FIFO queue (see the module docstring). ``backward``: walk from the end."""

    packs = False

    def __init__(self, slots: int, backward: bool = False, lookahead: int | None = None) -> None:
        self.slots = slots
        self.backward = backward
        self.lookahead = lookahead or 4 * slots  # how far down the queue timesteps="auto" looks
        self.queue: deque[int] = deque()
        self.queued_cells = 0  # time-steps of the queued sequences, kept with the queue
        self.request = np.full(slots, -1, dtype=np.int64)  # the sequence each slot carries, or -1
        self.position = np.zeros(slots, dtype=np.int64)  # cells of it done (in processing order)
        self.carrying = 0  # slots carrying a sequence into the next window
        self._cells: tuple[int, int] | None = None  # (t, window_cells(t)) until the state changes

    def enqueue(self, ids, lengths: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        self.queue.extend(ids.tolist())
        self.queued_cells += int(lengths[ids].sum())
        self._cells = None

    def drop(self, ids: np.ndarray, lengths) -> None:
        """Forget requests ``ids``: out of the queue, and out of the slots carrying them."""
        gone = set(ids.tolist())
        kept = [r for r in self.queue if r not in gone]
        if len(kept) != len(self.queue):
            self.queued_cells -= int(lengths[[r for r in self.queue if r in gone]].sum())
            self.queue = deque(kept)
        self.request[np.isin(self.request, ids)] = -1
        self.carrying = int(np.count_nonzero(self.request >= 0))
        self._cells = None

    def in_flight(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids of the sequences the slots carry into the next window, and how many cells of each are done."""
        busy = self.request >= 0
        return self.request[busy], self.position[busy]

    def has_work(self) -> bool:
        return bool(self.queue) or self.carrying > 0

    def window_cells(self, t: int, lengths: np.ndarray) -> int:
        """Useful cells a window of ``t`` columns formed now would hold, as :meth:`form` would fill it."""
        if self._cells is not None and self._cells[0] == t:
            return self._cells[1]
        cells = self._count_cells(t, lengths)
        self._cells = (t, cells)
        return cells

    def _count_cells(self, t: int, lengths: np.ndarray) -> int:
        busy = self.request >= 0
        room = np.full(self.slots, t, dtype=np.int64)
        carried_n = np.minimum(lengths[self.request[busy]] - self.position[busy], t)
        room[busy] -= carried_n
        room[busy] *= carried_n < t  # a slot whose sequence goes on past this window has no room
        useful = int(carried_n.sum())
        if not self.queue:
            return useful
        queue = iter(self.queue)
        for free in room[room > 0].tolist():  # queued sequences fill the rooms back to back, in slot order
            for request in queue:
                n = min(free, int(lengths[request]))
                useful += n
                free -= n
                if free == 0:
                    break
            else:
                return useful  # the queue ran out
        return useful

    def oldest(self) -> int:
        """The lowest request id held or queued (ids increase in arrival order); -1 when there is none."""
        ids, _ = self.in_flight()
        candidates = ids.tolist()
        if self.queue:
            candidates.append(min(self.queue))
        return min(candidates) if candidates else -1

    def form(self, t: int, lengths: np.ndarray) -> Window | None:
        self._cells = None
        window = self._fill(t, lengths)
        self.carrying = int(np.count_nonzero(self.request >= 0))
        return window

    def _fill(self, t: int, lengths: np.ndarray) -> Window | None:
        current, position = self.request, self.position
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
            used = np.zeros(self.slots, dtype=np.int64)
            used[slots] = carried_n
            for slot in free.tolist():
                col = int(used[slot])
                while col < t and queue:
                    request = queue.popleft()
                    length = int(lengths[request])
                    self.queued_cells -= length
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
            # only carried sequences: one segment per slot, in slot order
            return self._window(int(carried_n.max()), slots, np.zeros(slots.size, dtype=np.int64), carried,
                                carried_start, carried_n, np.zeros(slots.size, dtype=bool),
                                carried[carried_done], lengths)
        fresh = len(new_rows)
        requests = np.concatenate([carried, np.array(new_requests, dtype=np.int64)])
        seg_lengths = np.concatenate([carried_n, np.array(new_lengths, dtype=np.int64)])
        rows = np.concatenate([slots, np.array(new_rows, dtype=np.int64)])
        cols = np.concatenate([np.zeros(slots.size, dtype=np.int64), np.array(new_cols, dtype=np.int64)])
        resets = np.concatenate([np.zeros(slots.size, dtype=bool), np.ones(fresh, dtype=bool)])
        completes = np.concatenate([carried_done, seg_lengths[slots.size :] == lengths[requests[slots.size :]]])
        order = np.lexsort((cols, rows))  # segments by slot, then column, as they fill the window
        requests, seg_lengths, rows, cols = requests[order], seg_lengths[order], rows[order], cols[order]
        starts = np.concatenate([carried_start, np.zeros(fresh, dtype=np.int64)])[order]
        return self._window(int((cols + seg_lengths).max()), rows, cols, requests, starts, seg_lengths,
                            resets[order], requests[completes[order]], lengths)

    def _window(self, width, rows, cols, requests, done, seg_lengths, resets, completes, lengths) -> Window:
        # positions: k-th cell processed is position k forward, length - 1 - k backward
        starts = lengths[requests] - 1 - done if self.backward else done
        return Window(width=width, slots=self.slots, rows=rows, cols=cols, requests=requests, starts=starts,
                      lengths=seg_lengths, resets=resets, completes=completes, mirrored=False)


class PackedQueue:
    """Whole sequences packed first fit into B slots per window (see the module docstring)."""

    packs = True

    def __init__(self, slots: int, lookahead: int | None = None) -> None:
        self.slots = slots
        self.lookahead = lookahead or 4 * slots
        self.queue: deque[int] = deque()

    def enqueue(self, ids, lengths: np.ndarray) -> None:
        self.queue.extend(np.asarray(ids, dtype=np.int64).tolist())

    def drop(self, ids: np.ndarray, lengths) -> None:
        gone = set(ids.tolist())
        self.queue = deque(r for r in self.queue if r not in gone)

    def in_flight(self) -> tuple[np.ndarray, np.ndarray]:
        return _EMPTY, _EMPTY  # a packed window completes every sequence it holds

    def has_work(self) -> bool:
        return bool(self.queue)

    def form(self, t: int, lengths: np.ndarray) -> Window | None:
        if not self.queue:
            return None
        b = self.slots
        candidates = [self.queue[i] for i in range(min(len(self.queue), max(self.lookahead, b)))]
        cand_lengths = lengths[candidates]
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
        self.queue = deque(r for r in self.queue if r not in taken)
        requests = np.array(chosen, dtype=np.int64)
        n = requests.size
        return Window(
            width=int(used.max()),
            slots=b,
            rows=np.array(rows),
            cols=np.array(cols),
            requests=requests,
            starts=np.zeros(n, dtype=np.int64),
            lengths=lengths[requests],
            resets=np.ones(n, dtype=bool),
            completes=requests,
        )
