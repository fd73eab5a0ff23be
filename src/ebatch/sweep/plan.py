"""The cross product of a :class:`~ebatch.sweep.spec.SweepSpec` as a list of :class:`RunConfig`.

Order: model, hardware, workload, policy (each as written), then the grid's keys that apply (as written),
the last varying fastest. A grid key applies only where it is taken: a policy parameter to the policies
that accept it and do not fix it in ``policies``, a ``hardware.<field>`` to the presets that have the
field; elsewhere the run happens once, not once per value. Runs that come out equal (a parameter written
at its default, a policy listed twice) are kept once.
"""

from __future__ import annotations

import itertools

from ebatch.sweep.config import RunConfig
from ebatch.sweep.spec import HARDWARE_PREFIX, SweepSpec

__all__ = ["plan"]


def plan(spec: SweepSpec) -> list[RunConfig]:
    """Every run of ``spec``, each checked; ``ValueError`` ``"<file>: <field>: ..."`` for a bad value."""
    configs: dict[RunConfig, None] = {}
    try:
        for model, hardware, workload, (name, fixed) in itertools.product(
            spec.models, spec.hardware, spec.workloads, spec.policies
        ):
            fixed = dict(fixed)
            axes = spec.axes(hardware, name, fixed)
            for combo in itertools.product(*(values for _, values in axes)):
                chosen = [(key, value) for (key, _), value in zip(axes, combo)]
                overrides = {k[len(HARDWARE_PREFIX):]: v for k, v in chosen if k.startswith(HARDWARE_PREFIX)}
                params = {**fixed, **{k: v for k, v in chosen if not k.startswith(HARDWARE_PREFIX)}}
                configs.setdefault(RunConfig(model, hardware, workload, name, params, overrides))
    except ValueError as exc:
        raise ValueError(f"{spec.origin}: {exc}") from None
    return list(configs)
