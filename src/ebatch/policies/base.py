"""The policy interface and the registry of policies by short name.

Life cycle of a policy object, driven by a simulator or an engine::

    policy.start(model)                       # forget all state; bind the model's shapes
    policy.on_arrival(ids, lengths, now_s)    # requests became known (ids increase in arrival order)
    step = policy.next_step(now_s)            # the backend is free: a BatchStep, or None to idle
    done = policy.on_step_done(step)          # the step (or, for a non-fused run, a prefix) ran;
                                              # returns the ids of requests it completed
    dropped = policy.cancel(ids)              # between steps: forget these requests (cancelled, expired)
    policy.wake_time_s()                      # when idle with work queued: the time to ask again, or None

Per-request bookkeeping lives in :class:`~ebatch.policies.ids.IdArray` columns that forget finished
(completed or cancelled) requests, so a policy's memory follows the requests in flight, not the number
ever served.

A policy never sees the hardware's time or energy. A new policy is one new file in this package: it
subclasses :class:`Policy`, implements ``_enqueue``, ``next_step``, ``_step_done`` and ``_cancel``,
declares its parameters in ``__init__`` (keyword-only, validated there),
lists a few parameter sets in ``example_params`` (the invariant tests run every policy with each of
them) and registers itself with ``@register``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from ebatch.model import RNNModel
from ebatch.policies.ids import IdArray
from ebatch.step import BatchStep

__all__ = ["Policy", "available", "check_positive_int", "defaults", "get", "parameters", "register"]

_REGISTRY: dict[str, type[Policy]] = {}


def register(name: str) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: make a policy available to :func:`get` under ``name``."""

    def decorate(cls: type[Policy]) -> type[Policy]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available() -> list[str]:
    return list(_REGISTRY)


def parameters(name: str) -> list[str]:
    """The keyword parameters a registered policy accepts."""
    signature = inspect.signature(_REGISTRY[name].__init__)
    return [p for p in signature.parameters if p != "self"]


def defaults(name: str) -> dict:
    """The default value of each keyword parameter of a registered policy."""
    signature = inspect.signature(_REGISTRY[name].__init__)
    return {p: signature.parameters[p].default for p in parameters(name)}


def get(name: str | Policy, **params) -> Policy:
    """A new policy object by name, e.g. ``get("ebatch", batch_size=32, timesteps=16)``.

    Raises ``ValueError`` naming the unknown policy or parameter and the allowed values.
    """
    if isinstance(name, Policy):
        if params:
            raise ValueError("policy: parameters can only be given with a policy name, not a policy object")
        return name
    if name not in _REGISTRY:
        raise ValueError(f"policy: unknown policy {name!r}; choose one of {', '.join(available())}")
    allowed = parameters(name)
    for key in params:
        if key not in allowed:
            raise ValueError(
                f"policy {name!r}: unknown parameter {key!r}; allowed: {', '.join(allowed) or 'none'}"
            )
    return _REGISTRY[name](**params)


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
    return int(value)


class Policy:
    """Base class: request bookkeeping shared by every policy. Subclasses implement the hooks."""

    name: str = "policy"
    #: parameter sets the test suites run this policy with (small batches and windows, each option used)
    example_params: tuple[dict, ...] = ({},)

    def start(self, model: RNNModel) -> None:
        self.model = model
        self.lengths = IdArray(np.int64)
        self.arrivals_s = IdArray(np.float64)
        self.finished = IdArray(bool)
        self.live_from = 0  # the oldest request not yet finished (completed or cancelled)
        self._columns = [self.lengths, self.arrivals_s, self.finished]

    def track(self, column: IdArray) -> IdArray:
        """Make ``column`` forget finished requests along with the policy's own columns; returns it."""
        self._columns.append(column)
        return column

    def on_arrival(self, ids: np.ndarray, lengths: np.ndarray, now_s: float) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and ids[0] != self.lengths.size:
            raise ValueError(f"policy: request ids must arrive in order; expected {self.lengths.size}")
        self.lengths.append(np.asarray(lengths, dtype=np.int64))
        self.arrivals_s.append(np.full(ids.size, now_s))
        self.finished.append(np.zeros(ids.size, dtype=bool))
        self._enqueue(ids)

    def on_step_done(self, step: BatchStep) -> np.ndarray:
        """The step (or a prefix of a non-fused run) ran; returns the ids of the requests it completed."""
        done = self._step_done(step)
        self._retire(done)
        return done

    def cancel(self, ids) -> np.ndarray:
        """Forget requests (cancelled or expired) between steps; returns the ids that were still live.

        A cancelled request leaves its queue or slot before the next step; every other request's plan
        goes on unchanged. Ids already finished or unknown are ignored.
        """
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        ids = ids[(ids >= self.live_from) & (ids < self.lengths.size)]
        ids = ids[~self.finished[ids]] if ids.size else ids
        if ids.size:
            self._cancel(ids)
            self._retire(ids)
        return ids

    def _retire(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        self.finished[ids] = True
        live, n = self.live_from, self.lengths.size
        if live < n and self.finished[live]:
            span = self.finished[live:n]
            first = int(span.argmin())  # the first unfinished request, if any
            self.live_from = live + (n - live if span[first] else first)
            for column in self._columns:
                column.forget_below(self.live_from)

    def _enqueue(self, ids: np.ndarray) -> None:
        raise NotImplementedError

    def next_step(self, now_s: float) -> BatchStep | None:
        raise NotImplementedError

    def _step_done(self, step: BatchStep) -> np.ndarray:
        raise NotImplementedError

    def _cancel(self, ids: np.ndarray) -> None:
        """Drop live requests ``ids`` from queues, slots and windows (called between steps)."""
        raise NotImplementedError

    def wake_time_s(self) -> float | None:
        return None

    def params(self) -> dict:
        """The policy's parameters, as given to :func:`get`."""
        return {key: getattr(self, key) for key in parameters(self.name)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
