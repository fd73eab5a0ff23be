"""The model zoo as torch stages, with random (seeded) weights: what :meth:`Engine.from_torch` takes.

    from ebatch.runtime import Engine
    from ebatch.runtime.zoo import torch_stages
    engine = Engine.from_torch(torch_stages("deepspeech2", seed=0), policy="ebatch", batch_size=8)

Consecutive layers of a zoo model that one ``torch.nn.LSTM``/``GRU`` can express become one module; a
``merge="sum"`` model gets :class:`SumDirections` after each bidirectional layer. ``deepspeech2`` is laid out
as deepspeech.pytorch lays it out after its convolutions: BatchNorm1d (eval mode, random running
statistics) before every GRU layer but the first, and a head of BatchNorm1d, Linear(1024, 29, bias=False)
and LogSoftmax over 29 characters (the CTC head). The convolutional front end that halves the frame rate
mixes time-steps, so it runs before ebatch: inputs are its 1312 features per frame. ``gnmt-enc`` is the
encoder's eight LSTM layers (the first bidirectional, concatenated); GNMT's residual connections from the
third layer on are left out, as the zoo's ``RNNModel`` leaves them out. Needs torch.
"""

from __future__ import annotations

import torch

from ebatch.model import RNNModel, get_model

__all__ = ["CTC_CHARACTERS", "SumDirections", "torch_stages"]

CTC_CHARACTERS = 29  # deepspeech.pytorch's English labels: 26 letters, apostrophe, space, blank


class SumDirections(torch.nn.Module):
    """A bidirectional layer's two halves summed (``[..., 2H] -> [..., H]``), deepspeech.pytorch's merge."""

    sums_directions = True  # ebatch runs it as the NumPy stage ebatch.runtime.frames.SumDirections

    def forward(self, x):
        half = x.shape[-1] // 2
        return x[..., :half] + x[..., half:]


def _groups(model: RNNModel) -> list[list[int]]:
    """Runs of layers one torch RNN module can hold (same cell, size, directions; concatenated outputs)."""
    groups: list[list[int]] = []
    for i, layer in enumerate(model.layers):
        if groups and model.merge == "concat" and i not in model.staged_inputs:
            first = model.layers[groups[-1][0]]
            if (first.cell, first.hidden_size, first.bidirectional, first.proj_size) == (
                    layer.cell, layer.hidden_size, layer.bidirectional, layer.proj_size):
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def _batch_norm(size: int, generator) -> torch.nn.BatchNorm1d:
    norm = torch.nn.BatchNorm1d(size)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.1 * torch.randn(size, generator=generator))
        norm.bias.copy_(0.1 * torch.randn(size, generator=generator))
        norm.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
        norm.running_var.copy_(1 + 0.1 * torch.rand(size, generator=generator))
    return norm.eval()


def torch_stages(model: str | RNNModel, seed: int = 0) -> list[torch.nn.Module]:
    """The zoo model ``model`` as a list of torch modules in eval mode, weights drawn from ``seed``.
    Raises ``ValueError`` for an unknown name."""
    model = get_model(model)
    speech_head = model.name == "deepspeech2"
    generator = torch.Generator().manual_seed(seed)
    stages: list[torch.nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for group in _groups(model):
            layer = model.layers[group[0]]
            if speech_head and group[0] > 0:
                stages.append(_batch_norm(layer.input_size, generator))
            cls = torch.nn.LSTM if layer.cell == "lstm" else torch.nn.GRU
            kwargs = {"proj_size": layer.proj_size} if layer.proj_size else {}
            stages.append(cls(layer.input_size, layer.hidden_size, num_layers=len(group),
                              bidirectional=layer.bidirectional, **kwargs))
            if model.merge == "sum" and layer.bidirectional:
                stages.append(SumDirections())
        if speech_head:
            size = model.output_size_of(model.num_layers - 1)
            stages += [_batch_norm(size, generator), torch.nn.Linear(size, CTC_CHARACTERS, bias=False),
                       torch.nn.LogSoftmax(dim=-1)]
    return [stage.eval() for stage in stages]
