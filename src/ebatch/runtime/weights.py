"""Real LSTM/GRU weights in PyTorch's layout: from a module, a ``state_dict`` or a safetensors file.

Tensor names and shapes are those of ``torch.nn.LSTM`` / ``torch.nn.GRU``: for layer ``k`` (and
``_reverse`` for the backward direction of a bidirectional layer) ``weight_ih_lk`` ``[G*H, input]``,
``weight_hh_lk`` ``[G*H, H]``, ``bias_ih_lk`` and ``bias_hh_lk`` ``[G*H]``, with ``G`` gate blocks (LSTM: i, f,
g, o; GRU: r, z, n). Layer ``k > 0`` takes ``D*H`` inputs (the two directions concatenated). A module built
with ``bias=False`` has no bias tensors: they are zero. Weights are kept as read-only float32 arrays.

Life cycle: build an :class:`RNNWeights` once (``from_torch``, ``from_safetensors``, ``from_state_dict``,
``random``), hand it to an executor. Every constructor raises ``ValueError`` naming the tensor that is
missing, misshapen, not finite or unexpected; safetensors only (never pickle).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ebatch.model import GATES, Layer, RNNModel

__all__ = ["CellWeights", "RNNWeights", "check_runtime_model"]

_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float32, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class CellWeights:
    """The four tensors of one (layer, direction), PyTorch layout, float32."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray


