"""Serving: the online engine (a policy and an executor on the wall clock)."""

from ebatch.serve.online import Cancelled, DeadlineExceeded, InferenceResult, OnlineEngine, Rejected, RequestFuture

__all__ = ["Cancelled", "DeadlineExceeded", "InferenceResult", "OnlineEngine", "Rejected", "RequestFuture"]
