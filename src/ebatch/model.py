"""RNN model shapes: a stack of LSTM/GRU layers, and a zoo of public architectures.

The cost models need shapes only: MACs per cell and weight bytes per layer follow from
(cell, input size, hidden size, bidirectional). Real weights are the runtime's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

__all__ = ["GATES", "Layer", "RNNModel", "ZOO", "get_model", "model_names"]

#: Gate blocks per cell type: LSTM has i, f, g, o; GRU has r, z, n (PyTorch conventions).
GATES = {"lstm": 4, "gru": 3}


@dataclass(frozen=True)
class Layer:
    """One recurrent layer. ``hidden_size`` is per direction.

    ``proj_size`` (LSTM only, ``torch.nn.LSTM(proj_size=...)``): the hidden state is projected to
    ``proj_size`` features (``h = W_hr (o * tanh(c))``); 0 means no projection.
    """

    cell: str
    input_size: int
    hidden_size: int
    bidirectional: bool = False
    proj_size: int = 0

    def __post_init__(self) -> None:
        if self.cell not in GATES:
            raise ValueError(f"layer cell: unknown cell {self.cell!r}; use one of {sorted(GATES)}")
        for name in ("input_size", "hidden_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"layer {name}: must be >= 1, got {getattr(self, name)}")
        if self.proj_size and (self.cell != "lstm" or not 0 < self.proj_size < self.hidden_size):
            raise ValueError(f"layer proj_size: {self.proj_size} needs an LSTM and 0 < proj_size < hidden_size "
                             f"({self.hidden_size}); use 0 for no projection")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Features one direction outputs per time-step: ``proj_size`` when projected, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    @property
    def gate_rows(self) -> int:
        """Rows of the stacked gate matrices: gates x hidden size."""
        return GATES[self.cell] * self.hidden_size

    @property
    def input_params(self) -> int:
        """Elements of the input matrix W_ih of one direction."""
        return self.gate_rows * self.input_size

    @property
    def recurrent_params(self) -> int:
        """Elements of the recurrent matrix W_hh of one direction (and of the projection W_hr, if any)."""
        return self.gate_rows * self.output_size + self.proj_size * self.hidden_size

    @property
    def bias_params(self) -> int:
        """Elements of b_ih and b_hh of one direction."""
        return 2 * self.gate_rows

    @property
    def macs_per_cell(self) -> int:
        """Multiply-accumulates of one cell (one time-step of one direction): W_ih x + W_hh h."""
        return self.input_params + self.recurrent_params

    @property
    def params(self) -> int:
        """All parameters of the layer, both directions, biases included."""
        return self.directions * (self.input_params + self.recurrent_params + self.bias_params)


@dataclass(frozen=True)
class RNNModel:
    """A stack of recurrent layers.

    ``merge`` says how a bidirectional layer's two outputs feed the next layer: ``concat`` (PyTorch's
    ``nn.LSTM``: next input = 2 x hidden) or ``sum`` (deepspeech.pytorch: next input = hidden).
    ``staged_inputs``: indices of layers whose input passes through position-wise stages first (a Linear,
    a LayerNorm: what the runtime runs between RNN layers); their ``input_size`` need not equal the
    layer below's output. The cost models count the recurrent layers only.
    Raises ``ValueError`` when consecutive layer sizes do not chain.
    """

    name: str
    layers: tuple[Layer, ...]
    merge: str = "concat"
    description: str = ""
    staged_inputs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError(f"model {self.name!r}: needs at least one layer")
        if self.merge not in ("concat", "sum"):
            raise ValueError(f"model merge: unknown {self.merge!r}; use 'concat' or 'sum'")
        for i in range(1, len(self.layers)):
            if i in self.staged_inputs:
                continue
            expected = self.output_size_of(i - 1)
            if self.layers[i].input_size != expected:
                raise ValueError(
                    f"model {self.name!r}: layer {i} input_size is {self.layers[i].input_size}, "
                    f"but layer {i - 1} outputs {expected}"
                )

    def output_size_of(self, index: int) -> int:
        layer = self.layers[index]
        return layer.output_size * (layer.directions if self.merge == "concat" else 1)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def bidirectional(self) -> bool:
        """True when any layer is bidirectional (a request then needs its whole input before it ends)."""
        return any(layer.bidirectional for layer in self.layers)

    @cached_property
    def cell_types(self) -> tuple[tuple[int, int], ...]:
        """(layer, direction) pairs in evaluation order; direction 0 is forward, 1 backward."""
        return tuple((i, d) for i, layer in enumerate(self.layers) for d in range(layer.directions))

    @property
    def cells_per_timestep(self) -> int:
        """Cells one time-step of a request costs over all layers and directions."""
        return sum(layer.directions for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs_per_timestep(self) -> int:
        return sum(layer.directions * layer.macs_per_cell for layer in self.layers)


def _stack(cell: str, input_size: int, hidden: int, n: int, bidirectional: bool, merge: str = "concat"):
    layers = []
    size = input_size
    for _ in range(n):
        layers.append(Layer(cell, size, hidden, bidirectional))
        size = hidden * (2 if bidirectional and merge == "concat" else 1)
    return tuple(layers)


ZOO: dict[str, RNNModel] = {
    m.name: m
    for m in [
        RNNModel(
            "eesen",
            _stack("lstm", 120, 320, 5, True),
            description="EESEN acoustic model (Miao et al., ASRU 2015): 5 BiLSTM layers, 320 cells per "
            "direction, 120 filterbank inputs.",
        ),
        RNNModel(
            "deepspeech2",
            _stack("gru", 1312, 1024, 5, True, merge="sum"),
            merge="sum",
            description="DeepSpeech2-style acoustic model: 5 BiGRU layers of 1024 per direction, outputs "
            "summed (sizes from deepspeech.pytorch defaults: hidden_size=1024, hidden_layers=5; "
            "1312 = 32 conv channels x 41 frequency bins after two strided convolutions). The conv "
            "front end halves the frame rate (use 50 frames/s).",
        ),
        RNNModel(
            "gnmt-enc",
            (Layer("lstm", 1024, 1024, True), Layer("lstm", 2048, 1024))
            + _stack("lstm", 1024, 1024, 6, False),
            description="GNMT encoder (Wu et al., 2016): 8 LSTM layers of 1024, the first bidirectional "
            "(outputs concatenated), 1024-wide embeddings.",
        ),
        RNNModel("tiny-lstm", _stack("lstm", 8, 16, 2, False), description="2 LSTM layers of 16 (tests)."),
        RNNModel("tiny-gru", _stack("gru", 8, 16, 2, False), description="2 GRU layers of 16 (tests)."),
        RNNModel(
            "tiny-bilstm", _stack("lstm", 8, 16, 2, True), description="2 BiLSTM layers of 16 (tests)."
        ),
        RNNModel(
            "lstm-2x512", _stack("lstm", 512, 512, 2, False), description="2 LSTM layers of 512 (benchmarks)."
        ),
    ]
}


def model_names() -> list[str]:
    return sorted(ZOO)


def get_model(model: str | RNNModel) -> RNNModel:
    """Return a zoo model by name (or the model itself). Raises ValueError naming the choices."""
    if isinstance(model, RNNModel):
        return model
    try:
        return ZOO[model]
    except KeyError:
        raise ValueError(f"model: unknown model {model!r}; choose one of {', '.join(model_names())}") from None
