"""Streams: sequences that arrive chunk by chunk, their recurrent state held by the server between chunks.

Each chunk runs as its own request of the online engine whose initial state is the final state of the
stream's previous chunk (:meth:`OnlineEngine.submit` with ``initial_state`` / ``keep_state``), so a
chunked stream's outputs equal the whole sequence's, and the chunks of many streams batch together like
any requests. Chunks of one stream run one at a time, in order (a per-stream lock). A chunk that fails
(refused, past its deadline) leaves the state as it was, so the client may send it again.

A stream idle for more than ``max_idle_s`` is evicted (:meth:`StreamRegistry.evict_idle`, run by the app
every so often); its id is remembered for a while so that its next chunk is told why it is gone. Only
models without a bidirectional layer can stream. Runs on the server's event loop (asyncio); not thread-safe.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ebatch.serve.online import OnlineEngine
from ebatch.serve.outcomes import InferenceResult

__all__ = ["StreamError", "StreamRegistry"]

_FORGOTTEN_IDS = 4096  # evicted ids remembered to explain their eviction


class StreamError(Exception):
    """A chunk that cannot go to its stream; ``status``: 400 (bad id or order), 404 (unknown or evicted
    stream), 409 (refused: the model cannot stream) or 429 (too many open streams)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Stream:
    state: tuple | None = None
    timesteps: int = 0
    last_used_s: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StreamRegistry:
    """Open streams by id, each with its state, for one engine."""

    def __init__(self, engine: OnlineEngine, max_idle_s: float, max_streams: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.max_idle_s, self.max_streams, self.clock = engine, max_idle_s, max_streams, clock
        self._streams: dict[str, _Stream] = {}
        self._evicted: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, stream_id: str) -> None:
        """Start (or restart from a zero state) the stream ``stream_id``."""
        if self.engine.model.bidirectional:
            raise StreamError(f"stream: model {self.engine.model.name!r} has a bidirectional layer, which needs the "
                              "whole sequence before its first output; send each sequence in one request", 409)
        if stream_id not in self._streams and len(self._streams) >= self.max_streams:
            raise StreamError(f"stream: {len(self._streams)} streams open (--max-streams); end one or retry later",
                              429)
        self._evicted.pop(stream_id, None)
        self._streams[stream_id] = _Stream(last_used_s=self.clock())

    def close(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)

    async def append(self, stream_id: str, x: np.ndarray, deadline_s: float | None = None) -> InferenceResult:
        """Run chunk ``x`` ``[length, features]`` as the continuation of stream ``stream_id``.

        Raises :class:`StreamError`, or what the engine's future raises (``Rejected``, ...)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamError(self._gone(stream_id), 404)
        async with stream.lock:
            stream.last_used_s = self.clock()
            future = self.engine.submit(x, deadline_s=deadline_s, initial_state=stream.state, keep_state=True)
            try:
                result = await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                self.engine.cancel(future)
                raise
            if self._streams.get(stream_id) is stream:  # not evicted or restarted meanwhile
                stream.state = result.final_state
                stream.timesteps += len(result.output)
                stream.last_used_s = self.clock()
            return result

    def evict_idle(self) -> list[str]:
        """Drop streams idle for more than ``max_idle_s`` (none with a chunk running); returns their ids."""
        now = self.clock()
        gone = [k for k, s in self._streams.items() if not s.lock.locked() and now - s.last_used_s > self.max_idle_s]
        for stream_id in gone:
            del self._streams[stream_id]
            self._evicted[stream_id] = now
            if len(self._evicted) > _FORGOTTEN_IDS:
                self._evicted.popitem(last=False)
        return gone

    def idle_message(self) -> str:
        return f"stream: idle for more than max_idle_s={self.max_idle_s:g} s; evicted, its state is gone"

    def _gone(self, stream_id: str) -> str:
        if stream_id in self._evicted:
            return f"stream {stream_id!r}: idle for more than max_idle_s={self.max_idle_s:g} s, evicted with its " \
                   "state; start it again with sequence_start=true"
        return f"stream {stream_id!r}: not open (never started, or already ended); send its first chunk with " \
               "sequence_start=true"

