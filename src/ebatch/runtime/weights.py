"""Real LSTM/GRU weights in PyTorch's layout: from a module, a ``state_dict`` or a safetensors file.

Tensor names and shapes are those of ``torch.nn.LSTM`` / ``torch.nn.GRU``: for layer ``k`` (and
``_reverse`` for the backward direction of a bidirectional layer) ``weight_ih_lk`` ``[G*H, input]``,
``weight_hh_lk`` ``[G*H, H]``, ``bias_ih_lk`` and ``bias_hh_lk`` ``[G*H]``, with ``G`` gate blocks (LSTM: i, f,
g, o; GRU: r, z, n). Layer ``k > 0`` takes ``D*H`` inputs (the two directions concatenated). A module built
with ``bias=False`` has no bias tensors: they are zero. An LSTM built with ``proj_size=P`` has
``weight_hr_lk`` ``[P, H]``; then ``weight_hh_lk`` is ``[4*H, P]`` and layer ``k > 0`` takes ``D*P`` inputs.
Weights are kept as read-only float32 arrays.

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

__all__ = ["CellWeights", "RNNWeights", "check_runtime_model", "read_safetensors"]

_NAME = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float32, copy=True)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class CellWeights:
    """The tensors of one (layer, direction), PyTorch layout, float32; ``w_hr``: LSTM projection or None."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    w_hr: np.ndarray | None = None

    @property
    def output_size(self) -> int:
        """Features this direction outputs per time-step (the projection's, if any)."""
        return int(self.w_hh.shape[1])


@dataclass(frozen=True, eq=False)
class RNNWeights:
    """Weights of a stack of LSTM or GRU layers: ``cells[layer][direction]``.

    ``reset_after`` (GRU): True is PyTorch's candidate ``tanh(W_in x + b_in + r * (W_hn h + b_hn))`` (ONNX
    ``linear_before_reset=1``); False is ONNX's default ``tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.
    """

    cell: str
    cells: tuple[tuple[CellWeights, ...], ...]
    name: str = "custom"
    reset_after: bool = True

    @property
    def hidden_size(self) -> int:
        return int(self.cells[0][0].w_hh.shape[0]) // GATES[self.cell]

    @property
    def proj_size(self) -> int:
        w_hr = self.cells[0][0].w_hr
        return 0 if w_hr is None else int(w_hr.shape[0])

    @property
    def output_size(self) -> int:
        """Features of the last layer's output per time-step (both directions concatenated)."""
        return len(self.cells[-1]) * (self.proj_size or self.hidden_size)

    @property
    def input_size(self) -> int:
        return int(self.cells[0][0].w_ih.shape[1])

    @property
    def bidirectional(self) -> bool:
        return len(self.cells[0]) == 2

    @cached_property
    def model(self) -> RNNModel:
        """The shapes as an :class:`~ebatch.model.RNNModel` (outputs of both directions concatenated)."""
        h, bi, p = self.hidden_size, self.bidirectional, self.proj_size
        layers = tuple(Layer(self.cell, int(d[0].w_ih.shape[1]), h, bi, p) for d in self.cells)
        return RNNModel(self.name, layers, merge="concat")

    # ---- constructors -------------------------------------------------------------------------------

    @classmethod
    def from_state_dict(cls, tensors: Mapping[str, np.ndarray], cell: str, name: str = "custom") -> RNNWeights:
        """From a mapping of PyTorch tensor names to arrays (NumPy, or anything ``np.asarray`` takes)."""
        if cell not in GATES:
            raise ValueError(f"cell: unknown cell {cell!r}; use 'lstm' or 'gru'")
        parsed: dict[tuple[str, int, int], str] = {}
        for key in tensors:
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
        has_proj = any(k[0] == "weight_hr" for k in parsed)
        if has_proj and cell != "lstm":
            raise ValueError("tensor 'weight_hr_l0': projections exist for LSTMs only (torch.nn.LSTM proj_size)")
        kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if has_bias else ())
        kinds += ("weight_hr",) if has_proj else ()
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
        if has_proj:
            w_hr0 = array("weight_hr", 0, 0)
            if w_hr0.ndim != 2 or min(w_hr0.shape) < 1:
                raise ValueError(f"tensor 'weight_hr_l0': shape {tuple(w_hr0.shape)}, expected (proj_size, H)")
            hidden, out_size = int(w_hr0.shape[1]), int(w_hr0.shape[0])
        elif w_hh0.ndim != 2 or w_hh0.shape[0] != gates * w_hh0.shape[1] or w_hh0.shape[1] < 1:
            raise ValueError(
                f"tensor 'weight_hh_l0': shape {tuple(w_hh0.shape)}; a {cell.upper()} needs ({gates}*H, H)"
            )
        else:
            hidden = out_size = int(w_hh0.shape[1])
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
                columns = input_size if layer == 0 else directions * out_size
                expected = {"weight_ih": (rows, columns), "weight_hh": (rows, out_size)}
                if has_bias:
                    expected |= {"bias_ih": (rows,), "bias_hh": (rows,)}
                if has_proj:
                    expected["weight_hr"] = (out_size, hidden)
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
                        w_hr=_frozen(values["weight_hr"]) if has_proj else None,
                    )
                )
            cells.append(tuple(per_direction))
        return cls(cell=cell, cells=tuple(cells), name=name)

    @classmethod
    def from_safetensors(cls, path: str | Path, cell: str = "lstm") -> RNNWeights:
        """From a safetensors file holding a ``state_dict()`` (read with safetensors' NumPy API; no torch)."""
        tensors, _ = read_safetensors(path)
        return cls.from_state_dict(tensors, cell, name=Path(path).stem)

    @classmethod
    def from_torch(cls, module) -> RNNWeights:
        """From a ``torch.nn.LSTM`` or ``torch.nn.GRU`` (any ``num_layers``, ``bidirectional``, ``bias``,
        ``batch_first``, LSTM ``proj_size``)."""
        import torch

        if isinstance(module, torch.nn.LSTM):
            cell = "lstm"
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
            rows, p = layer.gate_rows, layer.proj_size

            def draw(*shape, bound=bound):
                return _frozen(rng.uniform(-bound, bound, size=shape))

            cells.append(tuple(
                CellWeights(draw(rows, layer.input_size), draw(rows, layer.output_size), draw(rows), draw(rows),
                            draw(p, layer.hidden_size) if p else None)
                for _ in range(layer.directions)
            ))
        return cls(cell=model.layers[0].cell, cells=tuple(cells), name=model.name)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The tensors under PyTorch's names (what ``safetensors.numpy.save_file`` writes)."""
        out = {}
        for layer, directions in enumerate(self.cells):
            for d, w in enumerate(directions):
                for kind, value in (("weight_ih", w.w_ih), ("weight_hh", w.w_hh), ("bias_ih", w.b_ih),
                                    ("bias_hh", w.b_hh), ("weight_hr", w.w_hr)):
                    if value is not None:
                        out[_key(kind, layer, d)] = np.array(value)
        return out


