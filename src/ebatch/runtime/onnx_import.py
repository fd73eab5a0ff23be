"""ONNX models in: LSTM and GRU nodes become the runtime's RNN layers, everything around them frame stages.

:func:`stages_from_onnx` (what :meth:`Engine.from_onnx` calls) reads a model (a path or a ``ModelProto``;
needs the ``onnx`` extra) and cuts its graph at the LSTM/GRU nodes, in graph order:

- **RNN nodes**: ``direction`` forward, reverse or bidirectional; ``layout`` 0 or 1; with or without ``B``;
  GRU ``linear_before_reset`` 0 (ONNX's default) or 1 (PyTorch's). Weights (``W``, ``R``, ``B``) must be
  constants (initializers, or computed from them). ``initial_h``/``initial_c`` must be absent or zero (every
  sequence starts from zero); ``sequence_lens`` is ignored (each sequence runs with its own length). A
  ``reverse`` node runs as a bidirectional layer whose forward direction has zero weights and is dropped
  (the policies treat it as bidirectional; it costs twice the cells).
- **Between them**: the glue and position-wise nodes of :mod:`ebatch.runtime.onnx_ops`, run by a small
  interpreter on the frames a step finished (stacked along the time axis, batch 1). Each stretch (graph
  input -> first RNN, RNN -> RNN, last RNN -> first graph output) is checked on a probe: the frames at
  once must equal each frame alone, else the stretch mixes time-steps. A stretch equal to the identity is
  skipped (the next RNN reads the layer's output as it is).
- **Refused, with the node and the attribute named**: peepholes ``P`` (unless zero), ``clip``,
  ``input_forget=1``, activations other than the defaults, non-zero initial states, other RNN operators,
  ops that mix time-steps or that the interpreter does not know, a per-frame output that depends on the
  RNN's final states ``Y_h``/``Y_c``, more than one non-constant graph input.

Other graph outputs than the first are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ebatch.runtime.frames import FrameStage
from ebatch.runtime.onnx_ops import MIXING, OPS, split
from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import CellWeights, RNNWeights

__all__ = ["OnnxFrames", "stages_from_onnx"]

_DEFAULT_ACTIVATIONS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"]}
_TO_TORCH = {"LSTM": [0, 2, 3, 1], "GRU": [1, 0, 2]}  # torch's gate blocks from ONNX's (iofc, zrh)
_PROBE = 13  # frames in a probe; distinct from every other dimension the probes use


def _name(node) -> str:
    return f"node {node.name or node.output[0]!r} ({node.op_type})"


@dataclass(frozen=True, eq=False)
class OnnxFrames(FrameStage):
    """A stretch of an ONNX graph run on frames: from ``source`` (the graph input, or an RNN node's ``Y``)
    to ``target`` (the next RNN node's ``X``, or the graph output)."""

    nodes: tuple
    constants: dict
    source: str
    source_layout: tuple  # ("input", rank, time_axis) or ("rnn", layout, directions, hidden, reverse_only)
    target: str
    target_axis: int  # time axis of the target tensor
    input_size: int
    output_size: int = 0

    def numpy(self, x: np.ndarray) -> np.ndarray:
        return _to_frames(self.evaluate(x), self.target_axis)

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        values = dict(self.constants)
        values[self.source] = _from_frames(np.asarray(x, dtype=np.float32), self.source_layout)
        for node in self.nodes:
            _run(node, values)
        return values[self.target]


def _from_frames(x: np.ndarray, layout: tuple) -> np.ndarray:
    n = len(x)
    if layout[0] == "input":
        _, rank, axis = layout
        shape = [1] * rank
        shape[axis], shape[-1] = n, x.shape[1]
        return x.reshape(shape)
    _, rnn_layout, directions, hidden, reverse_only = layout
    if reverse_only:
        x = x[:, hidden:]
    y = x.reshape(n, directions, 1, hidden)  # [T, D, N, H]
    return y if rnn_layout == 0 else y.transpose(2, 0, 1, 3)  # [N, T, D, H]


def _to_frames(y: np.ndarray, axis: int) -> np.ndarray:
    y = np.moveaxis(np.asarray(y), axis, 0)
    return np.ascontiguousarray(y.reshape(len(y), -1), dtype=np.float32)


def _attrs(node) -> dict:
    from onnx import helper

    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if hasattr(value, "dims"):  # a TensorProto (Constant, ConstantOfShape)
            from onnx import numpy_helper

            value = numpy_helper.to_array(value)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _run(node, values: dict) -> None:
    attrs = _attrs(node)
    inputs = [values.get(name) if name else None for name in node.input]
    if node.op_type == "Constant":
        outputs = [np.asarray(next(iter(attrs.values())))]
    elif node.op_type == "Split":
        outputs = split(inputs, attrs, len(node.output))
    else:
        outputs = OPS[node.op_type](inputs, attrs)
    for name, value in zip(node.output, outputs):
        if name:
            values[name] = np.asarray(value)


def stages_from_onnx(model) -> ModelStages:
    """:class:`ModelStages` of an ONNX model (path or ``ModelProto``); see the module docstring."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ValueError("reading ONNX needs the onnx package: pip install 'ebatch[onnx]'") from None
    name = "onnx"
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise ValueError(f"model: file {str(path)!r} does not exist; give an .onnx file")
        name = path.stem
        try:
            model = onnx.load(str(path))
        except Exception as exc:
            raise ValueError(f"model: cannot read {path.name} as ONNX: {exc}") from None
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise ValueError(f"graph inputs: expected one (the features), got {[i.name for i in inputs]}; make weights "
                         "initializers")
    source = inputs[0].name
    rank = len(inputs[0].type.tensor_type.shape.dim)
    if rank not in (2, 3):
        raise ValueError(f"graph input {source!r}: rank {rank}; expected [time, batch, features], [batch, time, "
                         "features] or [time, features]")
    # fold constants: every node whose inputs are all known without the graph input
    for node in graph.node:
        known = all(not i or i in constants for i in node.input)
        if known and (node.op_type in OPS or node.op_type in ("Constant", "Split")):
            _run(node, constants)
    rnn_nodes = [n for n in graph.node if n.op_type in ("LSTM", "GRU")]
    for node in graph.node:
        if node.op_type == "RNN":
            raise ValueError(f"{_name(node)}: the plain RNN operator is not supported; use LSTM or GRU")
    if not rnn_nodes:
        raise ValueError("graph: no LSTM or GRU node; ebatch batches recurrent layers")
    producer = {out: node for node in graph.node for out in node.output if out}
    rnns, frames = [], []
    src, src_layout = source, None
    size = None
    for k, node in enumerate(rnn_nodes + [None]):
        target = node.input[0] if node is not None else graph.output[0].name
        stretch = _stretch(target, src, producer, constants)
        if src_layout is None:  # the graph input's time axis: the one that reaches the RNN's time axis
            src_layout, size = _input_layout(inputs[0], rank, stretch, src, target, constants, node)
            frames_layout_of_input, input_size = src_layout, size
        target_axis = (1 if _int_attr(node, "layout") else 0) if node is not None else None
        stage = _frames_stage(stretch, constants, src, src_layout, target, target_axis, size, k)
        frames.append(stage)
        if node is None:
            break

        def auxiliary(tensor: str, input_layout=frames_layout_of_input, input_size=input_size) -> np.ndarray:
            """A tensor computed from the graph (exporters build zero initial states from shapes)."""
            values = dict(constants)
            values[source] = _from_frames(np.ones((_PROBE, input_size), np.float32), input_layout)
            return _evaluate_shapes(graph, tensor, values)

        rnn, reverse_only = _rnn_weights(node, constants, f"{name}.{k}", auxiliary)
        if stage is not None:
            size = stage.output_size
        if rnn.input_size != size:
            raise ValueError(f"{_name(node)}: input W takes {rnn.input_size} features, but gets {size}")
        rnns.append(rnn)
        hidden = rnn.hidden_size
        directions = 1 if reverse_only else len(rnn.cells[0])
        src = node.output[0] if node.output else ""  # "": Y not produced; a stretch reading Y_h is refused
        src_layout = ("rnn", _int_attr(node, "layout"), directions, hidden, reverse_only)
        size = rnn.output_size
    return ModelStages(tuple(rnns), tuple(frames), name)


def _evaluate_shapes(graph, tensor: str, values: dict) -> np.ndarray:
    """``tensor`` evaluated with every RNN node's outputs replaced by ones of their shapes: what an initial
    state built from shapes (zeros) comes out as; one built from data comes out non-zero."""
    for node in graph.node:
        if tensor in values:
            break
        if any(i and i not in values for i in node.input[:1]):
            continue
        if node.op_type in ("LSTM", "GRU"):
            x, layout = values[node.input[0]], _int_attr(node, "layout")
            d = 2 if _attrs(node).get("direction") == "bidirectional" else 1
            t, n = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
            h = int(_attrs(node)["hidden_size"])
            shapes = [(t, d, n, h), (d, n, h), (d, n, h)] if layout == 0 else [(n, t, d, h), (n, d, h), (n, d, h)]
            for name, shape in zip(node.output, shapes):
                if name:
                    values[name] = np.ones(shape, np.float32)
        elif (node.op_type in OPS or node.op_type in ("Constant", "Split")) and all(
                not i or i in values for i in node.input):
            _run(node, values)
    return values[tensor]


def _int_attr(node, key: str, default: int = 0) -> int:
    for a in node.attribute:
        if a.name == key:
            return int(a.i)
    return default


def _stretch(target: str, source: str, producer: dict, constants: dict) -> tuple:
    """The nodes computing ``target`` from ``source`` (and constants), in graph order."""
    needed, order, stack = set(), [], [target]
    while stack:
        name = stack.pop()
        if name == source or name in constants or name in needed or not name:
            continue
        node = producer.get(name)
        if node is None:
            raise ValueError(f"tensor {name!r}: needed per frame, but it is a graph input other than the features")
        if node.op_type in ("LSTM", "GRU"):
            what = "its final state" if name != node.output[0] else "the output of an earlier RNN node"
            raise ValueError(f"{_name(node)}: the per-frame path to {target!r} uses {what} ({name!r}); ebatch "
                             "runs a chain of RNN nodes whose per-frame outputs feed the next")
        if node.op_type in MIXING:
            raise ValueError(f"{_name(node)}: mixes time-steps; run it before or after ebatch")
        if node.op_type not in OPS and node.op_type not in ("Constant", "Split"):
            raise ValueError(f"{_name(node)}: op {node.op_type} is not supported between RNN nodes (ebatch runs "
                             "glue and position-wise ops: see ebatch.runtime.onnx_ops)")
        needed.add(name)
        order.append(node)
        stack.extend(node.input)
    seen, nodes = set(), []
    for node in reversed(order):
        if id(node) not in seen:
            seen.add(id(node))
            nodes.append(node)
    position = {id(n): i for i, n in enumerate(producer.values())}
    return tuple(sorted(nodes, key=lambda n: position.get(id(n), 0)))


def _input_layout(graph_input, rank: int, stretch, source: str, target: str, constants: dict, node) -> tuple:
    dims = graph_input.type.tensor_type.shape.dim
    features = dims[-1].dim_value
    if not features:
        raise ValueError(f"graph input {source!r}: the feature dimension (last) must be fixed")
    candidates = [0] if rank == 2 else [0, 1]
    want = (1 if _int_attr(node, "layout") else 0) if node is not None else None
    for axis in candidates:
        stage = OnnxFrames(stretch, constants, source, ("input", rank, axis), target, 0, features)
        try:
            y = stage.evaluate(np.zeros((_PROBE, features), np.float32))
        except Exception:
            continue
        if want is None or (y.ndim == 3 and y.shape[want] == _PROBE and y.shape[1 - want] == 1):
            return ("input", rank, axis), features
    raise ValueError(f"graph input {source!r}: cannot tell its time axis (no layout of [time, batch, features] "
                     "reaches the first RNN node's X with time where its layout attribute says)")


def _frames_stage(stretch, constants, source, layout, target, target_axis, size, k) -> FrameStage | None:
    where = "the graph input" if k == 0 else f"RNN node {k - 1}"
    stage = OnnxFrames(stretch, constants, source, layout, target, 0, size)
    rng = np.random.default_rng(k)
    probe = rng.standard_normal((_PROBE, size)).astype(np.float32)
    try:
        y = stage.evaluate(probe)
        if target_axis is None:  # the graph output: the axis holding the frames
            other = stage.evaluate(probe[:7])
            axes = [a for a in range(y.ndim) if y.shape[a] == _PROBE and other.shape[a] == 7]
            if len(axes) != 1:
                ops = ", ".join(sorted({n.op_type for n in stretch}))
                raise ValueError(f"output {target!r}: shape {list(y.shape)} for {_PROBE} frames, no axis holds the "
                                 f"frames: the nodes after {where} (ops: {ops}) mix time-steps or drop the time axis")
            target_axis = axes[0]
        stage = OnnxFrames(stretch, constants, source, layout, target, target_axis, size)
        whole = stage.numpy(probe)
        alone = np.concatenate([stage.numpy(probe[i : i + 1]) for i in range(_PROBE)])
    except ValueError:
        raise
    except Exception as exc:
        ops = ", ".join(sorted({n.op_type for n in stretch})) or "none"
        raise ValueError(f"the nodes after {where} (ops: {ops}) cannot run on frames: {exc}") from None
    if whole.shape != alone.shape or not np.allclose(whole, alone, rtol=1e-4, atol=1e-5):
        ops = ", ".join(sorted({n.op_type for n in stretch}))
        raise ValueError(f"the nodes after {where} (ops: {ops}) mix time-steps; ebatch runs position-wise ops only")
    stage = OnnxFrames(stretch, constants, source, layout, target, target_axis, size, int(whole.shape[1]))
    if whole.shape == probe.shape and np.array_equal(whole, probe):
        return None  # the identity: the next stage reads the frames as they are
    return stage


def _rnn_weights(node, constants: dict, name: str, auxiliary) -> tuple[RNNWeights, bool]:
    attrs = _attrs(node)
    op = node.op_type
    for key in ("clip",):
        if key in attrs:
            raise ValueError(f"{_name(node)}: attribute {key} is not supported; export without clipping")
    if attrs.get("input_forget", 0):
        raise ValueError(f"{_name(node)}: attribute input_forget=1 (coupled input and forget gates) is not "
                         "supported")
    acts = [a.lower() for a in attrs.get("activations", [])]
    direction = attrs.get("direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    if acts and acts != _DEFAULT_ACTIVATIONS[op] * directions:
        raise ValueError(f"{_name(node)}: attribute activations={attrs['activations']} is not supported; only "
                         f"the defaults {_DEFAULT_ACTIVATIONS[op]}")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"{_name(node)}: attribute direction={direction!r}; use forward, reverse or bidirectional")

    def const(index: int, label: str):
        if len(node.input) <= index or not node.input[index]:
            return None
        value = constants.get(node.input[index])
        if value is None and label in ("initial_h", "initial_c"):
            try:
                value = auxiliary(node.input[index])
            except Exception:
                value = None
        if value is None:
            raise ValueError(f"{_name(node)}: input {label} ({node.input[index]!r}) must be a constant "
                             "(an initializer)")
        return np.asarray(value, dtype=np.float32)

    w, r, b = const(1, "W"), const(2, "R"), const(3, "B")
    for index, label in ((5, "initial_h"), (6, "initial_c"), (7, "P")):
        value = const(index, label) if len(node.input) > index and node.input[index] else None
        if value is not None and np.any(value != 0):
            what = "peepholes" if label == "P" else "a non-zero initial state"
            raise ValueError(f"{_name(node)}: input {label}: {what} is not supported (every sequence starts "
                             "from zero)")
    hidden = int(attrs.get("hidden_size", r.shape[-1]))
    gates = 4 if op == "LSTM" else 3
    if w.shape[0] != directions or w.shape[1] != gates * hidden or r.shape[1:] != (gates * hidden, hidden):
        raise ValueError(f"{_name(node)}: W {list(w.shape)} / R {list(r.shape)} do not fit hidden_size {hidden}, "
                         f"{directions} direction(s)")
    order = np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in _TO_TORCH[op]])
    cells = []
    for d in range(directions):
        bias = np.zeros(2 * gates * hidden, np.float32) if b is None else b[d]
        cells.append(CellWeights(w[d][order], r[d][order], bias[: gates * hidden][order],
                                 bias[gates * hidden :][order]))
    reverse_only = direction == "reverse"
    if reverse_only:  # a bidirectional layer whose forward direction is zero (and dropped by the next stage)
        zero = CellWeights(*(np.zeros_like(a) for a in (cells[0].w_ih, cells[0].w_hh, cells[0].b_ih, cells[0].b_hh)))
        cells = [zero, cells[0]]
    reset_after = op == "LSTM" or bool(attrs.get("linear_before_reset", 0))
    cell = "lstm" if op == "LSTM" else "gru"
    return RNNWeights(cell, (tuple(cells),), name, reset_after=reset_after), reverse_only
