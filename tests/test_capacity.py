"""Capacity planning: the host model's terms, the simulated server (steps run whole, answers at step end),
the simulated max-rate search's bracket, serve's policy parameters, and calibrate -> predict against a
real run on a small model (a generous bound: the machine is shared)."""

from __future__ import annotations

import numpy as np
import pytest

from ebatch.bench.predict import ServerModel, capacity_rps, simulate_load, simulated_load, simulated_max_rate
from ebatch.bench.schedule import make_schedule
from ebatch.bench.server_process import EngineTime, core_share
from ebatch.hardware.host import HostCostModel, HostSpec
from ebatch.model import Layer, RNNModel
from ebatch.sim.engine import Simulator
from ebatch.step import BatchStep
from ebatch.workload import Workload

MODEL = RNNModel("t", (Layer("lstm", 8, 16), Layer("lstm", 16, 16)))
SPEC = HostSpec(1e-3, 5e-5, 2e-9, 1e-9, 10.0, segment_overhead_s=2e-4, name="h", sources={})


def test_a_non_fused_step_pays_the_step_overhead_once_and_every_segment_its_own():
    step = BatchStep(0, 0, 10, 4, range(4), [0] * 4, range(4), [0] * 4, [10] * 4, [True] * 4, fused=False)
    cost = HostCostModel(SPEC, MODEL).cost(step).time_s
    assert cost == pytest.approx(1e-3 + 4 * 2e-4 + 10 * 5e-5 + 40 * 2 * 64 * (16 * 2e-9 + 8 * 1e-9))
    shared = HostCostModel(SPEC.on_shared_core(0.25), MODEL).cost(step)
    assert shared.time_s == pytest.approx(4 * cost) and shared.energy_j == pytest.approx(10.0 * 4 * cost)
    with pytest.raises(ValueError, match="cpu_share"):
        SPEC.on_shared_core(0)


def test_a_host_running_faster_than_calibrated_prices_every_time_term_lower():
    step = BatchStep(0, 0, 10, 4, range(4), [0] * 4, range(4), [0] * 4, [10] * 4, [True] * 4, fused=False)
    calibrated = HostCostModel(SPEC, MODEL).cost(step).time_s
    assert HostCostModel(SPEC.at_speed(1.25), MODEL).cost(step).time_s == pytest.approx(calibrated / 1.25)
    assert SPEC.at_speed(0.5).power_w == SPEC.power_w
    with pytest.raises(ValueError, match="speed"):
        SPEC.at_speed(-1.0)


def test_the_share_of_a_core_is_the_steps_cpu_time_over_their_wall_time_between_readings():
    assert core_share(EngineTime(2.0, 1.9), EngineTime(6.0, 3.9)) == pytest.approx(0.5)
    assert core_share(EngineTime(1.0, 1.0), EngineTime(1.0, 1.0)) == 1.0  # no step ran: nothing to scale
    assert core_share(EngineTime(0.0, 0.0), EngineTime(1.0, 1.001)) == 1.0  # clock granularity, not > 1


def test_the_simulated_server_answers_at_step_end_and_runs_steps_whole():
    workload = Workload.from_lengths([40, 6], [0.0, 0.0])
    ebatch_steps = Simulator(MODEL, workload, _policy("ebatch", batch_size=2, timesteps=40),
                             HostCostModel(SPEC, MODEL)).run().result()
    assert ebatch_steps.finish_s[0] == ebatch_steps.finish_s[1]  # one window: both answered when it ends
    one_layer = RNNModel("one", (Layer("lstm", 8, 16),))
    late = Workload.from_lengths([30, 30], [0.0, 0.002])  # the run takes 2.8 ms
    runs = {cut_runs: Simulator(one_layer, late, _policy("cellular", batch_size=2), HostCostModel(SPEC, one_layer),
                                cut_runs=cut_runs, keep_plan=True).run().result() for cut_runs in (True, False)}
    # the runtime's engine cuts request 0's run of 30 invocations when request 1 arrives; the server's runs it whole
    assert runs[True].plan[0][1].width < 30 and runs[False].plan[0][1].width == 30
    assert runs[False].start_s[1] > runs[True].start_s[1]


def _policy(name, **params):
    from ebatch import policies

    return policies.get(name, **params)


