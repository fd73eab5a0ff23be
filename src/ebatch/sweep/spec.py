"""A sweep spec: a strict YAML file naming the axes of a cross product of runs (docs/sweeps.md).

Life cycle::

    spec = load_spec("sweep.yaml")      # SweepSpec; ValueError "<file>: <field>: ..." for anything wrong
    configs = plan(spec)                # ebatch.sweep.plan: the cross product as RunConfigs

Keys (each axis a single value or a list):

- ``model``: zoo names. ``hardware``: preset names or YAML paths (relative to the spec's folder).
- ``workload``: a mapping (or a list of mappings) with ``dataset`` (a shipped name) or ``csv`` (a path),
  and optionally ``requests``, ``arrival``, ``rate_rps``, ``cv`` (gamma arrivals), ``seed``, ``frame_rate_hz``,
  ``subword_factor``;
  a list as a value is one more axis (``seed: [0, 1, 2]``).
- ``policies``: ``ebatch compare``'s ``NAME[:KEY=VALUE...]`` strings.
- ``grid``: ``KEY: [values]``. A policy parameter applies to the policies that take it and do not fix it
  in ``policies``; ``hardware.<field>`` overrides a preset parameter of the presets that have it.

Unknown or duplicate keys, unknown names and wrong types are errors, each one line naming the field.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from ebatch import policies, strict_yaml
from ebatch.experiments.study.compare import parse_policies
from ebatch.model import get_model
from ebatch.sweep.config import WorkloadConfig, hardware_fields

__all__ = ["HARDWARE_PREFIX", "SweepSpec", "load_spec", "parse_spec"]

TOP_KEYS = ("model", "hardware", "workload", "policies", "grid")
WORKLOAD_KEYS = ("dataset", "csv", "requests", "arrival", "rate_rps", "cv", "seed", "frame_rate_hz",
                 "subword_factor")
#: Grid keys that start with this override a hardware preset's parameter.
HARDWARE_PREFIX = "hardware."


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked spec: the values of every axis, in the order written. ``origin`` names the file."""

    models: tuple[str, ...]
    hardware: tuple[str, ...]
    workloads: tuple[WorkloadConfig, ...]
    policies: tuple[tuple[str, tuple[tuple[str, object], ...]], ...]
    grid: tuple[tuple[str, tuple], ...]
    origin: str = "spec"

    def axes(self, hardware: str, policy: str, fixed: dict) -> list[tuple[str, tuple]]:
        """The grid's keys that apply to one preset and one policy with its ``fixed`` parameters, in the
        grid's order: ``hardware.<field>`` when the preset has the field, a policy parameter when the policy
        takes it and does not fix it."""
        fields, accepted = hardware_fields(hardware), policies.parameters(policy)
        def applies(key: str) -> bool:
            if key.startswith(HARDWARE_PREFIX):
                return key[len(HARDWARE_PREFIX):] in fields
            return key in accepted and key not in fixed

        return [(key, values) for key, values in self.grid if applies(key)]


