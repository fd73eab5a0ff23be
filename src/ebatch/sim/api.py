"""``ebatch.simulate``: one call from names (or objects) to a result."""

from __future__ import annotations

from ebatch import policies
from ebatch.hardware import HardwareSpec
from ebatch.hardware.host import HostSpec, cost_model, load_hardware
from ebatch.model import RNNModel, get_model
from ebatch.sim.engine import Backend, Simulator
from ebatch.sim.results import SimulationResult
from ebatch.workload import Workload

__all__ = ["simulate"]


def simulate(
    model: str | RNNModel,
    workload: str | Workload,
    policy: str | policies.Policy,
    hardware: str | HardwareSpec | HostSpec | Backend = "epur",
    seed: int = 0,
    keep_plan: bool = False,
    **policy_params,
) -> SimulationResult:
    """Simulate ``policy`` serving ``workload`` on ``model`` and ``hardware``.

    ``model``: a zoo name or an :class:`~ebatch.model.RNNModel`. ``workload``: a data set name (all its
    requests, offline, drawn with ``seed``) or a :class:`~ebatch.workload.Workload`. ``policy``: a name
    (with its parameters as keywords, e.g. ``batch_size=32``) or a policy object. ``hardware``: a preset
    name or YAML path (an accelerator's, or a host's with ``kind: host``), a spec, or any backend with
    ``cost(step)``.
    The same arguments always give the same result. Raises ``ValueError`` for unknown names or bad values.
    """
    model = get_model(model)
    if isinstance(workload, str):
        workload = Workload.load(workload, seed=seed)
    policy = policies.get(policy, **policy_params)
    if hasattr(hardware, "cost"):
        backend = hardware
    else:
        spec = hardware if isinstance(hardware, (HardwareSpec, HostSpec)) else load_hardware(hardware)
        backend = cost_model(spec, model)
    result = Simulator(model, workload, policy, backend, keep_plan=keep_plan).run().result()
    result.hardware = getattr(getattr(backend, "spec", None), "name", type(backend).__name__)
    return result
