"""Whole models in safetensors: the tensors of every stage, plus a small JSON description. No pickle, no torch.

The description lists the stages in order; each names its kind and, where it has tensors, the prefix of
their names in the file::

    {"format": 1, "name": "deepspeech2", "stages": [
        {"kind": "rnn", "cell": "gru", "reset_after": true, "prefix": "s0."},   # torch.nn.GRU state_dict names
        {"kind": "sum_directions", "hidden": 1024},
        {"kind": "norm", "layer": false, "eps": 1e-05, "prefix": "s2."},        # scale, shift
        {"kind": "affine", "bias": false, "prefix": "s3."},                     # weight [out, in], bias
        {"kind": "activation", "name": "logsoftmax", "size": 29}]}

It is stored in the file's metadata under ``ebatch.stages`` (:func:`save_stages` writes it there), or in a
sidecar ``<file>.json`` next to it (for files written by other tools). A file with neither is read as one
``torch.nn.LSTM``/``GRU`` ``state_dict()`` (``cell`` says which). Raises ``ValueError`` naming the file and
what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ebatch.runtime.frames import Activation, Affine, Chain, FrameStage, Norm, SumDirections
from ebatch.runtime.stages import ModelStages
from ebatch.runtime.weights import RNNWeights, read_safetensors

__all__ = ["METADATA_KEY", "load_model_file", "load_stages", "save_stages"]

METADATA_KEY = "ebatch.stages"
_FORMAT = 1


def _flat(stage: FrameStage | None) -> list[FrameStage]:
    if stage is None:
        return []
    return list(stage.stages) if isinstance(stage, Chain) else [stage]


def save_stages(stages: ModelStages, path: str | Path) -> Path:
    """Write ``stages`` to ``path`` (safetensors, description in the metadata). Raises ``ValueError`` for a
    stage with no NumPy form (a custom torch module)."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    entries = []

    def add(spec: dict, arrays: dict[str, np.ndarray]) -> None:
        if arrays:
            spec["prefix"] = f"s{len(entries)}."
            tensors.update({spec["prefix"] + k: np.ascontiguousarray(v) for k, v in arrays.items()})
        entries.append(spec)

    for i, rnn in enumerate(stages.rnns):
        for stage in _flat(stages.frames[i]):
            add(stage.spec(), stage.tensors())
        add({"kind": "rnn", "cell": rnn.cell, "reset_after": rnn.reset_after}, rnn.state_dict())
    for stage in _flat(stages.frames[-1]):
        add(stage.spec(), stage.tensors())
    description = {"format": _FORMAT, "name": stages.name, "stages": entries}
    path = Path(path)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(description)})
    return path


def load_stages(path: str | Path, cell: str | None = None) -> ModelStages:
    """The model in ``path``: described stages if the metadata or a sidecar ``.json`` describes them, else one
    RNN ``state_dict`` of ``cell`` (default ``"lstm"``)."""
    path = Path(path)
    tensors, metadata = read_safetensors(path)
    text = metadata.get(METADATA_KEY)
    sidecar = path.with_suffix(path.suffix + ".json")
    if text is None and sidecar.is_file():
        text = sidecar.read_text()
    if text is None:
        return ModelStages.of(RNNWeights.from_state_dict(tensors, cell or "lstm", name=path.stem))
    try:
        description = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: the stage description is not valid JSON ({exc})") from None
    return _build(description, tensors, path.name)


def _build(description: dict, tensors: dict[str, np.ndarray], where: str) -> ModelStages:
    if not isinstance(description, dict) or description.get("format") != _FORMAT:
        raise ValueError(f"{where}: description needs \"format\": {_FORMAT} and a \"stages\" list")
    rnns, frames, pending = [], [], []
    size = None
    for i, spec in enumerate(description.get("stages", [])):
        kind = spec.get("kind") if isinstance(spec, dict) else None
        prefix = spec.get("prefix", "") if isinstance(spec, dict) else ""
        own = {k[len(prefix) :]: v for k, v in tensors.items() if prefix and k.startswith(prefix)}
        try:
            if kind == "rnn":
                rnn = RNNWeights.from_state_dict(own, spec["cell"], name=f"{description.get('name', 'model')}.{i}")
                rnn = dataclasses.replace(rnn, reset_after=bool(spec.get("reset_after", True)))
                frames.append(_chain(pending))
                pending = []
                rnns.append(rnn)
                size = rnn.output_size
                continue
            if kind == "affine":
                stage = Affine(own["weight"], own.get("bias"))
            elif kind == "norm":
                stage = Norm(own["scale"], own["shift"], layer=bool(spec["layer"]), eps=float(spec.get("eps", 1e-5)))
            elif kind == "sum_directions":
                stage = SumDirections(int(spec["hidden"]))
            elif kind == "activation":
                stage = Activation(str(spec["name"]), int(spec["size"]))
            else:
                raise ValueError(f"unknown kind {kind!r}; use rnn, affine, norm, sum_directions or activation")
        except KeyError as exc:
            raise ValueError(f"{where}: stage {i} ({kind}) lacks {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{where}: stage {i} ({kind}): {exc}") from None
        if size is not None and stage.input_size != size:
            raise ValueError(f"{where}: stage {i} ({kind}) takes {stage.input_size} features, but gets {size}")
        pending.append(stage)
        size = stage.output_size
    if not rnns:
        raise ValueError(f"{where}: the description has no stage of kind 'rnn'")
    frames.append(_chain(pending))
    return ModelStages(tuple(rnns), tuple(frames), str(description.get("name", "model")))


def _chain(stages: list[FrameStage]) -> FrameStage | None:
    if not stages:
        return None
    return stages[0] if len(stages) == 1 else Chain(tuple(stages))


def load_model_file(path: str | Path) -> ModelStages:
    """A model file by its suffix: ``.onnx`` (needs the ``onnx`` extra) or ``.safetensors`` (a described whole
    model, or one LSTM ``state_dict``). Raises ``ValueError`` for another suffix or a missing file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file: {str(path)!r} does not exist; give an .onnx or .safetensors file")
    if path.suffix == ".onnx":
        from ebatch.runtime.onnx_import import stages_from_onnx

        return stages_from_onnx(path)
    if path.suffix == ".safetensors":
        return load_stages(path)
    raise ValueError(f"model file: {path.name} is neither .onnx nor .safetensors")
