"""Bad input to the runtime: clear ValueErrors naming the sequence or tensor; per-sequence errors on request."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ebatch import policies
from ebatch.model import get_model
from ebatch.runtime import Engine, RNNWeights, SequenceError

MODEL = get_model("tiny-lstm")  # 2 LSTM layers of 16, 8 inputs


@pytest.fixture(scope="module")
def engine():
    return Engine(RNNWeights.random(MODEL, seed=0), policy="ebatch", batch_size=2, timesteps=3)


def good(n=4):
    return np.linspace(-1, 1, n * 8, dtype=np.float32).reshape(n, 8)


BAD = [
    (np.ones((3, 7), np.float32), "7 features per time-step, the model expects 8"),
    (np.full((3, 8), np.nan, np.float32), "NaN or inf"),
    (np.concatenate([good(2), np.full((1, 8), np.inf, np.float32)]), r"NaN or inf \(first at time-step 2\)"),
    (np.zeros((0, 8), np.float32), "empty"),
    (np.array([["a"] * 8] * 2), "dtype <U1 is not a real number type"),
    (np.ones((2, 8), dtype=bool), "dtype bool"),
    (np.ones((2, 8), dtype=complex), "complex128"),
    (np.ones(8, np.float32), r"shape \(8,\); expected \[length, 8\]"),
    (np.full((2, 8), 1e300), "overflows float32"),
]


@pytest.mark.parametrize("bad, message", BAD)
def test_bad_sequence_raises_naming_its_index(engine, bad, message):
    with pytest.raises(ValueError, match=f"sequence 1: .*{message}") as info:
        engine.run([good(), bad, good()])
    assert isinstance(info.value, SequenceError) and info.value.index == 1


def test_errors_return_keeps_the_other_results(engine):
    clean = engine.run([good(3), good(5)])
    mixed = engine.run([good(3), np.ones((2, 7), np.float32), np.zeros((0, 8)), good(5)], errors="return")
    assert isinstance(mixed[1], SequenceError) and mixed[1].index == 1
    assert isinstance(mixed[2], SequenceError) and "empty" in str(mixed[2])
    np.testing.assert_array_equal(mixed[0], clean[0])
    np.testing.assert_array_equal(mixed[3], clean[1])
    assert engine.stats()["failed"] == 2
    everything_bad = engine.run([np.ones((2, 7))], errors="return")
    assert isinstance(everything_bad[0], SequenceError)


def test_integer_features_are_accepted(engine):
    out = engine.run([np.ones((3, 8), dtype=np.int32)])
    assert out[0].shape == (3, 16) and out[0].dtype == np.float32


def test_bad_arguments(engine):
    with pytest.raises(ValueError, match="errors: must be 'raise' or 'return'"):
        engine.run([good()], errors="ignore")
    with pytest.raises(ValueError, match="arrivals_s: need 2"):
        engine.run([good(), good()], arrivals_s=[0.0])
    weights = RNNWeights.random(MODEL)
    with pytest.raises(ValueError, match="unknown policy 'fifo'"):
        Engine(weights, policy="fifo")
    with pytest.raises(ValueError, match="unknown parameter 'window'"):
        Engine(weights, policy="padding", window=3)
    with pytest.raises(ValueError, match="device: the compiled backend runs on the CPU only"):
        Engine(weights, backend="compiled", device="cuda")
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        Engine(weights, backend="jax")
    with pytest.raises(ValueError, match="only be given with a policy name"):
        Engine(weights, policy=policies.get("cellular"), sort_window=3)
    # batch_size/timesteps go only to policies that take them
    assert Engine(weights, policy="sequential", batch_size=4).policy.params() == {}
    assert Engine(weights, policy="padding", batch_size=4, timesteps=9).policy.params()["batch_size"] == 4


# ---- weights files -----------------------------------------------------------------------------------

needs_safetensors = pytest.mark.skipif(importlib.util.find_spec("safetensors") is None, reason="needs safetensors")


def state(cell="lstm", layers=2, bidirectional=False):
    from ebatch.model import Layer, RNNModel

    size, stack = 5, []
    for _ in range(layers):
        stack.append(Layer(cell, size, 3, bidirectional))
        size = 3 * (2 if bidirectional else 1)
    return RNNWeights.random(RNNModel("m", tuple(stack)), seed=1).state_dict()


def save(tmp_path, tensors, name="w.safetensors"):
    from safetensors.numpy import save_file

    path = tmp_path / name
    save_file(tensors, str(path))
    return path


@needs_safetensors
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.pop("weight_hh_l1"), "missing tensor 'weight_hh_l1'"),
        (lambda t: t.pop("bias_ih_l0_reverse"), "missing tensor 'bias_ih_l0_reverse'"),
        (lambda t: t.update(weight_ih_l1=np.zeros((12, 5), np.float32)), r"tensor 'weight_ih_l1': shape \(12, 5\)"),
        (lambda t: t.update(bias_hh_l0=np.zeros(11, np.float32)), r"tensor 'bias_hh_l0': shape \(11,\)"),
        (lambda t: t.update(weight_hh_l0=np.zeros((10, 3), np.float32)), "tensor 'weight_hh_l0': shape"),
        (lambda t: t.update(weight_ih_l0=np.full((12, 5), np.nan, np.float32)), "'weight_ih_l0': contains NaN"),
        (lambda t: t.update(extra=np.zeros(2, np.float32)), "tensor 'extra': not a tensor of torch.nn.LSTM"),
        (lambda t: t.update(weight_hr_l0=np.zeros((2, 3), np.float32)), "missing tensor 'weight_hr_l0_reverse'"),
        (lambda t: [t.pop(k) for k in list(t) if k != "bias_ih_l0"], "missing tensor 'weight_ih_l0'"),
    ],
)
def test_safetensors_with_bad_tensors(tmp_path, edit, message):
    tensors = state(bidirectional=True)
    edit(tensors)
    path = save(tmp_path, tensors)
    with pytest.raises(ValueError, match=message):
        Engine.from_safetensors(path, cell="lstm")


@needs_safetensors
def test_safetensors_file_problems(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        Engine.from_safetensors(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ValueError, match="cannot read junk.safetensors"):
        Engine.from_safetensors(junk)
    path = save(tmp_path, state("gru"))
    with pytest.raises(ValueError, match=r"a LSTM needs \(4\*H, H\)"):
        Engine.from_safetensors(path, cell="lstm")  # GRU weights read as LSTM
    with pytest.raises(ValueError, match="unknown cell 'rnn'"):
        Engine.from_safetensors(path, cell="rnn")
    engine = Engine.from_safetensors(path, cell="gru", policy="cellular", batch_size=2)
    assert [layer.cell for layer in engine.model.layers] == ["gru", "gru"]
    assert engine.run([np.ones((2, 5), np.float32)])[0].shape == (2, 3)


def test_from_torch_rejects_stages_that_are_not_position_wise():
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="no nn.LSTM or nn.GRU among them"):
        Engine.from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="is not a torch.nn.Module"):
        Engine.from_torch([torch.nn.LSTM(3, 4), "relu"])
    with pytest.raises(ValueError, match=r"stage 1 \(Linear\): takes 5 features, but gets 4"):
        Engine.from_torch([torch.nn.LSTM(3, 4), torch.nn.Linear(5, 2)])
    with pytest.raises(ValueError, match=r"stage 2 \(GRU\): input_size 3, but the stage before it outputs 4"):
        Engine.from_torch([torch.nn.LSTM(3, 4), torch.nn.Tanh(), torch.nn.GRU(3, 4)])

    class Smooth(torch.nn.Module):  # mixes neighbouring time-steps
        def forward(self, x):
            return x + torch.roll(x, 1, dims=0)

    with pytest.raises(ValueError, match=r"stage 1 \(Smooth\): is not position-wise"):
        Engine.from_torch([torch.nn.LSTM(3, 4), Smooth()])
    with pytest.raises(ValueError, match=r"stage 1 \(Conv1d\): cannot be applied to frames \[length, 4\]"):
        Engine.from_torch([torch.nn.LSTM(3, 4), torch.nn.Conv1d(4, 4, 3)])
    with pytest.raises(ValueError, match=r"stage 1 \(BatchNorm1d\): cannot be applied"):
        Engine.from_torch([torch.nn.LSTM(3, 4), torch.nn.BatchNorm1d(4, track_running_stats=False)])
