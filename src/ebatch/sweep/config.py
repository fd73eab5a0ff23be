"""One run of a sweep as a typed, frozen, validated configuration, its hash, and the single-run path.

Life cycle::

    work = WorkloadConfig("librispeech-test-clean", requests=200, arrival="poisson", rate_rps=40.0, seed=0)
    config = RunConfig("eesen", "epur", work, "ebatch", {"batch_size": 32},
                       hardware_overrides={"weight_buffer_bytes": 2097152})
    config.policy_params        # every parameter of the policy, defaults filled in: (("batch_size", 32), ...)
    config.config_hash          # 16 hex digits: the configuration, the preset after overrides, ebatch's version
    summary = simulate_config(config)   # SimulationResult.summary() of the run, as ebatch.simulate gives it

A config is checked when it is built (``ValueError`` naming the field: an unknown model, preset, policy,
policy parameter or hardware field, a wrong type, a workload that does not load), so a list of configs
can be handed to workers knowing every one of them runs. Two configs that run the same simulation (a
parameter given at its default or left out) are equal and share a hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import ebatch
from ebatch import policies
from ebatch.hardware import HardwareSpec
from ebatch.hardware.host import HostSpec, cost_model, load_hardware
from ebatch.model import get_model
from ebatch.sim import simulate
from ebatch.workload import DATASETS, Workload

__all__ = ["RunConfig", "WorkloadConfig", "hardware_fields", "simulate_config"]


@dataclass(frozen=True)
class WorkloadConfig:
    """The requests of a run: a shipped data set by name or a CSV path, drawn and timed as ``ebatch compare``
    does (``--requests``, ``--arrival``, ``--rate``, ``--cv``, ``--seed``, ``--frame-rate-hz``,
    ``--subword-factor``); ``cv`` (the gaps' coefficient of variation) is for gamma arrivals only.

    ``requests=None`` takes every request of the set. Raises ``ValueError`` when the workload does not load.
    """

    dataset: str
    requests: int | None = None
    arrival: str = "offline"
    rate_rps: float | None = None
    seed: int = 0
    frame_rate_hz: float | None = None
    subword_factor: float | None = None
    cv: float | None = None

    def __post_init__(self) -> None:
        _check_type("workload.dataset", self.dataset, str)
        _check_type("workload.arrival", self.arrival, str)
        _check_type("workload.seed", self.seed, int)
        for name in ("requests", "rate_rps", "frame_rate_hz", "subword_factor", "cv"):
            value = getattr(self, name)
            if value is not None:
                _check_type(f"workload.{name}", value, int if name == "requests" else float)
        self.load()  # cached: a list of configs sharing a workload loads it once

    def load(self) -> Workload:
        """The workload (the same object for equal configs, within a process)."""
        return _load_workload(self)

    def fingerprint(self) -> dict:
        """What the workload's hash depends on: its fields, and a CSV file's contents rather than its path."""
        document = dataclasses.asdict(self)
        if self.cv is None:  # runs without one keep the hash they had before the field existed
            del document["cv"]
        path = Path(self.dataset)
        if self.dataset not in DATASETS:  # a CSV file (it loaded, so it exists)
            document["dataset"] = {"csv": path.name, "sha256": _file_digest(str(path.resolve()))}
        return document


@lru_cache(maxsize=64)
def _load_workload(config: WorkloadConfig) -> Workload:
    if config.requests is not None and config.requests < 1:
        raise ValueError(f"workload.requests: must be >= 1, got {config.requests}")
    kwargs = {"n": config.requests, "arrival": config.arrival, "rate_rps": config.rate_rps, "seed": config.seed}
    if config.cv is not None and config.arrival != "gamma":
        raise ValueError(f"workload.cv: only gamma arrivals take a cv, and arrival is {config.arrival!r}")
    for name in ("frame_rate_hz", "subword_factor", "cv"):
        if getattr(config, name) is not None:
            kwargs[name] = getattr(config, name)
    try:
        return Workload.load(config.dataset, **kwargs)
    except ValueError as exc:
        message = str(exc).replace("rate:", "rate_rps:", 1)
        raise ValueError(message if message.startswith("workload") else f"workload.{message}") from None


@lru_cache(maxsize=64)
def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=64)
def _preset(name_or_path: str) -> HardwareSpec | HostSpec:
    return load_hardware(name_or_path)


def hardware_fields(name_or_path: str) -> list[str]:
    """The parameters a ``hardware.<field>`` override may name for this preset (accelerator or host)."""
    return _preset(name_or_path).parameter_names()


def _check_type(name: str, value, kind: type) -> None:
    if kind is bool:
        ok, wanted = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif kind is float:
        ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        ok, wanted = isinstance(value, kind), f"a {kind.__name__}"
    if not ok:
        raise ValueError(f"{name}: must be {wanted}, got {value!r}")


def _override(spec: HardwareSpec | HostSpec, overrides: tuple) -> HardwareSpec | HostSpec:
    if not overrides:
        return spec
    if isinstance(spec, HardwareSpec):
        return spec.replace(**dict(overrides))
    for name, value in overrides:
        if value < 0:
            raise ValueError(f"hardware.{name}: must be >= 0, got {value}")
    return dataclasses.replace(spec, **dict(overrides))


def _normal_override(spec: HardwareSpec | HostSpec, name: str, value):
    """``value`` checked and typed as the preset's field ``name`` is declared (int, bool, else float)."""
    if name not in spec.parameter_names():
        raise ValueError(f"hardware.{name}: {spec.name} has no parameter {name}; "
                         f"choose one of {', '.join(spec.parameter_names())}")
    annotation = {f.name: f.type for f in dataclasses.fields(spec)}[name]
    declared = annotation if isinstance(annotation, str) else annotation.__name__  # "int", "bool" or "float"
    kind = {"int": int, "bool": bool}.get(declared, float)
    _check_type(f"hardware.{name}", value, kind)
    return kind(value)


@dataclass(frozen=True)
class RunConfig:
    """One simulation: zoo ``model``, ``hardware`` preset (name or YAML path) with ``hardware_overrides``,
    ``workload``, and ``policy`` with ``policy_params``.

    ``policy_params`` and ``hardware_overrides`` may be given as mappings; they are stored as tuples of
    ``(name, value)`` pairs: every parameter of the policy in its declared order (defaults filled in), and
    the overrides sorted by name. Raises ``ValueError`` naming the field for anything unknown or mistyped.
    """

    model: str
    hardware: str
    workload: WorkloadConfig
    policy: str
    policy_params: Mapping | tuple = ()
    hardware_overrides: Mapping | tuple = ()

    def __post_init__(self) -> None:
        for name in ("model", "hardware", "policy"):
            _check_type(name, getattr(self, name), str)
        get_model(self.model)
        if not isinstance(self.workload, WorkloadConfig):
            raise ValueError(f"workload: must be a WorkloadConfig, got {type(self.workload).__name__}")
        spec = _preset(self.hardware)
        overrides = tuple(sorted((str(k), _normal_override(spec, str(k), v))
                                 for k, v in dict(self.hardware_overrides).items()))
        _override(spec, overrides)  # values in range
        try:
            built = policies.get(self.policy, **dict(self.policy_params))
        except ValueError as exc:
            raise ValueError(str(exc) if str(exc).startswith("policy") else f"policy {self.policy}: {exc}") from None
        object.__setattr__(self, "hardware_overrides", overrides)
        object.__setattr__(self, "policy_params", tuple(built.params().items()))

    def hardware_spec(self) -> HardwareSpec | HostSpec:
        """The preset with the overrides applied."""
        return _override(_preset(self.hardware), self.hardware_overrides)

    @cached_property
    def config_hash(self) -> str:
        """16 hex digits of SHA-256 over the model's layers, the preset's parameters after overrides, the
        workload (a CSV by its contents), the policy with every parameter, and ebatch's version."""
        spec = self.hardware_spec()
        document = {
            "ebatch": ebatch.__version__,
            "model": [self.model, repr(get_model(self.model).layers)],
            "hardware": {"kind": type(spec).__name__, "name": spec.name,
                         **{n: getattr(spec, n) for n in spec.parameter_names()}},
            "workload": self.workload.fingerprint(),
            "policy": [self.policy, dict(self.policy_params)],
        }
        text = json.dumps(document, sort_keys=True, default=repr, separators=(",", ":"), allow_nan=True)
        return hashlib.sha256(_floats(text).encode()).hexdigest()[:16]

    def columns(self) -> dict:
        """The configuration as flat columns: ``hardware_<field>`` per override, ``param_<name>`` per policy
        parameter, the workload's fields (``dataset``, ``requests``, ...), ``config_hash``, ``ebatch_version``."""
        work = dataclasses.asdict(self.workload)
        return {
            "model": self.model, "hardware": self.hardware,
            **{f"hardware_{k}": v for k, v in self.hardware_overrides},
            **work, "policy": self.policy, **{f"param_{k}": v for k, v in self.policy_params},
            "config_hash": self.config_hash, "ebatch_version": ebatch.__version__,
        }


def _floats(text: str) -> str:
    """Whole numbers and the same number written as a float hash alike (``2097152`` and ``2097152.0``)."""
    return json.dumps(json.loads(text, parse_int=float), sort_keys=True, separators=(",", ":"))


def simulate_config(config: RunConfig) -> dict:
    """Run ``config`` through :func:`ebatch.simulate` (the single-run path); returns its ``summary()``."""
    model = get_model(config.model)
    backend = cost_model(config.hardware_spec(), model)
    return simulate(model, config.workload.load(), config.policy, backend, **dict(config.policy_params)).summary()
