"""``Engine``: run a batching policy on real LSTM/GRU weights; sequences in, per-sequence outputs out.

    import torch
    from ebatch.runtime import Engine
    lstm = torch.nn.LSTM(40, 64, num_layers=2, bidirectional=True)
    engine = Engine.from_torch(lstm, policy="ebatch", batch_size=8, timesteps=16)
    outputs = engine.run([x0, x1, x2])   # x_i: [length_i, 40] -> outputs[i]: [length_i, 128]
    engine.stats()                       # cells, padded cells, steps, wall time, latency

``outputs[i]`` equals ``lstm(x_i)[0]`` for ``x_i`` alone (up to float32 rounding), whatever the policy.
Whole models too: ``Engine.from_torch([nn.Linear(40, 64), nn.LSTM(64, 64), nn.Linear(64, 29)])``,
``Engine.from_onnx("model.onnx")``, ``Engine.from_safetensors("model.safetensors")`` (see
:mod:`ebatch.runtime.stages`): position-wise stages run on the frames each step finishes.
The policy is driven by the event loop of :mod:`ebatch.sim` with an
:class:`~ebatch.runtime.backend.ExecutorBackend`: every sequence arrives at time 0 (or at ``arrivals_s``,
on a clock that advances by the measured time of each step and skips idle gaps), ``next_step`` /
execute / ``on_step_done`` until all are complete.

Bad input raises ``ValueError`` naming the sequence (or, when loading, the tensor). With
``run(..., errors="return")`` a bad sequence's slot in the returned list holds a :class:`SequenceError`
and the other sequences still get their outputs.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np

from ebatch import policies
from ebatch.hardware.energy import EnergyMeter
from ebatch.policies.base import Policy
from ebatch.runtime.allocator import keep_freed_memory
from ebatch.runtime.backend import ExecutorBackend
from ebatch.runtime.executor import Executor
from ebatch.runtime.numpy_executor import NumpyExecutor
from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import RNNWeights
from ebatch.sim.engine import Simulator
from ebatch.workload import Workload

__all__ = ["BACKENDS", "Engine", "SequenceError", "make_executor", "validate_sequence"]

BACKENDS = ("auto", "compiled", "torch", "numpy")
_log = logging.getLogger("ebatch")


class SequenceError(ValueError):
    """A sequence ``index`` that cannot be run; its message says why and how to fix it."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"sequence {index}: {message}")
        self.index = index


def make_executor(weights: RNNWeights | ModelStages, backend: str = "auto", device: str | None = None,
                  threads: int | None = None) -> Executor:
    """An executor for ``weights``. Raises ``ValueError`` for an unknown backend or an impossible device.

    ``"auto"`` (default): the fastest installed, that is ``"torch"`` on CUDA, else ``"compiled"`` when torch
    is installed, else ``"numpy"``. ``"compiled"`` (CPU): the whole recurrence of a step in C++
    (:mod:`ebatch.runtime.compiled_executor`); if it cannot be built, the torch executor with a one-line
    warning on the ``ebatch`` logger. ``"torch"``: torch ops column by column, CPU or CUDA.
    ``"numpy"``: NumPy only. On the CPU the process keeps freed memory for reuse from here on
    (:func:`~ebatch.runtime.allocator.keep_freed_memory`: a step's scratch arrays then do not page-fault).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device in (None, "cpu"):
        keep_freed_memory()
    if backend == "auto":
        if importlib.util.find_spec("torch") is None:
            backend = "numpy"
        else:
            backend = "torch" if device not in (None, "cpu") else "compiled"
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"device: the numpy backend runs on the CPU only, got {device!r}")
        return NumpyExecutor(weights)
    if backend == "compiled":
        if device not in (None, "cpu"):
            raise ValueError(f"device: the compiled backend runs on the CPU only, got {device!r}; use backend='torch'")
        if importlib.util.find_spec("torch") is None:
            raise ValueError("backend 'compiled' needs PyTorch: pip install 'ebatch[torch]'")
        from ebatch.runtime.compiled import CompileUnavailable
        from ebatch.runtime.compiled_executor import CompiledExecutor

        try:
            return CompiledExecutor(weights, threads=threads)
        except CompileUnavailable as exc:
            _log.warning("ebatch: compiled backend unavailable (%s); using the torch executor", exc)
    from ebatch.runtime.torch_executor import TorchExecutor

    return TorchExecutor(weights, device=device, threads=threads)


def validate_sequence(index: int, x, input_size: int) -> np.ndarray:
    """``x`` as a C-contiguous float32 ``[length, input_size]`` array; raises :class:`SequenceError`."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        x = x.numpy()
    try:
        array = np.asarray(x)
    except Exception as exc:
        raise SequenceError(index, f"cannot be read as an array ({exc})") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise SequenceError(index, f"dtype {array.dtype} is not a real number type; give float32 features")
    if array.ndim != 2:
        raise SequenceError(index, f"has shape {array.shape}; expected [length, {input_size}]")
    if array.shape[0] == 0:
        raise SequenceError(index, "is empty (0 time-steps); every sequence needs at least one")
    if array.shape[1] != input_size:
        raise SequenceError(index, f"has {array.shape[1]} features per time-step, the model expects {input_size}")
    with np.errstate(over="ignore", invalid="ignore"):
        array = np.ascontiguousarray(array, dtype=np.float32)
    bad = ~np.isfinite(array)
    if bad.any():
        step = int(np.flatnonzero(bad.any(axis=1))[0])
        raise SequenceError(index, f"contains NaN or inf (first at time-step {step}), or overflows float32")
    return array


