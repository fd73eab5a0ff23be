"""Per-request columns indexed by request id, holding only the ids still live.

Request ids increase in arrival order, for ever in a server. A policy keeps per-request values (length,
arrival time, progress) in :class:`IdArray` columns: ``column[ids]`` reads and ``column[ids] = v``
writes with absolute ids, as a NumPy array would, but only ids from :attr:`IdArray.base` on are stored.
:meth:`IdArray.forget_below` drops the finished prefix, so memory follows the live span (oldest
unfinished request to newest), not the number of requests ever served. A column may have leading axes
(``IdArray(shape=(types,))`` is a ``types x ids`` table, indexed ``column[t, ids]``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["IdArray"]


class IdArray:
    """A growable array over request ids ``base .. size - 1`` (ids below ``base`` are forgotten).

    Raises ``IndexError`` for an id below ``base`` (a policy reading a request it already retired).
    """

    def __init__(self, dtype, shape: tuple[int, ...] = (), fill=0) -> None:
        self.fill = fill
        self._data = np.full((*shape, 64), fill, dtype=dtype)
        self.origin = 0  # id of the first stored column
        self.base = 0  # lowest id still valid
        self.size = 0  # one past the highest id appended

    def append(self, values) -> None:
        """Add the values of ids ``size .. size + len(values) - 1`` (along the last axis)."""
        values = np.asarray(values)
        n = values.shape[-1] if values.ndim else 1
        used = self.size - self.origin
        capacity = self._data.shape[-1]
        if used + n > capacity:
            keep = self._data[..., self.base - self.origin : used]
            grown = np.full((*self._data.shape[:-1], max(2 * keep.shape[-1], keep.shape[-1] + n, 64)), self.fill,
                            dtype=self._data.dtype)
            grown[..., : keep.shape[-1]] = keep
            self._data, self.origin = grown, self.base
            used = self.size - self.origin
        self._data[..., used : used + n] = values
        self.size += n

    def forget_below(self, base: int) -> None:
        """Ids below ``base`` are done; their storage is reused once they are half of it."""
        self.base = max(self.base, min(base, self.size))
        dead = self.base - self.origin
        if dead > self._data.shape[-1] // 2:
            live = self.size - self.base
            self._data[..., :live] = self._data[..., dead : dead + live].copy()
            self._data[..., live:] = self.fill
            self.origin = self.base

    def view(self, lo: int) -> np.ndarray:
        """The values of ids ``lo .. size - 1`` as a NumPy view (index it with ``id - lo``), for loops that
        index many times: it stays valid until the next :meth:`append` or :meth:`forget_below`.

        Raises ``IndexError`` when ``lo`` was already retired.
        """
        if lo < self.base:
            raise IndexError(f"request id {lo} was already retired (base {self.base})")
        return self._data[..., lo - self.origin : self.size - self.origin]

    @property
    def stored(self) -> int:
        """Columns allocated (for tests of bounded memory)."""
        return self._data.shape[-1]

    def _key(self, key):
        if type(key) is tuple:
            return (*key[:-1], self._index(key[-1]))
        return (..., self._index(key))

    def _index(self, ids):
        if type(ids) is np.ndarray and ids.dtype == np.int64:  # the common case first
            index = ids - self.origin
            if index.size and index.min() < self.base - self.origin:
                raise IndexError(f"request id {int(ids.min())} was already retired (base {self.base})")
            return index
        if isinstance(ids, slice):
            start = self.base if ids.start is None else ids.start
            stop = self.size if ids.stop is None else ids.stop
            if start < self.base:
                raise IndexError(f"request id {start} was already retired (base {self.base})")
            return slice(start - self.origin, stop - self.origin, ids.step)
        if isinstance(ids, (int, np.integer)):
            if ids < self.base:
                raise IndexError(f"request id {ids} was already retired (base {self.base})")
            return int(ids) - self.origin
        return self._index(np.asarray(ids, dtype=np.int64))

    def __getitem__(self, key):
        return self._data[self._key(key)]

    def __setitem__(self, key, value) -> None:
        self._data[self._key(key)] = value