def _values(field: str, value, kind: type | tuple = str) -> tuple:
    """A scalar or a non-empty list of scalars as a tuple; ``ValueError`` naming ``field`` otherwise."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ValueError(f"{field}: empty list; give at least one value")
    for v in values:
        if isinstance(v, (dict, list)) or (kind is not object and not isinstance(v, kind)):
            wanted = "a name" if kind is str else "a single value"
            raise ValueError(f"{field}: each entry must be {wanted} (or a list of them), got {v!r}")
    return tuple(values)


def _path(text: str, base: Path) -> str:
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else base / path)


def _workloads(value, base: Path) -> list[WorkloadConfig]:
    entries = value if isinstance(value, list) else [value]
    if not entries:
        raise ValueError("workload: empty list; give at least one mapping with a dataset or csv")
    configs = []
    for i, entry in enumerate(entries):
        field = "workload" if not isinstance(value, list) else f"workload[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{field}: must be a mapping like {{dataset: librispeech-test-clean, requests: 200}}")
        unknown = [k for k in entry if k not in WORKLOAD_KEYS]
        if unknown:
            raise ValueError(f"{field}.{unknown[0]}: unknown key; allowed: {', '.join(WORKLOAD_KEYS)}")
        if ("dataset" in entry) == ("csv" in entry):
            raise ValueError(f"{field}: give exactly one of dataset (a shipped name) or csv (a file path)")
        axes = {k: _values(f"{field}.{k}", v, object) for k, v in entry.items()}
        if "csv" in axes:
            axes["dataset"] = tuple(_path(str(p), base) for p in axes.pop("csv"))
        keys = list(axes)
        for combo in itertools.product(*axes.values()):
            try:
                configs.append(WorkloadConfig(**dict(zip(keys, combo))))
            except ValueError as exc:
                raise ValueError(str(exc).replace("workload", field, 1)) from None
    return configs


def _policies(value) -> list[tuple[str, tuple]]:
    specs = []
    for text in _values("policies", value):
        for name, params in parse_policies(text):
            if name not in policies.available():
                raise ValueError(f"policies: unknown policy {name!r} in {text!r}; "
                                 f"choose one of {', '.join(policies.available())}")
            allowed = policies.parameters(name)
            for key in params:
                if key not in allowed:
                    raise ValueError(f"policies: {name} has no parameter {key!r} (in {text!r}); "
                                     f"allowed: {', '.join(allowed)}")
            specs.append((name, tuple(params.items())))
    return specs


def _grid(value, spec_policies, hardware) -> list[tuple[str, tuple]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ValueError("grid: must be a mapping of KEY: [values], e.g. {timesteps: [8, 32]}")
    grid = []
    for key, values in value.items():
        key = str(key)
        if not isinstance(values, list):
            raise ValueError(f"grid.{key}: must be a list of values, e.g. [8, 32]; got {values!r}")
        values = _values(f"grid.{key}", values, object)
        if key.startswith(HARDWARE_PREFIX):
            name = key[len(HARDWARE_PREFIX):]
            if not any(name in hardware_fields(h) for h in hardware):
                raise ValueError(f"grid.{key}: no preset of the spec ({', '.join(hardware)}) has a parameter "
                                 f"{name!r}; choose one of {', '.join(hardware_fields(hardware[0]))}")
        else:
            takers = [(n, p) for n, p in spec_policies if key in policies.parameters(n)]
            if not takers:
                names = ", ".join(dict.fromkeys(n for n, _ in spec_policies))
                hint = f" (for the preset parameter, write {HARDWARE_PREFIX}{key})" if any(
                    key in hardware_fields(h) for h in hardware) else ""
                raise ValueError(f"grid.{key}: none of the policies ({names}) takes {key}; leave it out or add a "
                                 f"policy that does{hint}")
            if all(key in dict(p) for _, p in takers):
                raise ValueError(f"grid.{key}: every policy that takes {key} fixes it in policies; "
                                 f"drop it there or here")
        grid.append((key, values))
    return grid


def parse_spec(document, origin: str = "spec", base: str | Path = ".") -> SweepSpec:
    """Check a parsed YAML document; ``base`` is the folder relative paths are read from."""
    try:
        if not isinstance(document, dict):
            raise ValueError(f"spec: must be a mapping with the keys {', '.join(TOP_KEYS)}")
        unknown = [str(k) for k in document if k not in TOP_KEYS]
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown key; allowed: {', '.join(TOP_KEYS)}")
        missing = [k for k in TOP_KEYS[:4] if k not in document]
        if missing:
            raise ValueError(f"{missing[0]}: missing; a spec needs {', '.join(TOP_KEYS[:4])} (and optionally grid)")
        models = _values("model", document["model"])
        for name in models:
            get_model(name)
        hardware = tuple(h if "/" not in h and not h.endswith((".yaml", ".yml")) else _path(h, Path(base))
                         for h in _values("hardware", document["hardware"]))
        for name in hardware:
            hardware_fields(name)  # loads (and so checks) the preset
        workloads = _workloads(document["workload"], Path(base))
        spec_policies = _policies(document["policies"])
        grid = _grid(document.get("grid"), spec_policies, hardware)
    except ValueError as exc:
        raise ValueError(f"{origin}: {exc}") from None
    return SweepSpec(models, hardware, tuple(workloads), tuple(spec_policies), tuple(grid), origin)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec file; ``ValueError`` ``"<file>: <field>: ..."`` for a bad one."""
    path = Path(path)
    try:
        document = strict_yaml.load(path.read_text())
    except OSError as exc:
        raise ValueError(f"spec: cannot read {str(path)!r} ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML ({' '.join(str(exc).split())})") from None
    except strict_yaml.DuplicateKeyError as exc:
        raise ValueError(f"{path.name}: {exc.key}: given twice (line {exc.line}); keep one") from None
    return parse_spec(document, path.name, path.parent)