class Engine:
    """A policy driving a real executor. Build with :meth:`from_torch` / :meth:`from_safetensors` or directly.

    ``policy``: a name, with ``batch_size`` / ``timesteps`` passed only to policies that take them and any
    other parameter of that policy as a keyword (``sort_window=64``, ``lookahead=32``), or a policy object
    (then ``batch_size``/``timesteps`` are ignored). ``backend``: ``"auto"`` (default: the fastest installed),
    ``"compiled"``, ``"torch"`` or ``"numpy"`` (see :func:`make_executor`; ``device`` ``"cpu"`` or ``"cuda"``;
    ``threads`` sets ``torch.set_num_threads``). ``energy``: an energy meter
    (:func:`ebatch.hardware.energy.choose_meter`); :meth:`stats` then reports the run's energy, shared
    among the requests by their cells in each step.
    Life cycle: construct once, ``run()`` any number of times, ``stats()`` describes the last run.
    Raises ``ValueError`` for an unknown policy, parameter or backend.
    """

    def __init__(
        self,
        weights: RNNWeights | ModelStages,
        policy: str | Policy = "ebatch",
        batch_size: int = 8,
        timesteps: int = 16,
        backend: str = "auto",
        device: str | None = None,
        threads: int | None = None,
        energy: EnergyMeter | None = None,
        **policy_params,
    ) -> None:
        self.weights = weights
        self.energy = energy
        self.stages = ModelStages.of(weights)
        self.model = self.stages.model
        if isinstance(policy, str) and policy in policies.available():
            allowed = policies.parameters(policy)
            given = {"batch_size": batch_size, "timesteps": timesteps}
            policy_params = {k: v for k, v in given.items() if k in allowed} | policy_params
        self.policy = policies.get(policy, **policy_params)
        self.executor = make_executor(weights, backend, device=device, threads=threads)
        self._stats: dict = {}

    @classmethod
    def from_torch(cls, stages, policy: str | Policy = "ebatch", batch_size: int = 8, timesteps: int = 16,
                   backend: str = "auto", **kwargs) -> Engine:
        """From a ``torch.nn.LSTM`` / ``torch.nn.GRU``, or a list (or ``nn.Sequential``) of modules run in order.

        RNN modules: any ``num_layers``, ``bidirectional``, ``bias``, LSTM ``proj_size``; ``batch_first`` is
        irrelevant (sequences are given one by one as ``[length, input_size]``). Any other module is applied
        position-wise to the frames (``[length, features] -> [length, features']``): Linear, LayerNorm,
        BatchNorm1d (eval), activations, (Log)Softmax over features, :class:`ebatch.runtime.zoo.SumDirections`,
        or any module that maps each frame on its own (checked on a probe; one that mixes time-steps raises
        ``ValueError`` naming it). Weights are copied, modules put in eval mode.
        """
        return cls(ModelStages.from_torch(stages), policy, batch_size, timesteps, backend, **kwargs)

    @classmethod
    def from_safetensors(cls, path: str | Path, cell: str | None = None, policy: str | Policy = "ebatch",
                         batch_size: int = 8, timesteps: int = 16, backend: str = "auto", **kwargs) -> Engine:
        """From a safetensors file: a whole model saved by :func:`ebatch.runtime.stagefile.save_stages` (its
        description in the metadata or a ``.json`` sidecar), or a module's ``state_dict()`` with ``cell``
        ``"lstm"`` (default) or ``"gru"``. No torch needed."""
        from ebatch.runtime.stagefile import load_stages

        return cls(load_stages(path, cell), policy, batch_size, timesteps, backend, **kwargs)

    @classmethod
    def from_onnx(cls, model, policy: str | Policy = "ebatch", batch_size: int = 8, timesteps: int = 16,
                  backend: str = "auto", **kwargs) -> Engine:
        """From an ONNX model (a path or a ``ModelProto``) with LSTM/GRU nodes; needs the ``onnx`` extra.
        See :mod:`ebatch.runtime.onnx_import` for what is accepted; anything else raises ``ValueError``
        naming the node and the attribute."""
        from ebatch.runtime.onnx_import import stages_from_onnx

        return cls(stages_from_onnx(model), policy, batch_size, timesteps, backend, **kwargs)

    @property
    def output_size(self) -> int:
        return self.stages.output_size

    def run(self, sequences, errors: str = "raise", arrivals_s=None) -> list:
        """Outputs ``[length_i, output_size]`` for each sequence, in input order.

        ``errors="raise"`` (default): the first bad sequence raises :class:`SequenceError` before anything
        runs. ``errors="return"``: a bad sequence's entry is its :class:`SequenceError`, the rest run.
        ``arrivals_s``: arrival time of each sequence (default all 0); latency in :meth:`stats` is measured
        from it on the measured-time clock.
        """
        if errors not in ("raise", "return"):
            raise ValueError(f"errors: must be 'raise' or 'return', got {errors!r}")
        sequences = list(sequences)
        n = len(sequences)
        results: list = [None] * n
        arrays = {}
        for i, x in enumerate(sequences):
            try:
                arrays[i] = validate_sequence(i, x, self.stages.input_size)
            except SequenceError as exc:
                if errors == "raise":
                    raise
                results[i] = exc
        if arrivals_s is None:
            arrivals = np.zeros(n)
        else:
            arrivals = np.asarray(arrivals_s, dtype=np.float64).reshape(-1)
            if arrivals.size != n or not np.all(np.isfinite(arrivals)) or np.any(arrivals < 0):
                raise ValueError(f"arrivals_s: need {n} finite arrival times >= 0, one per sequence")
        good = np.array(sorted(arrays), dtype=np.int64)
        self._stats = {"requests": n, "failed": n - good.size}
        if good.size == 0:
            return results
        order = good[np.argsort(arrivals[good], kind="stable")]  # simulator id -> input index
        workload = Workload.from_lengths([len(arrays[i]) for i in order], arrivals[order], name="engine")
        backend = ExecutorBackend(self.executor, inputs=lambda sid: arrays[int(order[sid])], keep_outputs=True,
                                  meter=self.energy)
        start = time.perf_counter()
        simulator = Simulator(self.model, workload, self.policy, backend)
        simulator.run()
        wall_s = time.perf_counter() - start
        for sid, i in enumerate(order.tolist()):
            results[i] = self.executor.pop_result(sid)
        summary = simulator.result().summary()
        useful = summary["useful_cells"]
        self._stats |= {
            "policy": self.policy.name,
            "params": self.policy.params(),
            "backend": self.executor.name,
            "useful_cells": useful,
            "padded_cells": summary["computed_cells"] - useful,
            "computed_cells": self.executor.useful_cells,
            "steps": summary["steps"],
            "invocations": summary["invocations"],
            "wall_s": wall_s,
            "execute_s": backend.measured_s,
            "sequences_per_s": good.size / wall_s,
            "useful_cells_per_s": useful / wall_s,
            "latency_p50_s": summary["latency_p50_s"],
            "latency_p99_s": summary["latency_p99_s"],
            "makespan_s": summary["makespan_s"],
        }
        if self.energy is not None:
            self._stats |= {"energy_j": summary["energy_j"], "energy_per_request_j": summary["energy_per_request_j"],
                            "energy_source": self.energy.source}
        return results

    def stats(self) -> dict:
        """Figures of the last :meth:`run`: ``useful_cells``, ``padded_cells`` (the plan's padding, which the
        executor skips), ``computed_cells`` (cells actually evaluated), ``steps``, ``invocations``,
        ``wall_s``, ``execute_s`` (inside the executor), throughput and measured-clock latency; with an
        energy meter also ``energy_j``, ``energy_per_request_j`` and ``energy_source``."""
        return dict(self._stats)
