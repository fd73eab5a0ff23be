"""The real runtime: batch plans executed on LSTM/GRU weights (the fastest installed executor by default).

- :class:`Engine` (``from_torch``, ``from_onnx``, ``from_safetensors``): ``run(sequences)`` with any policy.
- :class:`ModelStages`: a whole model (RNN stacks with position-wise stages between, before and after);
  :class:`RNNWeights`: one RNN's weights in PyTorch's layout, validated.
- :class:`NumpyExecutor`, ``TorchExecutor`` (``ebatch.runtime.torch_executor``, needs torch) and ``CompiledExecutor``
  (``ebatch.runtime.compiled_executor``, needs torch and a C++ compiler): execute ``BatchStep``s.
- :class:`ExecutorBackend`: a real executor as the simulator's backend (measured time); the benchmarks built on it
  (``ebatch.bench``: ``measured_vs_simulated``, ``ebatch bench``) live outside the runtime.

Torch is imported only by the torch and compiled executors and ``RNNWeights.from_torch``.
"""

from ebatch.runtime.backend import ExecutorBackend
from ebatch.runtime.engine import BACKENDS, Engine, SequenceError, make_executor, validate_sequence
from ebatch.runtime.executor import Executor
from ebatch.runtime.numpy_executor import NumpyExecutor
from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import CellWeights, RNNWeights

__all__ = [
    "BACKENDS", "CellWeights", "Engine", "Executor", "ExecutorBackend", "ModelStages", "NumpyExecutor", "RNNWeights",
    "SequenceError", "make_executor", "validate_sequence",
]
