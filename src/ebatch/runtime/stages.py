"""``ModelStages``: a whole model as the runtime runs it: RNN stacks with position-wise stages around them.

    front end -> RNN stack 0 -> stage -> RNN stack 1 -> ... -> RNN stack k -> head

``rnns[i]`` is one :class:`~ebatch.runtime.weights.RNNWeights` (one ``torch.nn.LSTM``/``GRU`` or one ONNX
LSTM/GRU node: any layers, directions, projection); ``frames[i]`` is the position-wise stage before
``rnns[i]`` (``frames[0]``: the front end) and ``frames[-1]`` the head, each a
:class:`~ebatch.runtime.frames.FrameStage` or None. The executor runs every RNN layer with the batching
policy and applies each stage to the frames a step finishes, stacked across the step's sequences.

Life cycle: build once (:meth:`ModelStages.from_torch`, :meth:`ModelStages.random`, :meth:`ModelStages.of`,
:func:`ebatch.runtime.onnx_import.stages_from_onnx`, :func:`ebatch.runtime.stagefile.load_stages`), hand
to an executor or :class:`~ebatch.runtime.Engine`. Constructors raise ``ValueError`` naming the stage
whose sizes do not chain or that is not position-wise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ebatch.model import RNNModel
from ebatch.runtime.frames import (
    Activation,
    Affine,
    Chain,
    FrameStage,
    Norm,
    SumDirections,
    TorchFrames,
    check_position_wise,
)
from ebatch.runtime.weights import CellWeights, RNNWeights, check_runtime_model

__all__ = ["LayerWeights", "ModelStages", "frame_stage_from_torch"]


@dataclass(frozen=True, eq=False)
class LayerWeights:
    """One recurrent layer as an executor sees it: cell type, GRU variant, one :class:`CellWeights` per direction."""

    cell: str
    directions: tuple[CellWeights, ...]
    reset_after: bool = True

    @property
    def hidden_size(self) -> int:
        return int(self.directions[0].b_ih.shape[0]) // (4 if self.cell == "lstm" else 3)

    @property
    def output_size(self) -> int:
        """Features per direction per time-step (the projection's, if any)."""
        return int(self.directions[0].w_hh.shape[1])


@dataclass(frozen=True, eq=False)
class ModelStages:
    """See the module docstring. ``frames`` has ``len(rnns) + 1`` entries."""

    rnns: tuple[RNNWeights, ...]
    frames: tuple[FrameStage | None, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        if not self.rnns:
            raise ValueError("stages: a model needs at least one LSTM or GRU")
        if len(self.frames) != len(self.rnns) + 1:
            raise ValueError(f"stages: frames needs {len(self.rnns) + 1} entries (one before each RNN, one after)")
        size = self.input_size
        for i, rnn in enumerate(self.rnns):
            stage = self.frames[i]
            if stage is not None:
                size = stage.output_size
            if rnn.input_size != size:
                raise ValueError(f"stages: RNN {i} ({rnn.name}) takes {rnn.input_size} features, but gets {size}")
            size = rnn.output_size

    # ---- shapes -------------------------------------------------------------------------------------

    @property
    def input_size(self) -> int:
        front = self.frames[0]
        return front.input_size if front is not None else self.rnns[0].input_size

    @property
    def output_size(self) -> int:
        head = self.frames[-1]
        return head.output_size if head is not None else self.rnns[-1].output_size

    @cached_property
    def layers(self) -> tuple[LayerWeights, ...]:
        """Every recurrent layer, in order."""
        return tuple(LayerWeights(rnn.cell, d, rnn.reset_after) for rnn in self.rnns for d in rnn.cells)

    @cached_property
    def after(self) -> tuple[FrameStage | None, ...]:
        """Per layer, the stage applied to its output (None: the next layer reads the output as it is)."""
        out: list[FrameStage | None] = []
        for i, rnn in enumerate(self.rnns):
            out += [None] * (len(rnn.cells) - 1) + [self.frames[i + 1]]
        return tuple(out)

    @cached_property
    def model(self) -> RNNModel:
        """The :class:`~ebatch.model.RNNModel` the simulator uses for these stages (recurrent layers only)."""
        layers = tuple(layer for rnn in self.rnns for layer in rnn.model.layers)
        summed = [isinstance(_first(s), SumDirections) for s in self.after]
        bi = [layer.bidirectional for layer in layers]
        merge = "sum" if any(summed) and all(s for s, b in zip(summed, bi) if b) else "concat"
        staged = []
        for i in range(1, len(layers)):
            below = layers[i - 1]
            out = below.output_size * (below.directions if merge == "concat" else 1)
            if layers[i].input_size != out:
                staged.append(i)
        return RNNModel(self.name, layers, merge=merge, staged_inputs=tuple(staged))

    @property
    def params(self) -> int:
        """Parameters of every stage (RNN layers, biases and projections included; torch modules counted)."""
        total = sum(w.size for rnn in self.rnns for d in rnn.cells for c in d for w in _arrays(c))
        for stage in self.frames:
            total += _stage_params(stage)
        return int(total)

    def describe(self) -> list[str]:
        """One line per stage: what it is and its shapes."""
        lines, size = [], self.input_size
        for i, rnn in enumerate(self.rnns):
            if self.frames[i] is not None:
                lines.append(f"{_stage_name(self.frames[i])}: [T, {size}] -> [T, {self.frames[i].output_size}]")
            layer = rnn.model.layers[0]
            kind = f"{rnn.cell.upper()} x{len(rnn.cells)}" + (" bidirectional" if layer.bidirectional else "")
            extra = (f", proj {layer.proj_size}" if layer.proj_size else "") + (
                ", linear_before_reset=0" if rnn.cell == "gru" and not rnn.reset_after else "")
            lines.append(f"{kind} hidden {layer.hidden_size}{extra}: [T, {rnn.input_size}] -> [T, {rnn.output_size}]")
            size = rnn.output_size
        if self.frames[-1] is not None:
            lines.append(f"{_stage_name(self.frames[-1])}: [T, {size}] -> [T, {self.output_size}]")
        return lines

    # ---- constructors -------------------------------------------------------------------------------

    @classmethod
    def of(cls, weights: RNNWeights | ModelStages) -> ModelStages:
        """``weights`` as stages (one RNN, no other stage); stages are returned as they are."""
        return weights if isinstance(weights, ModelStages) else cls((weights,), (None, None), weights.name)

    @classmethod
    def random(cls, model: RNNModel, seed: int = 0) -> ModelStages:
        """Random weights (PyTorch's init) for any zoo model: one RNN per layer, :class:`SumDirections` after
        bidirectional layers of a ``merge='sum'`` model; ``staged_inputs`` layers get a random Linear. A stack
        ``torch.nn.LSTM``/``GRU`` can express gets the same weights as :meth:`RNNWeights.random`."""
        try:
            return cls.of(RNNWeights.random(check_runtime_model(model), seed=seed))
        except ValueError:
            pass  # mixed sizes, cells or directions, summed directions: one RNN per layer
        rnns, frames = [], [None]
        for i, layer in enumerate(model.layers):
            rnns.append(RNNWeights.random(RNNModel(f"{model.name}.{i}", (layer,)), seed=seed + 7919 * i))
            frames.append(SumDirections(layer.output_size) if model.merge == "sum" and layer.bidirectional else None)
        rng = np.random.default_rng(seed)
        for i in model.staged_inputs:
            below = rnns[i - 1].output_size if frames[i] is None else frames[i].output_size
            bound = 1.0 / np.sqrt(below)
            frames[i] = _join(frames[i], Affine(rng.uniform(-bound, bound, (model.layers[i].input_size, below))))
        return cls(tuple(rnns), tuple(frames), model.name)

    @classmethod
    def from_torch(cls, stages, name: str | None = None) -> ModelStages:
        """From an ``nn.LSTM``/``nn.GRU``, or a list or ``nn.Sequential`` of modules run in order (see
        :class:`~ebatch.runtime.Engine.from_torch`). Modules are copied and put in eval mode."""
        import torch

        modules = list(stages) if isinstance(stages, (list, tuple, torch.nn.Sequential)) else [stages]
        if not modules:
            raise ValueError("stages: empty; give an nn.LSTM/nn.GRU or a list of modules containing one")
        rnns, frames, pending = [], [], []
        size = None
        for index, module in enumerate(modules):
            if not isinstance(module, torch.nn.Module):
                raise ValueError(f"stage {index}: {type(module).__name__} is not a torch.nn.Module")
            if isinstance(module, (torch.nn.LSTM, torch.nn.GRU)):
                rnn = RNNWeights.from_torch(module)
                if size is None:
                    size = rnn.input_size
                frames.append(_chain(pending))
                pending = []
                if rnn.input_size != size:
                    raise ValueError(f"stage {index} ({type(module).__name__}): input_size {rnn.input_size}, but "
                                     f"the stage before it outputs {size} features")
                rnns.append(rnn)
                size = rnn.output_size
                continue
            if size is None:
                size = _torch_input_size(module, index)
            stage = frame_stage_from_torch(module, size, f"{index} ({type(module).__name__})")
            pending.append(stage)
            size = stage.output_size
        if not rnns:
            raise ValueError("stages: no nn.LSTM or nn.GRU among them; ebatch batches recurrent layers")
        frames.append(_chain(pending))
        return cls(tuple(rnns), tuple(frames), name or "torch")


def frame_stage_from_torch(module, input_size: int, name: str) -> FrameStage:
    """A NumPy stage for Linear, LayerNorm, BatchNorm1d, ReLU/Tanh/Sigmoid/(Log)Softmax over the last
    dimension, Identity, Dropout and :class:`ebatch.runtime.zoo.SumDirections`; any other module as
    :class:`TorchFrames`. Every stage is checked position-wise on a probe."""
    import torch

    nn = torch.nn
    module = copy.deepcopy(module).eval()
    params = {k: v.detach().cpu().float().numpy() for k, v in module.state_dict().items()}
    if isinstance(module, nn.Linear):
        stage = Affine(params["weight"], params.get("bias"))
    elif isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        n = module.normalized_shape[0]
        stage = Norm(params.get("weight", _ones(n)), params.get("bias", _ones(n) * 0), layer=True, eps=module.eps)
    elif isinstance(module, nn.BatchNorm1d) and module.track_running_stats:
        n = module.num_features
        scale = params.get("weight", _ones(n)) / (params["running_var"] + module.eps) ** 0.5
        stage = Norm(scale, params.get("bias", _ones(n) * 0) - params["running_mean"] * scale, layer=False)
    elif isinstance(module, (nn.Identity, nn.Dropout)):
        stage = Activation("identity", input_size)
    elif type(module) in (nn.ReLU, nn.Tanh, nn.Sigmoid) or (
            isinstance(module, (nn.Softmax, nn.LogSoftmax)) and module.dim in (-1, 1)):
        stage = Activation(type(module).__name__.lower(), input_size)
    elif getattr(module, "sums_directions", False):  # ebatch.runtime.zoo.SumDirections
        stage = SumDirections(input_size // 2)
    else:
        stage = TorchFrames(module, input_size)
    if stage.input_size != input_size:
        raise ValueError(f"stage {name}: takes {stage.input_size} features, but gets {input_size}")
    out = check_position_wise(stage, name, input_size)
    if isinstance(stage, TorchFrames):
        stage = TorchFrames(module, input_size, out)
    return stage


def _torch_input_size(module, index: int) -> int:
    for attr in ("in_features", "normalized_shape", "num_features"):
        value = getattr(module, attr, None)
        if value is not None:
            return int(value[0] if isinstance(value, (tuple, list)) else value)
    raise ValueError(f"stage {index} ({type(module).__name__}): a front end must say its input size (a Linear, "
                     "LayerNorm or BatchNorm1d first, or an in_features attribute), or start the stages with the RNN")


def _chain(stages: list[FrameStage]) -> FrameStage | None:
    stages = [s for s in stages if not (isinstance(s, Activation) and s.name == "identity")]
    if not stages:
        return None
    return stages[0] if len(stages) == 1 else Chain(tuple(stages))


def _join(a: FrameStage | None, b: FrameStage) -> FrameStage:
    return b if a is None else Chain((a, b))


def _first(stage: FrameStage | None) -> FrameStage | None:
    return stage.stages[0] if isinstance(stage, Chain) else stage


def _arrays(cell: CellWeights):
    return [a for a in (cell.w_ih, cell.w_hh, cell.b_ih, cell.b_hh, cell.w_hr) if a is not None]


def _stage_params(stage: FrameStage | None) -> int:
    if stage is None:
        return 0
    if isinstance(stage, Chain):
        return sum(_stage_params(s) for s in stage.stages)
    if isinstance(stage, TorchFrames):
        return sum(p.numel() for p in stage.module.parameters())
    return sum(a.size for a in stage.tensors().values())


def _stage_name(stage: FrameStage) -> str:
    if isinstance(stage, Chain):
        return " -> ".join(_stage_name(s) for s in stage.stages)
    if isinstance(stage, Activation):
        return stage.name
    if isinstance(stage, TorchFrames):
        return type(stage.module).__name__
    if isinstance(stage, Norm):
        return "LayerNorm" if stage.layer else "BatchNorm"
    return type(stage).__name__


def _ones(n: int):
    return np.ones(n, dtype=np.float32)
