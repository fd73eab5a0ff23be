"""Every policy's outputs on the real runtime equal torch.nn.LSTM/GRU run on each sequence alone (float32,
within 1e-5), on both executors, for random models and random lengths."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebatch import policies
from ebatch.model import Layer, RNNModel
from ebatch.runtime import Engine, RNNWeights

ATOL = 1e-5
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (the oracle)")
needs_safetensors = pytest.mark.skipif(importlib.util.find_spec("safetensors") is None, reason="needs safetensors")
# "torch-graphs": the torch executor's fixed-shape masked loop (CUDA graphs on a GPU), run eagerly here
BACKENDS = ("numpy", "torch", "compiled", "torch-graphs")


def make_engine(weights: RNNWeights, policy, backend: str) -> Engine:
    """An engine on ``backend``; skips the test when the compiled extension cannot be built here."""
    if backend == "compiled":
        from ebatch.runtime.compiled import CompileUnavailable, load_extension

        try:
            load_extension()
        except CompileUnavailable as exc:
            pytest.skip(f"compiled backend unavailable: {exc}")
    if backend != "torch-graphs":
        engine = Engine(weights, policy=policy, backend=backend)
        assert engine.executor.name == backend
        return engine
    from ebatch.runtime.torch_executor import TorchExecutor

    engine = Engine(weights, policy=policy, backend="torch")
    engine.executor = TorchExecutor(weights, graphs=True)
    return engine


def policy_variants(batch_size: int, timesteps: int) -> list[tuple[str, dict]]:
    """Every registered policy with each of its example parameter sets, batch size and window set here."""
    variants = []
    for name in policies.available():
        for example in policies.get(name).example_params:
            params = dict(example)
            if "batch_size" in params:
                params["batch_size"] = batch_size
            if isinstance(params.get("timesteps"), int):
                params["timesteps"] = timesteps
            variants.append((name, params))
    variants.append(("ebatch", {"batch_size": batch_size, "timesteps": timesteps, "lookahead": 1}))
    return variants


def reference(module, sequences: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        return [module(torch.from_numpy(x))[0].numpy() for x in sequences]


def make_model(cell: str, layers: int, bidirectional: bool, input_size: int, hidden: int) -> RNNModel:
    stack, size = [], input_size
    for _ in range(layers):
        stack.append(Layer(cell, size, hidden, bidirectional))
        size = hidden * (2 if bidirectional else 1)
    return RNNModel("random", tuple(stack))


def check_all(weights: RNNWeights, sequences, batch_size: int, timesteps: int, backend: str) -> int:
    from ebatch.bench.peers import torch_module

    module = torch_module(weights)
    expected = reference(module, sequences)
    runs = 0
    for name, params in policy_variants(batch_size, timesteps):
        engine = make_engine(weights, policies.get(name, **params), backend)
        outputs = engine.run(sequences)
        assert len(outputs) == len(sequences)
        for i, (got, want) in enumerate(zip(outputs, expected)):
            assert got.shape == want.shape, (backend, name, params, i)
            np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{backend} {name} {params} seq {i}")
        stats = engine.stats()
        assert stats["useful_cells"] == sum(len(x) for x in sequences) * weights.model.cells_per_timestep
        assert stats["computed_cells"] == stats["useful_cells"]  # padded cells are skipped
        runs += 1
    return runs


SIZES = st.sampled_from([1, 2, 5, 16, 33, 64])


@needs_torch
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    input_size=SIZES,
    hidden=SIZES,
    lengths=st.lists(st.integers(1, 14), min_size=1, max_size=9),
    batch_size=st.integers(1, 12),
    timesteps=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_every_policy_matches_torch(backend, cell, layers, bidirectional, input_size, hidden, lengths, batch_size,
                                    timesteps, seed):
    weights = RNNWeights.random(make_model(cell, layers, bidirectional, input_size, hidden), seed=seed)
    rng = np.random.default_rng(seed)
    sequences = [rng.standard_normal((n, input_size), dtype=np.float32) for n in lengths]
    assert check_all(weights, sequences, batch_size, timesteps, backend) == len(policy_variants(1, 1))


@needs_torch
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fixed_cases_batch_larger_smaller_and_long_window(backend, cell, bidirectional):
    """B above and below the number of requests, T above every length, length 1, 3 layers."""
    weights = RNNWeights.random(make_model(cell, 3, bidirectional, 7, 9), seed=3)
    rng = np.random.default_rng(1)
    sequences = [rng.standard_normal((n, 7), dtype=np.float32) for n in (1, 13, 2, 30, 1, 8, 17)]
    for batch_size, timesteps in ((3, 4), (10, 64), (1, 1)):
        check_all(weights, sequences, batch_size, timesteps, backend)


@needs_torch
@needs_safetensors
def test_from_torch_module_options_and_safetensors_round_trip(tmp_path):
    import torch
    from safetensors.numpy import save_file

    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, 6), dtype=np.float32) for n in (5, 1, 9)]
    for cls in (torch.nn.LSTM, torch.nn.GRU):
        for kwargs in ({"batch_first": True, "num_layers": 2}, {"bias": False, "bidirectional": True}):
            module = cls(6, 4, **kwargs)
            with torch.no_grad():
                for p in module.parameters():
                    p.copy_(torch.rand(p.shape, generator=gen) - 0.5)
            engine = Engine.from_torch(module, policy="ebatch", batch_size=2, timesteps=3)
            with torch.inference_mode():
                want = [module(torch.from_numpy(x)[None] if kwargs.get("batch_first") else torch.from_numpy(x))[0]
                        for x in sequences]
            want = [w[0].numpy() if kwargs.get("batch_first") else w.numpy() for w in want]
            for got, w in zip(engine.run(sequences), want):
                np.testing.assert_allclose(got, w, rtol=0, atol=ATOL)
            path = tmp_path / f"{cls.__name__}.safetensors"
            save_file({k: v.detach().numpy() for k, v in module.state_dict().items()}, str(path))
            cell = "lstm" if cls is torch.nn.LSTM else "gru"
            loaded = Engine.from_safetensors(path, cell=cell, policy="padding", batch_size=2, backend="torch")
            assert loaded.model.layers == engine.model.layers
            for got, w in zip(loaded.run(sequences), want):
                np.testing.assert_allclose(got, w, rtol=0, atol=ATOL)


@needs_torch
def test_accepts_torch_tensors_and_arrivals():
    import torch

    from ebatch.bench.peers import torch_module

    weights = RNNWeights.random(make_model("lstm", 2, False, 3, 5), seed=0)
    module = torch_module(weights)
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, 3), dtype=np.float32) for n in (4, 7, 2, 9)]
    engine = Engine(weights, policy="ebatch", batch_size=2, timesteps=3)
    outputs = engine.run([torch.from_numpy(x) for x in sequences], arrivals_s=[0.3, 0.0, 0.2, 0.1])
    for got, want in zip(outputs, reference(module, sequences)):
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    stats = engine.stats()
    assert stats["latency_p50_s"] > 0 and stats["steps"] > 0
