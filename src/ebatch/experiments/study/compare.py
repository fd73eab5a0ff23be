"""Side-by-side comparison of batching policies: same model, workload, hardware and seed.

Life cycle::

    specs = parse_policies("sequential,padding:sort_window=256,ebatch:timesteps=32")
    specs = apply_defaults(specs, {"batch_size": 32})   # to the policies that take it
    results = compare("eesen", "librispeech-test-clean", specs, "epur", seed=0)
    rows = comparison_rows(results)                       # summaries + ratios to the first policy
    write_comparison(results, "results/epur")             # ebatch.experiments.report.compare: CSVs, JSON, chart

Every function raises ``ValueError`` naming the field for bad input (an unknown policy or parameter, a
malformed policy list, an unknown model, preset or workload); nothing is run before all of it is valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ebatch import policies
from ebatch.experiments.formatting import json_safe, ratio
from ebatch.hardware import HardwareSpec
from ebatch.hardware.host import HostSpec, cost_model, load_hardware
from ebatch.model import RNNModel, get_model
from ebatch.sim import SimulationResult, Simulator
from ebatch.workload import Workload

__all__ = [
    "PolicySpec", "Progress", "RATIO_KEYS", "apply_defaults", "compare", "comparison_rows", "parse_policies",
    "parse_policy", "policy_labels",
]

#: A policy by name and its parameters, e.g. ``("ebatch", {"timesteps": 32})``.
PolicySpec = tuple[str, dict]
#: ``progress(label, completed_requests, total_requests)``, called now and then during a run.
Progress = Callable[[str, int, int], None]

#: Ratios to the first policy of a comparison: higher is better for the first two, lower for the third.
RATIO_KEYS = ("throughput_ratio", "energy_efficiency_ratio", "latency_p99_ratio")

_PROGRESS_EVERY_EVENTS = 512


def _parse_value(text: str):
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_policies(text: str) -> list[PolicySpec]:
    """Parse ``NAME[:KEY=VALUE[:KEY=VALUE...]]`` entries separated by commas.

    A comma-separated ``KEY=VALUE`` without a name continues the policy before it, so
    ``padding:sort_window=256,batch_size=32,ebatch`` is padding with two parameters, then ebatch.
    Values are read as ``none``, ``true``/``false``, integers, floats, or else strings.
    Names are not checked here (:func:`apply_defaults` and :func:`compare` do).
    """
    specs: list[PolicySpec] = []
    for token in (t.strip() for t in str(text).split(",")):
        if not token:
            raise ValueError(f"policies: empty entry in {text!r}; separate names with commas, e.g. sequential,ebatch")
        if ":" in token or "=" not in token:
            name, _, rest = token.partition(":")
            if not name.strip():
                raise ValueError(f"policies: {token!r} has no policy name; write NAME:KEY=VALUE")
            specs.append((name.strip(), {}))
            pairs = rest.split(":") if rest else []
        else:
            if not specs:
                raise ValueError(f"policies: {token!r} has no policy before it; write NAME:{token}")
            pairs = [token]
        for pair in pairs:
            key, eq, value = (part.strip() for part in pair.partition("="))
            if not eq or not key or not value:
                raise ValueError(f"policies: {pair!r} in {token!r} is not KEY=VALUE (e.g. ebatch:timesteps=32)")
            specs[-1][1][key] = _parse_value(value)
    return specs


def parse_policy(text: str, runner: str) -> PolicySpec:
    """Exactly one ``NAME[:KEY=VALUE...]`` (for ``runner``, which runs one policy, e.g. a server)."""
    specs = parse_policies(text)
    if len(specs) != 1:
        raise ValueError(f"policy: {runner} runs one policy, got {len(specs)} in {text!r}")
    return specs[0]


def _check_name(name: str) -> None:
    if name not in policies.available():
        raise ValueError(f"policy: unknown policy {name!r}; choose one of {', '.join(policies.available())}")


def apply_defaults(specs: list[PolicySpec], defaults: dict) -> list[PolicySpec]:
    """Give each policy the ``defaults`` (``None`` values skipped) it accepts; its own parameters win.

    Raises ``ValueError`` for an unknown policy, or a default that none of the policies accepts (a
    ``--timesteps`` given to ``sequential,padding`` is a mistake, not something to ignore silently).
    """
    given = {k: v for k, v in defaults.items() if v is not None}
    used: set[str] = set()
    out = []
    for name, params in specs:
        _check_name(name)
        accepted = policies.parameters(name)
        merged = {k: v for k, v in given.items() if k in accepted}
        used.update(merged)
        merged.update(params)
        out.append((name, merged))
    for key in given:
        if key not in used:
            names = ", ".join(name for name, _ in specs)
            raise ValueError(f"{key}: none of the policies ({names}) takes {key}; leave it out or add one that does")
    return out


def policy_labels(specs: list[PolicySpec]) -> list[str]:
    """Short unique labels: the name, plus the parameters that tell apart runs of the same policy.

    Parameters left at ``None`` (off) are not shown: ``padding`` and ``padding:sort_window=256``.
    """
    labels = []
    for name, params in specs:
        same = [p for n, p in specs if n == name]
        differing = sorted({k for p in same for k in p if any(q.get(k) != p.get(k) for q in same)})
        labels.append(":".join([name] + [f"{k}={params[k]}" for k in differing if params.get(k) is not None]))
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label}#{seen[label]}"
    return labels


def compare(
    model: str | RNNModel,
    workload: str | Workload,
    specs: list[PolicySpec],
    hardware: str | HardwareSpec = "epur",
    seed: int = 0,
    progress: Progress | None = None,
) -> list[SimulationResult]:
    """Run each policy of ``specs`` on the same workload and hardware; results in the order given.

    ``workload``: a :class:`Workload` or a data set name / CSV path (all its requests, offline, drawn
    with ``seed``). Every policy is built (and so validated) before the first run starts.
    """
    model = get_model(model)
    spec = hardware if isinstance(hardware, (HardwareSpec, HostSpec)) else load_hardware(hardware)
    if isinstance(workload, str):
        workload = Workload.load(workload, seed=seed)
    if not specs:
        raise ValueError("policies: give at least one policy name")
    for name, _ in specs:
        _check_name(name)
    built = [policies.get(name, **params) for name, params in specs]
    labels = policy_labels([(p.name, p.params()) for p in built])
    return [_run(model, workload, policy, spec, label, progress) for policy, label in zip(built, labels)]


def _run(model, workload, policy, spec: HardwareSpec | HostSpec, label: str,
         progress: Progress | None) -> SimulationResult:
    sim = Simulator(model, workload, policy, cost_model(spec, model))
    total = len(workload)
    if progress is not None:
        events = 0
        while sim.peek() != math.inf:
            sim.step()
            events += 1
            if events % _PROGRESS_EVERY_EVENTS == 0:
                progress(label, int(np.count_nonzero(~np.isnan(sim.finish_s))), total)
    result = sim.run().result()  # with the heap empty, run() only checks that every request finished
    result.hardware = spec.name
    if progress is not None:
        progress(label, total, total)
    return result


def comparison_rows(results: list[SimulationResult]) -> list[dict]:
    """One JSON-safe summary per result, with ``label`` and ratios to the first result on the same hardware.

    ``throughput_ratio`` = throughput / first's; ``energy_efficiency_ratio`` = requests per joule /
    first's (= first's energy per request / this one's); ``latency_p99_ratio`` = p99 / first's; each ``None``
    where a side is missing (:func:`~ebatch.experiments.formatting.ratio`).
    """
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault((r.hardware, r.model.name, r.workload.name), []).append(i)
    rows: list[dict] = [{} for _ in results]
    for members in groups.values():
        group = [results[i] for i in members]
        labels = policy_labels([(r.policy.name, r.policy.params()) for r in group])
        summaries = [json_safe(r.summary()) for r in group]
        base = summaries[0]
        for i, label, s in zip(members, labels, summaries):
            rows[i] = {
                "label": label, **s, "baseline": labels[0],
                "throughput_ratio": ratio(s["throughput_rps"], base["throughput_rps"]),
                "energy_efficiency_ratio": ratio(s["requests_per_j"], base["requests_per_j"]),
                "latency_p99_ratio": ratio(s["latency_p99_s"], base["latency_p99_s"]),
            }
    return [json_safe(row) for row in rows]
