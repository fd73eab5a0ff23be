"""The compiled backend and the fixed-shape (CUDA-graph) path beyond the correctness suite: hand-made steps
that are not row-regular, the choice of the default backend, the fallback with its one-line warning when
the extension cannot be built, and where builds are cached."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from ebatch.model import Layer, RNNModel
from ebatch.runtime import Engine, NumpyExecutor, RNNWeights
from ebatch.runtime.compiled import build_info, cache_dir
from ebatch.runtime.plan import StepPlan
from ebatch.step import BatchStep


def step(layer, direction, width, slots, segments):
    rows, cols, reqs, starts, lengths, resets = zip(*segments)
    return BatchStep(layer, direction, width, slots, rows, cols, reqs, starts, lengths, resets)


def compiled_or_skip(weights):
    pytest.importorskip("torch")
    from ebatch.runtime.compiled import CompileUnavailable
    from ebatch.runtime.compiled_executor import CompiledExecutor

    try:
        return CompiledExecutor(weights)
    except CompileUnavailable as exc:
        pytest.skip(f"compiled backend unavailable: {exc}")


def graph_executor(weights):
    pytest.importorskip("torch")
    from ebatch.runtime.torch_executor import TorchExecutor

    return TorchExecutor(weights, graphs=True)


STEPS = [  # request 0 moves rows within a step; request 1 starts after it; a gap in a row
    [(0, 0, 2, 3, [(2, 0, 0, 0, 2, True)])],
    [(0, 0, 8, 3, [(0, 0, 0, 2, 2, False), (1, 2, 0, 4, 3, False), (0, 6, 1, 0, 2, True)])],
]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("make", [compiled_or_skip, graph_executor], ids=["compiled", "torch-graphs"])
def test_hand_made_steps_match_numpy(cell, make):
    weights = RNNWeights.random(RNNModel("t", (Layer(cell, 3, 21),)), seed=5)
    rng = np.random.default_rng(1)
    xs = {0: rng.standard_normal((7, 3), dtype=np.float32), 1: rng.standard_normal((2, 3), dtype=np.float32)}
    executors = [NumpyExecutor(weights), make(weights)]
    for ex in executors:
        for r, x in xs.items():
            ex.add(r, x)
    steps = [step(*args[:4], args[4]) for group in STEPS for args in group]
    assert StepPlan.build(steps[0]).row_regular and not StepPlan.build(steps[1]).row_regular
    for s in steps:
        done = [sorted(ex.execute(s)) for ex in executors]
        assert done[0] == done[1]
    for r in xs:
        np.testing.assert_allclose(executors[1].pop_result(r), executors[0].pop_result(r), rtol=0, atol=1e-5)
    if hasattr(executors[1], "graph"):
        assert executors[1].graph.runs == 1  # the row-regular step ran as the fixed-shape loop, the other did not


def test_auto_backend_is_the_fastest_installed():
    weights = RNNWeights.random(RNNModel("t", (Layer("lstm", 3, 4),)))
    executor = Engine(weights).executor
    try:
        import torch  # noqa: F401
    except ImportError:
        assert executor.name == "numpy"
        return
    from ebatch.runtime.compiled import CompileUnavailable, load_extension

    try:
        load_extension()
        assert executor.name == "compiled"
    except CompileUnavailable:
        assert executor.name == "torch"
    code = ("import sys; sys.modules['torch'] = None\n"
            "from ebatch.runtime import Engine, RNNWeights\nfrom ebatch.model import get_model\n"
            "print(Engine(RNNWeights.random(get_model('tiny-gru'))).executor.name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"


@pytest.mark.parametrize("env", [{"EBATCH_COMPILED": "0"}, {"CXX": "false"}], ids=["disabled", "build-fails"])
def test_fallback_to_torch_with_a_one_line_warning(tmp_path, env):
    pytest.importorskip("torch")
    code = ("from ebatch.runtime import Engine, RNNWeights\nfrom ebatch.model import get_model\n"
            "import numpy as np\n"
            "e = Engine(RNNWeights.random(get_model('tiny-lstm')), backend='compiled', batch_size=2)\n"
            "print(e.executor.name, e.run([np.ones((3, 8), np.float32)])[0].shape)")
    full_env = os.environ | {"EBATCH_EXTENSIONS_DIR": str(tmp_path / "cache")} | env
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "torch (3, 16)"
    warning = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and "compiled backend unavailable" in warning[0], out.stderr
    assert "using the torch executor" in warning[0]


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("EBATCH_EXTENSIONS_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "ebatch" / "extensions"
    monkeypatch.setenv("EBATCH_EXTENSIONS_DIR", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"


def test_build_is_timed_and_cached():
    weights = RNNWeights.random(RNNModel("t", (Layer("gru", 3, 4),)))
    compiled_or_skip(weights)
    info = build_info()
    assert info is not None and info.build_s > 0 and info.capability
    assert os.path.isdir(info.directory) and info.name in info.directory
