"""Whole models on the runtime: torch stacks with front ends, heads, mixed RNN layers, projections and summed
directions give, per sequence, what the stages give on that sequence alone (float32, within 1e-5), for every
policy and backend; stages run once per step on the frames it finished; the zoo runs; whole models round-trip
through safetensors without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ebatch import policies
from ebatch.model import get_model, model_names
from ebatch.runtime import Engine
from ebatch.runtime.stages import ModelStages

ATOL = 1e-5
BACKENDS = ("numpy", "torch", "compiled", "torch-graphs")


def policy_variants(batch_size: int, timesteps: int) -> list[tuple[str, dict]]:
    """Every registered policy with its example parameter sets (or, where a policy has none, its defaults)."""
    variants = []
    for name in policies.available():
        examples = getattr(policies.get(name), "example_params", None) or [{}]
        for example in examples:
            params = dict(example)
            allowed = policies.parameters(name)
            if "batch_size" in allowed:
                params["batch_size"] = batch_size
            if "timesteps" in allowed and not isinstance(params.get("timesteps"), str):
                params["timesteps"] = timesteps
            variants.append((name, params))
    variants.append(("padding", {"batch_size": batch_size, "sort_window": 2 * batch_size + 1}))
    variants.append(("ebatch", {"batch_size": batch_size, "timesteps": timesteps, "lookahead": 1}))
    return variants


def engine_on(stages, policy, backend: str) -> Engine:
    if backend == "compiled":
        from ebatch.runtime.compiled import CompileUnavailable, load_extension

        try:
            load_extension()
        except CompileUnavailable as exc:
            pytest.skip(f"compiled backend unavailable: {exc}")
    engine = Engine(stages, policy=policy, backend="torch" if backend == "torch-graphs" else backend)
    if backend == "torch-graphs":
        from ebatch.runtime.torch_executor import TorchExecutor

        engine.executor = TorchExecutor(stages, graphs=True)
    return engine


def run_alone(torch, modules, x: np.ndarray) -> np.ndarray:
    """The stages on one sequence, as torch runs them."""
    y = torch.from_numpy(x)
    with torch.inference_mode():
        for m in modules:
            batch_first = getattr(m, "batch_first", False)
            y = m(y[None] if batch_first else y)
            y = y[0] if isinstance(y, tuple) else y
            y = y[0] if batch_first else y
    return y.numpy()


def stacks(torch):
    nn = torch.nn
    return {
        "front-end, projected BiLSTM, LayerNorm, BiGRU, CTC head": [
            nn.Linear(6, 8), nn.ReLU(), nn.LSTM(8, 5, num_layers=2, bidirectional=True, proj_size=3),
            nn.LayerNorm(6), nn.GRU(6, 4, bidirectional=True), nn.Linear(8, 7), nn.LogSoftmax(-1)],
        "GNMT-like: BiLSTM under unidirectional layers of another size, batch_first, no bias": [
            nn.LSTM(6, 4, bidirectional=True), nn.LSTM(8, 7, num_layers=2, batch_first=True, bias=False)],
        "DeepSpeech2-like: summed directions, BatchNorm, GRU then LSTM, a custom position-wise module": [
            nn.GRU(6, 5, bidirectional=True), "sum", nn.BatchNorm1d(5), nn.LSTM(5, 3), Scale()],
    }


class Scale:  # replaced by a torch module in the test (torch is optional at import)
    pass


def build(torch, stack):
    from ebatch.runtime.zoo import SumDirections

    class Scaled(torch.nn.Module):  # an arbitrary module ebatch has no NumPy version of
        def forward(self, x):
            return 2 * torch.sin(x) + 1

    gen = torch.Generator().manual_seed(0)
    modules = [SumDirections() if m == "sum" else Scaled() if isinstance(m, Scale) else m for m in stack]
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.copy_(torch.rand(p.shape, generator=gen) - 0.5)
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen))
                m.running_var.copy_(1 + torch.rand(m.num_features, generator=gen))
    return [m.eval() for m in modules]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("stack", ["front-end", "GNMT-like", "DeepSpeech2-like"])
def test_every_policy_matches_the_stages_on_each_sequence(backend, stack):
    torch = pytest.importorskip("torch")
    name = next(k for k in stacks(torch) if k.startswith(stack))
    modules = build(torch, stacks(torch)[name])
    stages = ModelStages.from_torch(modules)
    rng = np.random.default_rng(1)
    sequences = [rng.standard_normal((n, 6), dtype=np.float32) for n in (3, 11, 1, 17, 6, 2, 9)]
    expected = [run_alone(torch, modules, x) for x in sequences]
    for batch_size, timesteps in ((3, 4), (8, 32)) if backend == "numpy" else ((3, 4),):
        for policy, params in policy_variants(batch_size, timesteps):
            engine = engine_on(stages, policies.get(policy, **params), backend)
            for i, (got, want) in enumerate(zip(engine.run(sequences), expected)):
                assert got.shape == want.shape
                np.testing.assert_allclose(got, want, rtol=0, atol=ATOL, err_msg=f"{name} {policy} {params} seq {i}")


def test_stages_run_once_per_step_on_the_frames_it_finished():
    torch = pytest.importorskip("torch")

    class Counted(torch.nn.Module):
        def __init__(self, in_features):
            super().__init__()
            self.in_features, self.calls, self.frames = in_features, 0, 0

        def forward(self, x):
            self.calls += 1
            self.frames += len(x)
            return torch.tanh(x)

    front, middle, head = Counted(4), Counted(5), Counted(3)
    stages = ModelStages.from_torch([front, torch.nn.LSTM(4, 5), middle, torch.nn.GRU(5, 3), head])
    for stage in stages.frames:  # the copies the engine runs; forget the probe's calls
        stage.module.calls = stage.module.frames = 0
    lengths = [7, 3, 12, 5, 9, 4, 8, 6]
    engine = Engine(stages, policy="ebatch", batch_size=4, timesteps=5, backend="numpy")
    engine.run([np.ones((n, 4), np.float32) for n in lengths])
    steps = engine.stats()["steps"]
    front, middle, head = (stage.module for stage in stages.frames)
    assert front.frames == middle.frames == head.frames == sum(lengths)  # every frame exactly once
    assert middle.calls + head.calls == steps  # one call per step: one per window of each layer
    assert front.calls < len(lengths)  # the requests a step admits go through the front end together


def test_a_bidirectional_layer_feeds_its_stage_only_frames_both_directions_finished():
    torch = pytest.importorskip("torch")
    modules = build(torch, [torch.nn.GRU(6, 5, bidirectional=True), "sum", torch.nn.LSTM(5, 4)])
    stages = ModelStages.from_torch(modules)
    assert stages.model.merge == "sum"
    sequences = [np.random.default_rng(i).standard_normal((n, 6), dtype=np.float32) for i, n in enumerate((9, 4))]
    for bidirectional in ("pack", "stream") if "bidirectional" in policies.parameters("ebatch") else ("pack",):
        extra = {"bidirectional": bidirectional} if bidirectional != "pack" else {}
        engine = Engine(stages, policy="ebatch", batch_size=2, timesteps=3, backend="numpy", **extra)
        for got, x in zip(engine.run(sequences), sequences):
            np.testing.assert_allclose(got, run_alone(torch, modules, x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["deepspeech2", "gnmt-enc"])
def test_zoo_models_as_torch_stages(name):
    torch = pytest.importorskip("torch")
    from ebatch.runtime.zoo import torch_stages

    modules = torch_stages(name, seed=0)
    engine = Engine.from_torch(modules, policy="ebatch", batch_size=2, timesteps=2)
    zoo = get_model(name)
    assert engine.model.layers == zoo.layers and engine.model.merge == zoo.merge
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, zoo.layers[0].input_size), dtype=np.float32) for n in (3, 1, 4)]
    for got, x in zip(engine.run(sequences), sequences):
        np.testing.assert_allclose(got, run_alone(torch, modules, x), rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", model_names())
def test_every_zoo_model_runs_on_the_runtime(name):
    model = get_model(name)
    engine = Engine(ModelStages.random(model, seed=1), policy="cellular", batch_size=2, backend="numpy")
    assert engine.model.layers == model.layers and engine.model.merge == model.merge
    out = engine.run([np.ones((2, model.layers[0].input_size), np.float32)])
    assert out[0].shape == (2, model.output_size_of(model.num_layers - 1)) and np.all(np.isfinite(out[0]))


def test_whole_model_round_trips_through_safetensors_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from ebatch.runtime.stagefile import save_stages

    modules = build(torch, [torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.GRU(4, 5, bidirectional=True), "sum",
                            torch.nn.BatchNorm1d(5), torch.nn.LSTM(5, 6, proj_size=2), torch.nn.LayerNorm(2),
                            torch.nn.Linear(2, 3), torch.nn.Softmax(-1)])
    stages = ModelStages.from_torch(modules)
    path = save_stages(stages, tmp_path / "model.safetensors")
    x = np.random.default_rng(0).standard_normal((7, 6), dtype=np.float32)
    np.save(tmp_path / "want.npy", run_alone(torch, modules, x))
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np\n"
        "from ebatch.runtime import Engine\n"
        f"e = Engine.from_safetensors({str(path)!r}, policy='ebatch', batch_size=2, timesteps=3, backend='numpy')\n"
        f"x, want = np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'want.npy')!r})\n"
        "got = e.run([x, x[:3]])\n"
        "assert np.abs(got[0] - want).max() <= 1e-5, np.abs(got[0] - want).max()\n"
        "assert np.abs(got[1] - e.run([x[:3]])[0]).max() == 0\n"
        "assert e.stages.params == " + str(sum(p.numel() for m in modules for p in m.parameters())) + "\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

    # a file written by another tool: the same description in a sidecar .json
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    from ebatch.runtime.stagefile import METADATA_KEY

    with safe_open(str(path), framework="numpy") as handle:
        (tmp_path / "plain.safetensors.json").write_text(handle.metadata()[METADATA_KEY])
    save_file(load_file(str(path)), str(tmp_path / "plain.safetensors"))
    engine = Engine.from_safetensors(tmp_path / "plain.safetensors", backend="numpy")
    np.testing.assert_allclose(engine.run([x])[0], run_alone(torch, modules, x), rtol=0, atol=ATOL)


def test_cli_describes_a_model_file_and_compares_it(tmp_path, capsys):
    import json

    pytest.importorskip("safetensors")
    from ebatch.cli import main
    from ebatch.model import Layer, RNNModel
    from ebatch.runtime.stagefile import save_stages

    model = RNNModel("mixed", (Layer("gru", 6, 5, True), Layer("lstm", 5, 7, False, 3)), merge="sum")
    path = save_stages(ModelStages.random(model, seed=0), tmp_path / "mixed.safetensors")
    main(["models", "--file", str(path), "--format", "json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert row["input_size"] == 6 and row["output_size"] == 3 and row["rnn_model"]["merge"] == "sum"
    assert row["params"] == model.params and row["stages"][1].startswith("SumDirections")
    main(["compare", "--model", str(path), "--requests", "4", "--policies", "padding,ebatch", "--format", "json",
          "--measured", "numpy"])
    rows = json.loads(capsys.readouterr().out)
    assert [r["policy"] for r in rows] == ["padding", "ebatch"] and all(r["measured"]["throughput_rps"] > 0
                                                                         for r in rows)
