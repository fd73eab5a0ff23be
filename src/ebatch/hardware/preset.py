"""Hardware presets: strictly validated YAML files, every parameter with a value and a source.

A preset file looks like::

    name: tpu-v1
    description: ...
    parameters:
      clock_hz: {value: 700.0e6, source: "Jouppi et al., ISCA 2017, Table 2"}
      ...

Every parameter of :class:`HardwareSpec` must be present, once, except the modelling switches of
:data:`DEFAULTS` (left out, they take today's behaviour); unknown or duplicate keys are errors; a source that
starts with ``assumption`` marks a value we had to assume.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ebatch import strict_yaml

__all__ = ["DEFAULTS", "HardwareSpec", "load_preset", "preset_names", "preset_text", "PresetError"]


class PresetError(ValueError):
    """A malformed, incomplete or unknown hardware preset."""


@dataclass(frozen=True)
class HardwareSpec:
    """A generic accelerator: a weight-stationary MAC array, on-chip buffers, DRAM, static power.

    Two modelling switches (see :mod:`ebatch.hardware.cost`): ``dram_overlap`` in [0, 1], the fraction of the
    shorter of compute and DRAM transfer hidden under the longer (1: max, 0: sum); ``spill_dram_passes``, DRAM
    transfers per byte of working set beyond the activation buffer (2: written once, read once).
    """

    clock_hz: float
    array_rows: int
    array_cols: int
    weights_double_buffered: bool
    bytes_per_weight: float
    bytes_per_activation: float
    bytes_per_accumulator: float
    weight_buffer_bytes: float
    activation_buffer_bytes: float
    dram_bandwidth_bytes_per_s: float
    dram_energy_j_per_byte: float
    sram_energy_j_per_byte: float
    mac_energy_j: float
    static_power_w: float
    timestep_latency_cycles: float
    invocation_overhead_s: float
    notify_latency_s: float
    dram_overlap: float = 1.0
    spill_dram_passes: float = 2.0
    name: str = "custom"
    description: str = ""
    sources: dict = dataclasses.field(default_factory=dict, compare=False)

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("name", "description", "sources")]

    def replace(self, **changes) -> HardwareSpec:
        """A copy with some parameters changed (for sensitivity studies); validated like a preset."""
        unknown = set(changes) - set(self.parameter_names()) - {"name"}
        if unknown:
            raise PresetError(f"hardware: unknown parameter(s) {sorted(unknown)}")
        spec = dataclasses.replace(self, **changes)
        _check_values(spec)
        return spec

    @property
    def assumptions(self) -> list[str]:
        return [k for k, src in self.sources.items() if str(src).lower().startswith("assumption")]


#: Parameters a preset may leave out: (value, source) giving the cost model's behaviour before they existed.
DEFAULTS = {
    "dram_overlap": (1.0, "default: perfect overlap, time = max(compute, DRAM)"),
    "spill_dram_passes": (2.0, "default: a spilled byte is written to DRAM once and read back once"),
}
_INT_FIELDS = {"array_rows", "array_cols"}
_BOOL_FIELDS = {"weights_double_buffered"}
_POSITIVE = {"clock_hz", "array_rows", "array_cols", "bytes_per_weight", "bytes_per_activation",
             "bytes_per_accumulator", "dram_bandwidth_bytes_per_s"}


def _check_values(spec: HardwareSpec) -> None:
    for name in HardwareSpec.parameter_names():
        value = getattr(spec, name)
        if name in _BOOL_FIELDS:
            continue
        if not value >= 0:
            raise PresetError(f"hardware {spec.name}: {name} must be >= 0, got {value}")
        if name in _POSITIVE and not value > 0:
            raise PresetError(f"hardware {spec.name}: {name} must be > 0, got {value}")
    if spec.dram_overlap > 1:
        raise PresetError(f"hardware {spec.name}: dram_overlap must be between 0 (compute + DRAM) and 1 "
                          f"(max of the two), got {spec.dram_overlap}")


def parse_preset(document: dict, origin: str) -> HardwareSpec:
    """Build a spec from a parsed preset document; raises :class:`PresetError` naming the bad field."""
    if not isinstance(document, dict):
        raise PresetError(f"hardware preset {origin}: expected a mapping with name, description, parameters")
    top = {"name", "description", "parameters"}
    extra = set(document) - top
    if extra:
        raise PresetError(f"hardware preset {origin}: unknown key(s) {sorted(extra)}; allowed: {sorted(top)}")
    params = document.get("parameters")
    if not isinstance(params, dict):
        raise PresetError(f"hardware preset {origin}: missing 'parameters' mapping")
    names = HardwareSpec.parameter_names()
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise PresetError(f"hardware preset {origin}: unknown parameter(s) {unknown}; allowed: {', '.join(names)}")
    params = {**{n: {"value": v, "source": src} for n, (v, src) in DEFAULTS.items()}, **params}
    missing = [n for n in names if n not in params]
    if missing:
        raise PresetError(f"hardware preset {origin}: missing parameter(s) {', '.join(missing)}")
    values, sources = {}, {}
    for name in names:
        entry = params[name]
        if not isinstance(entry, dict) or set(entry) != {"value", "source"}:
            raise PresetError(
                f"hardware preset {origin}: parameter {name} must be {{value: ..., source: '...'}}, got {entry!r}"
            )
        value, source = entry["value"], entry["source"]
        if isinstance(value, str):  # YAML 1.1 reads 700.0e6 (no exponent sign) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(source, str) or not source.strip():
            raise PresetError(f"hardware preset {origin}: parameter {name} needs a source (or 'assumption: ...')")
        if name in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise PresetError(f"hardware preset {origin}: {name} must be true or false, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PresetError(f"hardware preset {origin}: {name} must be a number, got {value!r}")
        elif name in _INT_FIELDS and value != int(value):
            raise PresetError(f"hardware preset {origin}: {name} must be a whole number, got {value!r}")
        values[name] = int(value) if name in _INT_FIELDS else value
        sources[name] = source
    spec = HardwareSpec(
        **values, name=str(document.get("name", origin)), description=str(document.get("description", "")),
        sources=sources,
    )
    _check_values(spec)
    return spec


def preset_names() -> list[str]:
    folder = resources.files("ebatch.hardware").joinpath("presets")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name_or_path: str | Path) -> str | None:
    """The YAML text of a shipped preset (by name) or of an existing file; ``None`` if it is neither."""
    text_path = str(name_or_path)
    if text_path in preset_names():
        return resources.files("ebatch.hardware").joinpath("presets", f"{text_path}.yaml").read_text()
    if Path(text_path).is_file():
        return Path(text_path).read_text()
    return None


def load_preset(name_or_path: str | Path) -> HardwareSpec:
    """A shipped accelerator preset by name (``tpu-v1``, ``epur``) or a user's YAML file by path. A host
    preset (``kind: host``, e.g. ``h200``) is refused with a pointer to ``load_hardware``."""
    text_path = str(name_or_path)
    text = preset_text(text_path)
    if text is None:
        raise PresetError(
            f"hardware: unknown preset {text_path!r}; choose one of {', '.join(preset_names())} or a YAML path"
        )
    try:
        document = strict_yaml.load(text)
    except strict_yaml.DuplicateKeyError as exc:
        raise PresetError(f"hardware preset {text_path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise PresetError(f"hardware preset {text_path}: not valid YAML ({exc})".replace("\n", " ")) from None
    if isinstance(document, dict) and document.get("kind") == "host":
        raise PresetError(f"hardware preset {text_path}: a host preset (kind: host), not an accelerator's; load it "
                          "with ebatch.hardware.host.load_hardware (ebatch compare --hardware takes both)")
    return parse_preset(document, text_path)
