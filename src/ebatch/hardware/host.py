"""A host cost model (CPU or GPU running ebatch's own executor), fitted by ``ebatch calibrate``.

A host preset has ``kind: host`` next to ``name``, ``description`` and ``parameters`` (each
``{value, source}``, strict like the accelerator presets). The executor runs a ``BatchStep`` as one call,
fused or not (one GEMM projects the inputs of all its cells, then one small GEMM and the gate arithmetic
per column; padded cells are skipped), so a step over ``columns`` time-steps of one layer direction with
``segments`` segments and ``cells`` useful cells costs::

    time_s = step_overhead_s                                                           (the call itself)
             + new_layout x layout_overhead_s   (the executor builds the step's plan: 1 when its layout
                                                 is not among the last LAYOUTS_KEPT steps', else 0)
             + segments x segment_overhead_s     (per-segment bookkeeping: slicing inputs and outputs,
                                                  loading and saving a request's recurrent state)
             + columns x column_overhead_s       (per column: the gate arithmetic's calls, the weight read)
             + cells x 2 x gate_rows x output_size x recurrent_s_per_flop   (the per-column recurrent products)
             + cells x 2 x gate_rows x input_size  x input_s_per_flop       (the input GEMM)

With ``narrow_rows`` k > 0 and ``narrow_s_per_flop`` > 0 (optional; 0, the default, leaves it out) the
first k rows of every column cost more per recurrent flop::

             + sum over columns of min(rows in the column, k) x 2 x gate_rows x output_size x narrow_s_per_flop

Measured on AMD EPYC with torch 2.13's MKL-packed per-column GEMM (``ebatch calibrate``, lstm-2x512, 1000
columns): a column's time grows by about 95 us a row up to 4 rows and 45 us a row above, so a model
linear in cells underprices the 2-6-row steps an online server runs most (by up to 30 %) and overprices
full ones. ``ebatch calibrate`` fits k over the rows it measures.

A step's layout is its segments' rows, columns, lengths, reset flags and requests
(:meth:`~ebatch.step.BatchStep.layout_key`); the executor keeps its plans for the last
:data:`~ebatch.step.LAYOUTS_KEPT` layouts, and the cost model keeps the same list
(:class:`~ebatch.step.RecentLayouts`, cleared by ``reset``), so the steps must be priced in the order they
run. Window policies repeat one layout for every layer; a cellular run of the same requests one column at a
time repeats one for every column. Measured on the Xeon (lstm-2x512, torch, 1 thread): a one-column step of
2-8 requests takes 0.55-0.95 ms with its plan kept and about 0.33 ms more when the plan is built; a preset
without the term priced a served cellular probe's one-column steps at 1.2-1.5x their time.
``layout_overhead_s`` is optional (0 leaves the term out).

A non-fused step (a run of cellular invocations) pays the step overhead once: on a host the weights stay
in memory between invocations, unlike on an accelerator whose weight buffer is refilled. The executor
reports a step's completions when the step returns (no notification in the middle of a step), so
:attr:`HostCostModel.notifies_mid_step` is False and the simulator finishes them at the step's end.

With ``weight_bandwidth_bytes_per_s`` > 0 (optional; 0, the default, leaves it out) the flop terms
become a roofline over the step: its arithmetic and its weight reads overlap, and the step takes
whichever is longer::

    weights_s = (W_ih bytes + columns x W_hh bytes) / weight_bandwidth_bytes_per_s
    time_s    = overheads + max(recurrent_s + input_s, weights_s)

(float32 weights, 4 bytes a parameter, as the runtime's executors hold them; W_ih read once per step, by
its one input GEMM, W_hh once per column). ``segment_overhead_s`` is optional too (0 by default: a preset
from public figures, such as the shipped ``h200``, has no measurement of it).

Times are seconds of one core running the executor's thread undisturbed (``ebatch calibrate`` measures
the thread's CPU time with one CPU thread, wall time otherwise). ``energy_j = power_w x time_s``: an
**estimate** from the preset, named ``estimated_energy_j`` in the breakdown, not a measurement. Shipped
host presets (``h200``) load by name.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import yaml

from ebatch import strict_yaml
from ebatch.hardware.cost import StepCost
from ebatch.hardware.preset import preset_text
from ebatch.model import RNNModel, get_model
from ebatch.step import BatchStep, RecentLayouts

#: bytes of one weight as the runtime's executors hold it (float32)
FLOAT32_BYTES = 4

__all__ = ["FLOAT32_BYTES", "HostCostModel", "HostSpec", "cost_model", "cpu_name", "host_preset_text",
           "is_host_preset", "load_hardware", "load_host_preset"]


def cpu_name() -> str:
    """This machine's processor as /proc/cpuinfo names it (else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass(frozen=True)
