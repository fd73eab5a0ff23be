"""``ModelService``: one served model, what the HTTP layer talks to (NumPy only; no web framework here).

It loads the weights (:func:`load_weights`), builds the policy and executor, starts an
:class:`~ebatch.serve.online.OnlineEngine` with the queue bounds, and holds what the endpoints share:
the metrics, the stream registry and the draining flag. Life cycle::

    service = ModelService(ServeConfig(model="lstm-2x512", backend="torch"))   # engine thread running
    service.start_drain()       # readiness and new requests answer 503 from now on
    service.close()             # finish admitted requests for up to drain_timeout_s, cancel the rest

Raises ``ValueError`` naming the option for a model, policy or bound it cannot serve.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from ebatch import policies
from ebatch.hardware.energy import ENERGY_CHOICES, MeterChoice, choose_meter
from ebatch.model import ZOO, get_model, model_names
from ebatch.runtime.engine import make_executor
from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import RNNWeights
from ebatch.serve.energy import EnergyLedger
from ebatch.serve.online import OnlineEngine

__all__ = ["ServeConfig", "ModelService", "load_weights"]


@dataclass(frozen=True)
class ServeConfig:
    """Every option of ``ebatch serve`` (the CLI's help text describes each)."""

    model: str
    name: str | None = None
    cell: str | None = None
    seed: int = 0
    policy: str = "ebatch"
    policy_params: dict = field(default_factory=dict)
    batch_size: int = 16
    timesteps: int | str = 16
    latency_slo_s: float | None = None
    backend: str = "numpy"
    device: str | None = None  # torch backend: "cpu" (default) or "cuda[:N]"
    threads: int | None = None
    max_queued_requests: int = 1024
    max_queued_cells: int = 1_000_000
    max_request_bytes: int = 16 * 1024 * 1024
    drain_timeout_s: float = 30.0
    max_idle_s: float = 60.0
    max_streams: int = 1024
    energy: str = "auto"
    hardware: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_queued_requests", "max_queued_cells", "max_request_bytes", "max_streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name.replace('_', '-')}: must be an integer >= 1, got {value!r}")
        for name in ("drain_timeout_s", "max_idle_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.replace('_', '-')}: must be a number of seconds > 0, "
                                 f"got {getattr(self, name)}")
        if self.latency_slo_s is not None and self.timesteps != "auto":
            raise ValueError("latency-slo-s: only with --timesteps auto")
        if self.energy not in ENERGY_CHOICES:
            raise ValueError(f"energy: unknown meter {self.energy!r}; choose one of {', '.join(ENERGY_CHOICES)}")

    @property
    def served_name(self) -> str:
        return self.name or (Path(self.model).stem if _is_file(self.model) else self.model)


def _is_file(model: str) -> bool:
    return model.endswith((".safetensors", ".onnx")) or Path(model).is_file()


def load_weights(model: str, cell: str | None = None, seed: int = 0) -> ModelStages:
    """A zoo name (random weights from ``seed``), an ONNX file (needs the ``onnx`` extra), or a safetensors
    file: a whole model saved with its description, or a ``torch.nn.LSTM``/``GRU`` ``state_dict`` with
    ``cell``. Raises ``ValueError`` saying what to give."""
    if _is_file(model) and not Path(model).is_file():
        raise ValueError(f"model: {model!r}: no such file")
    if model.endswith(".onnx"):
        from ebatch.runtime.onnx_import import stages_from_onnx

        return stages_from_onnx(model)
    if _is_file(model):
        from ebatch.runtime.stagefile import load_stages

        return load_stages(model, cell)
    if model not in ZOO:
        raise ValueError(f"model: {model!r} is neither a file nor a zoo model; give a .safetensors or .onnx file "
                         f"or one of {', '.join(model_names())}")
    return ModelStages.random(get_model(model), seed=seed)


def build_policy(config: ServeConfig) -> policies.Policy:
    if config.policy not in policies.available():
        raise ValueError(f"policy: unknown policy {config.policy!r}; choose one of {', '.join(policies.available())}")
    allowed = policies.parameters(config.policy)
    given = {"batch_size": config.batch_size, "timesteps": config.timesteps}
    if config.latency_slo_s is not None:
        given["latency_slo_s"] = config.latency_slo_s
    return policies.get(config.policy, **{k: v for k, v in given.items() if k in allowed} | config.policy_params)


class ModelService:
    """One model served by an online engine, plus what every endpoint shares (see the module docstring).

    ``listener``: the engine's step listener (the server's metrics). The energy meter is chosen from
    ``config.energy`` and ``config.hardware`` (:func:`~ebatch.hardware.energy.choose_meter`); ``energy``
    says which, and why others were passed over.
    """

    def __init__(self, config: ServeConfig, listener=None, weights: RNNWeights | ModelStages | None = None) -> None:
        self.config = config
        self.name = config.served_name
        self.weights = weights if weights is not None else load_weights(config.model, config.cell, config.seed)
        self.model = self.weights.model
        executor = make_executor(self.weights, config.backend, device=config.device, threads=config.threads)
        self.energy: MeterChoice = choose_meter(config.energy, str(getattr(executor, "device", "cpu")),
                                                config.hardware)
        ledger = EnergyLedger(self.energy.meter) if self.energy.meter is not None else None
        self.engine = OnlineEngine(executor, build_policy(config), max_queued_requests=config.max_queued_requests,
                                   max_queued_cells=config.max_queued_cells, listener=listener, energy=ledger)
        self.draining = threading.Event()
        self._closed = False
        self._lock = threading.Lock()

    @property
    def input_size(self) -> int:
        return self.model.layers[0].input_size

    @property
    def output_size(self) -> int:
        return self.model.output_size_of(self.model.num_layers - 1)

    @property
    def streaming(self) -> bool:
        return not self.model.bidirectional

    @property
    def ready(self) -> bool:
        return not self.draining.is_set()

    def start_drain(self) -> None:
        """Stop admitting: readiness and new requests answer 503 from now on."""
        self.draining.set()

    def close(self) -> None:
        """Drain (admitted requests finish for up to ``drain_timeout_s``, the rest are cancelled); idempotent."""
        self.start_drain()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.engine.close(drain_timeout_s=self.config.drain_timeout_s)

    def describe(self) -> dict:
        """What ``GET /v1/models`` says about the model."""
        return {
            "name": self.name, "cell": "+".join(sorted({x.cell for x in self.model.layers})),
            "layers": self.model.num_layers, "hidden_size": max(x.hidden_size for x in self.model.layers),
            "bidirectional": self.model.bidirectional,
            "input_size": self.input_size, "output_size": self.output_size, "streaming": self.streaming,
            "policy": self.engine.policy.name, "policy_params": self.engine.policy.params(),
            "backend": self.engine.executor.name, "energy_source": self.energy.source,
        }
