"""NumPy versions of the ONNX operators ebatch runs between, before and after the RNN nodes.

Two kinds: the reshaping glue exporters emit (Transpose, Squeeze, Unsqueeze, Reshape, Concat, Split, Slice,
Gather, Shape, Cast, Constant, ConstantOfShape, Expand, Identity, Dropout) and position-wise arithmetic
(MatMul, Gemm, Add, Sub, Mul, Div, Sum, Neg, Relu, LeakyRelu, Tanh, Sigmoid, Exp, Log, Sqrt, Pow, Erf,
Softmax, LogSoftmax, LayerNormalization, Clip, ReduceMean, ReduceSum). :data:`OPS` maps an op type to
``f(inputs, attrs) -> outputs`` (``Split`` is :func:`split`); ``attrs`` is the node's attributes as Python
values. :data:`MIXING` lists op types that combine time-steps (refused with that reason). Whether a whole
stretch of glue keeps time-steps apart is checked by :mod:`ebatch.runtime.onnx_import` on a probe.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MIXING", "OPS", "split"]

MIXING = frozenset({
    "Conv", "ConvTranspose", "ConvInteger", "AveragePool", "MaxPool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "CumSum", "Scan", "Loop", "If", "RNN", "Attention", "MultiHeadAttention", "ReverseSequence",
    "TopK", "NonMaxSuppression", "BatchNormalization", "InstanceNormalization", "GroupNormalization",
})


def _axes(inputs: list, attrs: dict, index: int = 1):
    if len(inputs) > index and inputs[index] is not None:
        return [int(a) for a in np.asarray(inputs[index]).reshape(-1)]
    value = attrs.get("axes")
    return None if value is None else [int(a) for a in value]


def _squeeze(inputs, attrs):
    x, axes = inputs[0], _axes(inputs, attrs)
    return [np.squeeze(x, axis=tuple(axes)) if axes else np.squeeze(x)]


def _unsqueeze(inputs, attrs):
    x, axes = inputs[0], _axes(inputs, attrs)
    rank = x.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        x = np.expand_dims(x, a)
    return [x]


def _reshape(inputs, attrs):
    x, shape = inputs[0], [int(s) for s in np.asarray(inputs[1]).reshape(-1)]
    if not attrs.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def split(inputs: list, attrs: dict, n_out: int) -> list:
    """ONNX ``Split`` (the one op whose output count is the node's)."""
    x, axis = inputs[0], int(attrs.get("axis", 0))
    sizes = inputs[1] if len(inputs) > 1 and inputs[1] is not None else attrs.get("split")
    if sizes is None:
        per = math.ceil(x.shape[axis] / n_out)
        sizes = [per] * (n_out - 1) + [x.shape[axis] - per * (n_out - 1)]
    return np.split(x, np.cumsum([int(s) for s in sizes])[:-1], axis=axis)


def _slice(inputs, attrs):
    x = inputs[0]
    if len(inputs) > 1:
        starts, ends = np.asarray(inputs[1]).reshape(-1), np.asarray(inputs[2]).reshape(-1)
        axes = np.asarray(inputs[3]).reshape(-1) if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
        steps = np.asarray(inputs[4]).reshape(-1) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    else:  # opset < 10: attributes
        starts, ends = attrs["starts"], attrs["ends"]
        axes, steps = attrs.get("axes", range(len(starts))), [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        big = np.iinfo(np.int64).max // 2
        index[int(a)] = slice(int(max(min(s, big), -big)), int(max(min(e, big), -big)), int(st))
    return [x[tuple(index)]]


def _gemm(inputs, attrs):
    a, b = inputs[0], inputs[1]
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    y = float(attrs.get("alpha", 1.0)) * (a @ b)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + float(attrs.get("beta", 1.0)) * inputs[2]
    return [y]


def _softmax(inputs, attrs, log):
    x, axis = inputs[0], int(attrs.get("axis", -1))
    shifted = x - x.max(axis=axis, keepdims=True)
    total = np.exp(shifted).sum(axis=axis, keepdims=True)
    return [shifted - np.log(total) if log else np.exp(shifted) / total]


def _layer_norm(inputs, attrs):
    x, axis, eps = inputs[0], int(attrs.get("axis", -1)), float(attrs.get("epsilon", 1e-5))
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps) * inputs[1]
    return [y + inputs[2] if len(inputs) > 2 and inputs[2] is not None else y]


def _reduce(inputs, attrs, fn):
    axes = _axes(inputs, attrs)
    keep = bool(attrs.get("keepdims", 1))
    return [fn(inputs[0], axis=None if not axes else tuple(axes), keepdims=keep)]


def _shape(inputs, attrs):
    shape = np.array(inputs[0].shape, dtype=np.int64)
    return [shape[attrs.get("start", 0) : attrs.get("end", None)]]


def _constant_of_shape(inputs, attrs):
    value = attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return [np.full([int(s) for s in np.asarray(inputs[0]).reshape(-1)], fill[0], dtype=fill.dtype)]


def _cast(inputs, attrs):
    from onnx import helper

    return [inputs[0].astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))]


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float32])(x)


def _unary(fn):
    return lambda inputs, attrs: [fn(inputs[0])]


def _binary(fn):
    return lambda inputs, attrs: [fn(inputs[0], inputs[1])]


OPS = {
    "Identity": lambda i, a: [i[0]],
    "Dropout": lambda i, a: [i[0]],
    "Transpose": lambda i, a: [np.transpose(i[0], a.get("perm"))],
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Reshape": _reshape,
    "Flatten": lambda i, a: [i[0].reshape(int(np.prod(i[0].shape[: a.get("axis", 1)])), -1)],
    "Concat": lambda i, a: [np.concatenate([x for x in i if x is not None], axis=int(a["axis"]))],
    "Slice": _slice,
    "Gather": lambda i, a: [np.take(i[0], i[1], axis=int(a.get("axis", 0)))],
    "Shape": _shape,
    "Cast": _cast,
    "ConstantOfShape": _constant_of_shape,
    "Expand": lambda i, a: [i[0] * np.ones([int(s) for s in np.asarray(i[1]).reshape(-1)], dtype=i[0].dtype)],
    "MatMul": _binary(np.matmul),
    "Gemm": _gemm,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(np.divide),
    "Pow": _binary(np.power),
    "Sum": lambda i, a: [sum(i[1:], i[0])],
    "Neg": _unary(np.negative),
    "Relu": _unary(lambda x: np.maximum(x, 0)),
    "LeakyRelu": lambda i, a: [np.where(i[0] >= 0, i[0], float(a.get("alpha", 0.01)) * i[0])],
    "Tanh": _unary(np.tanh),
    "Sigmoid": _unary(lambda x: 1 / (1 + np.exp(-x))),
    "Exp": _unary(np.exp),
    "Log": _unary(np.log),
    "Sqrt": _unary(np.sqrt),
    "Erf": _unary(_erf),
    "Softmax": lambda i, a: _softmax(i, a, log=False),
    "LogSoftmax": lambda i, a: _softmax(i, a, log=True),
    "LayerNormalization": _layer_norm,
    "Clip": lambda i, a: [np.clip(i[0], i[1] if len(i) > 1 and i[1] is not None else a.get("min", -np.inf),
                                  i[2] if len(i) > 2 and i[2] is not None else a.get("max", np.inf))],
    "ReduceMean": lambda i, a: _reduce(i, a, np.mean),
    "ReduceSum": lambda i, a: _reduce(i, a, np.sum),
}