class HostSpec:
    """The fitted costs of one executor (backend, threads) on one machine; all >= 0."""

    step_overhead_s: float
    column_overhead_s: float
    recurrent_s_per_flop: float
    input_s_per_flop: float
    power_w: float
    weight_bandwidth_bytes_per_s: float = 0.0  # optional: 0 leaves the weight-read roofline out
    segment_overhead_s: float = 0.0  # optional: 0 where not measured
    layout_overhead_s: float = 0.0  # optional: per step with a new layout (0 where not measured)
    narrow_rows: float = 0.0  # optional: 0 leaves the narrow-column term out
    narrow_s_per_flop: float = 0.0
    name: str = "host"
    description: str = ""
    sources: dict = field(default_factory=dict, compare=False)

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name not in ("name", "description", "sources")]

    @classmethod
    def optional_names(cls) -> list[str]:
        """Parameters a preset may leave out (they default to 0: that part of the model is off)."""
        return ["segment_overhead_s", "layout_overhead_s", "weight_bandwidth_bytes_per_s", "narrow_rows",
                "narrow_s_per_flop"]

    def on_shared_core(self, cpu_share: float) -> HostSpec:
        """This host when the executor's thread gets only ``cpu_share`` (0..1] of a core while it runs (a
        machine shared with other work): every time cost divided by ``cpu_share``, the weight bandwidth
        multiplied by it; power unchanged."""
        if not 0 < cpu_share <= 1:
            raise ValueError(f"cpu_share: must be in (0, 1], got {cpu_share}")
        return self.at_speed(cpu_share, f"a {cpu_share:.0%} share of a core")

    def at_speed(self, speed: float, why: str = "") -> HostSpec:
        """This host running ``speed`` times as fast as calibrated (> 1 faster, < 1 slower; e.g. a virtual
        machine whose core is shared with other tenants): every time cost divided by ``speed``, the weight
        bandwidth multiplied by it; power unchanged. ``why`` goes into the description."""
        if not speed > 0:
            raise ValueError(f"speed: must be > 0, got {speed}")
        scaled = {n: getattr(self, n) / speed for n in self.parameter_names()
                  if n not in ("power_w", "weight_bandwidth_bytes_per_s", "narrow_rows")}
        return replace(self, **scaled, weight_bandwidth_bytes_per_s=self.weight_bandwidth_bytes_per_s * speed,
                       description=f"{self.description} ({why or f'{speed:.2f}x as fast'})")