@dataclass(frozen=True, eq=False)
class RNNWeights:
    """Weights of a stack of LSTM or GRU layers: ``cells[layer][direction]``."""

    cell: str
    cells: tuple[tuple[CellWeights, ...], ...]
    name: str = "custom"

    @property
    def hidden_size(self) -> int:
        return int(self.cells[0][0].w_hh.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.cells[0][0].w_ih.shape[1])

    @property
    def bidirectional(self) -> bool:
        return len(self.cells[0]) == 2

    @cached_property
    def model(self) -> RNNModel:
        """The shapes as an :class:`~ebatch.model.RNNModel` (outputs of both directions concatenated)."""
        h, bi = self.hidden_size, self.bidirectional
        layers = tuple(Layer(self.cell, int(d[0].w_ih.shape[1]), h, bi) for d in self.cells)
        return RNNModel(self.name, layers, merge="concat")

    # ---- constructors -------------------------------------------------------------------------------

    @classmethod
    def from_state_dict(cls, tensors: Mapping[str, np.ndarray], cell: str, name: str = "custom") -> RNNWeights:
        """From a mapping of PyTorch tensor names to arrays (NumPy, or anything ``np.asarray`` takes)."""
        if cell not in GATES:
            raise ValueError(f"cell: unknown cell {cell!r}; use 'lstm' or 'gru'")
        parsed: dict[tuple[str, int, int], str] = {}
        for key in tensors:
            if key.startswith("weight_hr_l"):
                raise ValueError(f"tensor {key!r}: LSTM projections (proj_size > 0) are not supported")
            match = _NAME.match(key)
            if match is None:
                raise ValueError(
                    f"tensor {key!r}: not a tensor of torch.nn.{cell.upper()}; expected names like "
                    "weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0 (and ..._reverse)"
                )
            kind, layer, reverse = match.groups()
            parsed[(kind, int(layer), int(reverse is not None))] = key
        if not any(k[0] == "weight_ih" for k in parsed):
            raise ValueError("missing tensor 'weight_ih_l0': the file holds no RNN weights")
        num_layers = 1 + max(k[1] for k in parsed)
        directions = 2 if any(k[2] for k in parsed) else 1
        has_bias = any(k[0].startswith("bias") for k in parsed)
        kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if has_bias else ())
        for layer in range(num_layers):
            for d in range(directions):
                for kind in kinds:
                    if (kind, layer, d) not in parsed:
                        raise ValueError(f"missing tensor {_key(kind, layer, d)!r}")

        def array(kind: str, layer: int, d: int) -> np.ndarray:
            key = parsed[(kind, layer, d)]
            value = tensors[key]
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().float().numpy()
            value = np.asarray(value)
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                raise ValueError(f"tensor {key!r}: dtype {value.dtype} is not a real number type")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"tensor {key!r}: contains NaN or inf")
            return value

        gates = GATES[cell]
        w_hh0 = array("weight_hh", 0, 0)
        if w_hh0.ndim != 2 or w_hh0.shape[0] != gates * w_hh0.shape[1] or w_hh0.shape[1] < 1:
            raise ValueError(
                f"tensor 'weight_hh_l0': shape {tuple(w_hh0.shape)}; a {cell.upper()} needs ({gates}*H, H)"
            )
        hidden = int(w_hh0.shape[1])
        rows = gates * hidden
        input_size = None
        cells = []
        for layer in range(num_layers):
            per_direction = []
            for d in range(directions):
                w_ih = array("weight_ih", layer, d)
                if layer == 0 and input_size is None:
                    if w_ih.ndim != 2 or w_ih.shape[1] < 1:
                        raise ValueError(
                            f"tensor 'weight_ih_l0': shape {tuple(w_ih.shape)}, expected ({rows}, input_size)"
                        )
                    input_size = int(w_ih.shape[1])
                columns = input_size if layer == 0 else directions * hidden
                expected = {"weight_ih": (rows, columns), "weight_hh": (rows, hidden)}
                if has_bias:
                    expected |= {"bias_ih": (rows,), "bias_hh": (rows,)}
                values = {}
                for kind, shape in expected.items():
                    value = w_ih if kind == "weight_ih" else array(kind, layer, d)
                    if tuple(value.shape) != shape or min(shape) < 1:
                        raise ValueError(
                            f"tensor {_key(kind, layer, d)!r}: shape {tuple(value.shape)}, expected {shape} "
                            f"(a {cell.upper()} with hidden size {hidden}, {directions} direction(s))"
                        )
                    values[kind] = value
                zeros = np.zeros(rows, dtype=np.float32)
                per_direction.append(
                    CellWeights(
                        w_ih=_frozen(values["weight_ih"]),
                        w_hh=_frozen(values["weight_hh"]),
                        b_ih=_frozen(values.get("bias_ih", zeros)),
                        b_hh=_frozen(values.get("bias_hh", zeros)),
                    )
                )
            cells.append(tuple(per_direction))
        return cls(cell=cell, cells=tuple(cells), name=name)

    @classmethod
    def from_safetensors(cls, path: str | Path, cell: str = "lstm") -> RNNWeights:
        """From a safetensors file holding a ``state_dict()`` (read with safetensors' NumPy API; no torch)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"weights: file {str(path)!r} does not exist; give a .safetensors file")
        try:
            from safetensors.numpy import load_file
        except ImportError:  # pragma: no cover - safetensors is in the 'safetensors' and 'torch' extras
            raise ValueError("weights: reading safetensors needs the safetensors package (no torch needed); "
                             "pip install 'ebatch[safetensors]'") from None
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # the library raises its own error types for corrupt files
            raise ValueError(f"weights: cannot read {path.name} as safetensors: {exc}") from None
        return cls.from_state_dict(tensors, cell, name=path.stem)

    @classmethod
    def from_torch(cls, module) -> RNNWeights:
        """From a ``torch.nn.LSTM`` or ``torch.nn.GRU`` (any ``num_layers``, ``bidirectional``, ``batch_first``)."""
        import torch

        if isinstance(module, torch.nn.LSTM):
            cell = "lstm"
            if module.proj_size:
                raise ValueError("module: torch.nn.LSTM with proj_size > 0 is not supported")
        elif isinstance(module, torch.nn.GRU):
            cell = "gru"
        else:
            raise ValueError(f"module: expected torch.nn.LSTM or torch.nn.GRU, got {type(module).__name__}")
        state = {k: v.detach().cpu().float().numpy() for k, v in module.state_dict().items()}
        return cls.from_state_dict(state, cell, name=f"torch.nn.{type(module).__name__}")

    @classmethod
    def random(cls, model: RNNModel, seed: int = 0) -> RNNWeights:
        """Weights for a zoo model's shapes, drawn like PyTorch's init: uniform in +-1/sqrt(H)."""
        check_runtime_model(model)
        rng = np.random.default_rng(seed)
        cells = []
        for layer in model.layers:
            bound = 1.0 / np.sqrt(layer.hidden_size)
            rows = layer.gate_rows

            def draw(*shape, bound=bound):
                return _frozen(rng.uniform(-bound, bound, size=shape))

            cells.append(tuple(
                CellWeights(draw(rows, layer.input_size), draw(rows, layer.hidden_size), draw(rows), draw(rows))
                for _ in range(layer.directions)
            ))
        return cls(cell=model.layers[0].cell, cells=tuple(cells), name=model.name)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The tensors under PyTorch's names (what ``safetensors.numpy.save_file`` writes)."""
        out = {}
        for layer, directions in enumerate(self.cells):
            for d, w in enumerate(directions):
                for kind, value in (("weight_ih", w.w_ih), ("weight_hh", w.w_hh), ("bias_ih", w.b_ih),
                                    ("bias_hh", w.b_hh)):
                    out[_key(kind, layer, d)] = np.array(value)
        return out


def check_runtime_model(model: RNNModel) -> RNNModel:
    """``model`` if it is what ``torch.nn.LSTM``/``GRU`` can express (one cell type, hidden size and
    direction count, outputs concatenated); else ``ValueError`` naming the model."""
    if model.merge != "concat" or len({layer.cell for layer in model.layers}) != 1:
        raise ValueError(f"model {model.name!r}: the runtime needs one cell type and concatenated outputs")
    if len({(layer.hidden_size, layer.bidirectional) for layer in model.layers}) != 1:
        raise ValueError(f"model {model.name!r}: the runtime needs one hidden size and direction count")
    return model


def _key(kind: str, layer: int, direction: int) -> str:
    return f"{kind}_l{layer}" + ("_reverse" if direction else "")
