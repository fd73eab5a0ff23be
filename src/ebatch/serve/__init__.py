"""Serving: the online engine (a policy and an executor on the wall clock), and ``ebatch serve``'s HTTP
server over it (:mod:`ebatch.serve.app`, needs the ``serve`` extra: fastapi, uvicorn, prometheus-client).

Only the online engine is imported here, so ``import ebatch.serve`` needs NumPy alone.
"""

from ebatch.serve.online import OnlineEngine
from ebatch.serve.outcomes import Cancelled, DeadlineExceeded, InferenceResult, Rejected, RequestFuture

__all__ = ["Cancelled", "DeadlineExceeded", "InferenceResult", "OnlineEngine", "Rejected", "RequestFuture"]