def _document(path: str | Path) -> dict:
    try:
        text = preset_text(path)
        document = strict_yaml.load(text if text is not None else Path(path).read_text())
    except strict_yaml.DuplicateKeyError as exc:
        raise ValueError(f"host preset {path}: {exc}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"hardware preset {path}: not valid YAML ({exc})".replace("\n", " ")) from None
    return document if isinstance(document, dict) else {}


def is_host_preset(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` (a shipped preset or a YAML file) has ``kind: host`` (a malformed file is left
    to the caller)."""
    try:
        return preset_text(name_or_path) is not None and _document(name_or_path).get("kind") == "host"
    except ValueError:
        return False


def load_host_preset(path: str | Path) -> HostSpec:
    """A host preset (a shipped name or a file); ``ValueError`` naming the field for unknown, missing or
    malformed entries."""
    document = _document(path)
    extra = set(document) - {"kind", "name", "description", "parameters"}
    if extra or document.get("kind") != "host" or not isinstance(document.get("parameters"), dict):
        raise ValueError(f"hardware preset {path}: a host preset needs kind: host, name, description, parameters "
                         f"(unknown: {sorted(extra)})")
    params, names, optional = document["parameters"], HostSpec.parameter_names(), HostSpec.optional_names()
    required = [n for n in names if n not in optional]
    if not set(required) <= set(params) <= set(names):
        raise ValueError(f"hardware preset {path}: parameters must be exactly {', '.join(required)} (optional: "
                         f"{', '.join(optional)}); unknown {sorted(set(params) - set(names))}, missing "
                         f"{sorted(set(required) - set(params))}")
    values, sources = {}, {}
    for name in [n for n in names if n in params]:
        entry = params[name]
        if not isinstance(entry, dict) or set(entry) != {"value", "source"} or not str(entry["source"]).strip():
            raise ValueError(f"hardware preset {path}: parameter {name} must be {{value: ..., source: '...'}}")
        value = entry["value"]
        if isinstance(value, str):  # YAML 1.1 reads 4.8e12 (no exponent sign) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"hardware preset {path}: {name} must be a number >= 0, got {value!r}")
        values[name], sources[name] = float(value), str(entry["source"])
    for name in set(optional) - set(params):
        sources[name] = "not in the preset: 0 leaves this term out"
    return HostSpec(**values, name=str(document.get("name", Path(path).stem)),
                    description=str(document.get("description", "")), sources=sources)


def host_preset_text(spec: HostSpec) -> str:
    """The YAML of ``spec`` (what :func:`load_host_preset` reads back)."""
    document = {"kind": "host", "name": spec.name, "description": spec.description,
                "parameters": {n: {"value": float(getattr(spec, n)), "source": spec.sources.get(n, "assumption")}
                               for n in HostSpec.parameter_names()}}
    return yaml.safe_dump(document, sort_keys=False, width=1000)


class HostCostModel:
    """Prices a ``BatchStep`` with a :class:`HostSpec`; same interface as the accelerator model."""

    notify_latency_s = 0.0  # an answer leaves as soon as its step ends (HTTP time is outside the model)
    notifies_mid_step = False  # the executor reports completions when a step returns

    def __init__(self, spec: HostSpec, model: str | RNNModel) -> None:
        self.spec, self.model = spec, get_model(model) if isinstance(model, str) else model
        self._layouts = RecentLayouts()

    def reset(self) -> None:
        """Forget the recent layouts (the executor's plans)."""
        self._layouts = RecentLayouts()

    def cost(self, step: BatchStep, commit: bool = True) -> StepCost:
        layer, spec = self.model.layers[step.layer], self.spec
        cells = step.useful_cells
        new_layout = self._layouts.fetch(step)[1] if commit else step not in self._layouts
        overhead_s = (spec.step_overhead_s + new_layout * spec.layout_overhead_s
                      + step.seg_row.size * spec.segment_overhead_s + step.width * spec.column_overhead_s)
        recurrent_flops_per_cell = 2 * layer.gate_rows * layer.output_size
        recurrent_s = cells * recurrent_flops_per_cell * spec.recurrent_s_per_flop
        if spec.narrow_s_per_flop > 0 and spec.narrow_rows > 0:
            narrow_cells = int(np.minimum(step.column_rows(), spec.narrow_rows).sum())
            recurrent_s += narrow_cells * recurrent_flops_per_cell * spec.narrow_s_per_flop
        input_s = cells * 2 * layer.gate_rows * layer.input_size * spec.input_s_per_flop
        weights_s = 0.0
        if spec.weight_bandwidth_bytes_per_s > 0:
            weight_bytes = FLOAT32_BYTES * (layer.input_params + step.width * layer.recurrent_params)
            weights_s = weight_bytes / spec.weight_bandwidth_bytes_per_s
        time_s = overhead_s + max(recurrent_s + input_s, weights_s)
        energy_j = spec.power_w * time_s
        layout_s = new_layout * spec.layout_overhead_s
        return StepCost(time_s, energy_j, {"overhead_s": overhead_s, "layout_s": layout_s, "recurrent_s": recurrent_s,
                                           "input_s": input_s, "weights_s": weights_s,
                                           "estimated_energy_j": energy_j})


def load_hardware(name_or_path: str | Path):
    """A host preset (``kind: host``) or an accelerator preset, by shipped name or YAML file."""
    from ebatch.hardware.preset import load_preset

    return load_host_preset(name_or_path) if is_host_preset(name_or_path) else load_preset(name_or_path)


def cost_model(spec, model: str | RNNModel):
    """The cost model of ``spec``'s kind: :class:`HostCostModel` for a host, else the accelerator model."""
    from ebatch.hardware.cost import AcceleratorModel

    return HostCostModel(spec, model) if isinstance(spec, HostSpec) else AcceleratorModel(spec, model)