def test_simulated_max_rate_meets_the_slo_and_the_next_rate_up_does_not():
    server = ServerModel(MODEL, SPEC, "ebatch", {"batch_size": 4, "timesteps": 8}, request_overhead_s=0.002)
    options = {"requests": 120, "duration_s": 20.0, "cv": 1.0, "seed": 3}
    lengths = Workload.from_dataset("librispeech-test-clean", n=64, seed=0).lengths // 20
    found = simulated_max_rate(server, "librispeech-test-clean", "poisson", 0.5, capacity_rps(server, lengths),
                               rel_tolerance=0.05, max_probes=20, **options)
    assert found.max_rate_rps > 0 and len(found.probes) <= 20
    failed = min(p.rate_rps for p in found.probes if not p.slo_met)
    assert found.max_rate_rps < failed <= found.max_rate_rps * 1.05 + 1e-9
    at = simulated_load(server, make_schedule("librispeech-test-clean", "poisson", found.max_rate_rps, **options), 0.5)
    above = simulated_load(server, make_schedule("librispeech-test-clean", "poisson", failed, **options), 0.5)
    assert at.slo_met and not above.slo_met and at.p99_s <= 0.5 < above.p99_s
    assert at.ok == at.requests and at.queue_s_mean >= 0 and at.compute_s_mean > 0
    slower = simulated_load(ServerModel(MODEL, SPEC, "ebatch", server.params, 0.002, cpu_share=0.5),
                            make_schedule("librispeech-test-clean", "poisson", found.max_rate_rps, **options), 0.5)
    assert slower.p50_s > at.p50_s
    with pytest.raises(ValueError, match="unknown parameter 'timestep'"):
        ServerModel(MODEL, SPEC, "ebatch", {"timestep": 8})


def test_a_simulated_run_reports_its_steps_busy_time():
    """Requests spaced far apart never share a step: the steps' busy time is then the sum of the requests'
    compute times, and it scales with the machine's speed."""
    from ebatch.bench.schedule import Schedule

    schedule = Schedule(np.array([40, 25, 60]), np.array([0.0, 10.0, 20.0]), 0.1, "poisson", 1.0, "test")
    server = ServerModel(MODEL, SPEC, "padding", {"batch_size": 4})
    run = simulate_load(server, schedule, 1.0)
    assert run.busy_s == pytest.approx(3 * run.result.compute_s_mean)
    faster = simulate_load(ServerModel(MODEL, SPEC.at_speed(2.0), "padding", {"batch_size": 4}), schedule, 1.0)
    assert faster.busy_s == pytest.approx(run.busy_s / 2)


def test_serve_takes_policy_parameters():
    from ebatch.serve.service import ServeConfig, build_policy

    policy = build_policy(ServeConfig(model="tiny-lstm", policy="padding", policy_params={"max_wait_s": 0.01,
                                                                                         "sort_window": 8}))
    assert policy.params() == {"batch_size": 16, "max_wait_s": 0.01, "sort_window": 8}
    with pytest.raises(ValueError, match="unknown parameter 'priority'"):
        build_policy(ServeConfig(model="tiny-lstm", policy="padding", policy_params={"priority": "oldest"}))


def test_calibrated_preset_predicts_a_small_real_run():
    pytest.importorskip("torch")
    from ebatch.bench.throughput_check import check_throughput
    from ebatch.experiments.study.calibrate import calibrate
    from ebatch.runtime.weights import RNNWeights

    model = RNNModel("small", (Layer("lstm", 32, 64), Layer("lstm", 64, 64)))
    calibration = calibrate(model, "torch", threads=1, repeats=3, rows=(1, 4), columns=(4, 16), policy_requests=12)
    policies = {"padding", "cellular", "ebatch"}
    assert set(calibration.total_ratio_by_kind) == {"grid", *policies, *(f"{p} online" for p in policies)}
    assert "thread CPU time" in calibration.spec.sources["segment_overhead_s"]
    lengths = np.random.default_rng(1).integers(20, 120, size=24)
    configs = [("padding", "padding", {"batch_size": 4}), ("cellular", "cellular", {"batch_size": 4}),
               ("ebatch", "ebatch", {"batch_size": 4, "timesteps": 8})]
    checks = check_throughput(RNNWeights.random(model), calibration.spec, configs, lengths, repeats=3)  # medians
    assert [c.label for c in checks] == ["padding", "cellular", "ebatch"]
    for c in checks:  # generous: a shared 2-core machine, a model this small is mostly per-step overhead
        assert c.requests == 24 and c.measured_wall_rps > 0
        assert 0.4 < c.ratio < 2.5, c
