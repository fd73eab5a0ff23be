"""Position-wise stages: what runs on a sequence's frames between, before and after the RNN layers.

A position-wise stage maps each frame (time-step) independently: ``[n, features] -> [n, features']``, so
the executor can apply it to any set of frames, from any requests, at once: the frames a step finished,
stacked across the step's sequences. Stages here:

- :class:`Affine` (``torch.nn.Linear``, ONNX ``MatMul``/``Gemm``/``Add``), :class:`Activation`,
  :class:`Norm` (LayerNorm, and BatchNorm in eval mode as a per-feature affine), :class:`SumDirections`
  (DeepSpeech2's ``h_fwd + h_bwd``), :class:`Chain`: NumPy only, savable to safetensors;
- :class:`TorchFrames`: any other ``torch.nn.Module`` (checked position-wise by
  :func:`check_position_wise`), needs torch.

Every stage has ``input_size``, ``output_size``, ``numpy(x)`` and ``torch(x)`` (the same on a tensor) and,
for the NumPy ones, ``spec()`` / ``tensors()``: its description and arrays for a safetensors file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ACTIVATIONS", "Activation", "Affine", "Chain", "FrameStage", "Norm", "SumDirections", "TorchFrames",
           "check_position_wise"]


def _stable_softmax(x: np.ndarray, log: bool) -> np.ndarray:
    shifted = x - x.max(axis=-1, keepdims=True)
    if log:
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


#: activation name -> NumPy function of a float32 array (the names of torch.nn modules, lower case)
ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "identity": lambda x: x,
    "softmax": lambda x: _stable_softmax(x, log=False),
    "logsoftmax": lambda x: _stable_softmax(x, log=True),
}


class FrameStage:
    """A position-wise stage (see the module docstring). Subclasses give ``numpy`` (or ``torch``)."""

    input_size: int
    output_size: int

    def numpy(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def torch(self, x):
        """The same on a torch tensor (default: through NumPy, on the tensor's device)."""
        import torch

        y = self.numpy(x.detach().cpu().numpy())
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(x.device)

    def spec(self) -> dict:
        """A JSON-able description (``kind`` and sizes); raises ``ValueError`` for stages that cannot be saved."""
        raise ValueError(f"stage {self!r}: cannot be saved to safetensors (a torch module ebatch has no "
                         "NumPy version of); keep the model in torch or ONNX")

    def tensors(self) -> dict[str, np.ndarray]:
        return {}


def _frozen(a) -> np.ndarray:
    a = np.array(a, dtype=np.float32, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Affine(FrameStage):
    """``x @ weight.T + bias`` (``weight`` ``[out, in]`` as ``torch.nn.Linear``; ``bias`` may be None)."""

    weight: np.ndarray
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", _frozen(self.weight))
        if self.bias is not None:
            object.__setattr__(self, "bias", _frozen(np.broadcast_to(self.bias, self.weight.shape[:1])))

    @property
    def input_size(self) -> int:
        return int(self.weight.shape[1])

    @property
    def output_size(self) -> int:
        return int(self.weight.shape[0])

    def numpy(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias

    def spec(self) -> dict:
        return {"kind": "affine", "bias": self.bias is not None}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight} | ({} if self.bias is None else {"bias": self.bias})


@dataclass(frozen=True, eq=False)
class Activation(FrameStage):
    """An elementwise activation, or (log-)softmax over the features: one of :data:`ACTIVATIONS`."""

    name: str
    size: int

    def __post_init__(self) -> None:
        if self.name not in ACTIVATIONS:
            raise ValueError(f"activation: unknown {self.name!r}; use one of {', '.join(sorted(ACTIVATIONS))}")

    @property
    def input_size(self) -> int:
        return self.size

    @property
    def output_size(self) -> int:
        return self.size

    def numpy(self, x: np.ndarray) -> np.ndarray:
        return ACTIVATIONS[self.name](x).astype(np.float32, copy=False)

    def spec(self) -> dict:
        return {"kind": "activation", "name": self.name, "size": self.size}


@dataclass(frozen=True, eq=False)
class Norm(FrameStage):
    """Per-frame normalisation then a per-feature affine: LayerNorm (``layer=True``: over each frame's
    features, ``eps``) or a fixed affine (``layer=False``: BatchNorm in eval mode folded to scale and shift)."""

    scale: np.ndarray
    shift: np.ndarray
    layer: bool
    eps: float = 1e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _frozen(self.scale))
        object.__setattr__(self, "shift", _frozen(self.shift))

    @property
    def input_size(self) -> int:
        return int(self.scale.shape[0])

    @property
    def output_size(self) -> int:
        return self.input_size

    def numpy(self, x: np.ndarray) -> np.ndarray:
        if self.layer:
            mean = x.mean(axis=-1, keepdims=True)
            var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
            x = (x - mean) / np.sqrt(var + np.float32(self.eps))
        return (x * self.scale + self.shift).astype(np.float32, copy=False)

    def spec(self) -> dict:
        return {"kind": "norm", "layer": self.layer, "eps": self.eps}

    def tensors(self) -> dict[str, np.ndarray]:
        return {"scale": self.scale, "shift": self.shift}


@dataclass(frozen=True, eq=False)
class SumDirections(FrameStage):
    """A bidirectional layer's two halves summed: ``x[:, :H] + x[:, H:]`` (DeepSpeech2's merge)."""

    hidden: int

    @property
    def input_size(self) -> int:
        return 2 * self.hidden

    @property
    def output_size(self) -> int:
        return self.hidden

    def numpy(self, x: np.ndarray) -> np.ndarray:
        return x[:, : self.hidden] + x[:, self.hidden :]

    def torch(self, x):
        return x[:, : self.hidden] + x[:, self.hidden :]

    def spec(self) -> dict:
        return {"kind": "sum_directions", "hidden": self.hidden}


@dataclass(frozen=True, eq=False)
class Chain(FrameStage):
    """Stages applied in order (consecutive position-wise stages between two RNN layers)."""

    stages: tuple[FrameStage, ...]

    @property
    def input_size(self) -> int:
        return self.stages[0].input_size

    @property
    def output_size(self) -> int:
        return self.stages[-1].output_size

    def numpy(self, x: np.ndarray) -> np.ndarray:
        for stage in self.stages:
            x = stage.numpy(x)
        return x

    def torch(self, x):
        for stage in self.stages:
            x = stage.torch(x)
        return x


@dataclass(frozen=True, eq=False)
class TorchFrames(FrameStage):
    """A ``torch.nn.Module`` applied to ``[n, input_size]`` frames (in eval and inference mode)."""

    module: object
    input_size: int
    output_size: int = field(default=0)

    def torch(self, x):
        import torch

        with torch.inference_mode():
            return self.module(x)

    def numpy(self, x: np.ndarray) -> np.ndarray:
        import torch

        return self.torch(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def check_position_wise(stage: FrameStage, name: str, input_size: int, frames: int = 5) -> int:
    """The stage's output size; raises ``ValueError`` naming ``name`` when it cannot take
    ``[frames, input_size]`` or when a frame's output depends on other frames (compared on a random probe:
    the stage on all ``frames`` at once vs on each frame alone)."""
    fix = ("ebatch runs non-RNN stages position-wise ([length, features] -> [length, features']); apply "
           "stages that mix time-steps (convolutions over time, pooling, attention) before or after ebatch")
    x = np.random.default_rng(0).standard_normal((frames, input_size)).astype(np.float32)
    try:
        whole = np.asarray(stage.numpy(x), dtype=np.float32)
        alone = np.concatenate([np.asarray(stage.numpy(x[i : i + 1]), dtype=np.float32) for i in range(frames)])
    except Exception as exc:
        raise ValueError(f"stage {name}: cannot be applied to frames [length, {input_size}] ({exc}); {fix}") from None
    if whole.ndim != 2 or whole.shape[0] != frames:
        raise ValueError(f"stage {name}: maps [{frames}, {input_size}] to {list(whole.shape)}, not "
                         f"[{frames}, features]; {fix}")
    if alone.shape != whole.shape or not np.allclose(whole, alone, rtol=1e-4, atol=1e-5):
        raise ValueError(f"stage {name}: is not position-wise (a frame's output depends on other frames; in "
                         f"torch, call .eval() for BatchNorm and Dropout); {fix}")
    return int(whole.shape[1])