def check_runtime_model(model: RNNModel) -> RNNModel:
    """``model`` if one ``torch.nn.LSTM``/``GRU`` can express it (one cell type, hidden size, projection and
    direction count, outputs concatenated); else ``ValueError`` naming the model and the fix (any zoo model
    runs as :class:`~ebatch.runtime.stages.ModelStages`)."""
    fix = "; use ebatch.runtime.ModelStages.random(model) for mixed stacks"
    if model.merge != "concat" or len({layer.cell for layer in model.layers}) != 1 or model.staged_inputs:
        raise ValueError(f"model {model.name!r}: one torch RNN needs one cell type and concatenated outputs{fix}")
    if len({(layer.hidden_size, layer.bidirectional, layer.proj_size) for layer in model.layers}) != 1:
        raise ValueError(f"model {model.name!r}: one torch RNN needs one hidden size and direction count{fix}")
    return model


def _key(kind: str, layer: int, direction: int) -> str:
    return f"{kind}_l{layer}" + ("_reverse" if direction else "")


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, read with NumPy (no torch). Raises ``ValueError`` for a
    missing or unreadable file, or when the safetensors package is not installed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights: file {str(path)!r} does not exist; give a .safetensors file")
    try:
        from safetensors import safe_open
        from safetensors.numpy import load_file
    except ImportError:  # pragma: no cover - safetensors is in the 'safetensors' and 'torch' extras
        raise ValueError("weights: reading safetensors needs the safetensors package (no torch needed); "
                         "pip install 'ebatch[safetensors]'") from None
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except Exception as exc:  # the library raises its own error types for corrupt files
        raise ValueError(f"weights: cannot read {path.name} as safetensors: {exc}") from None
