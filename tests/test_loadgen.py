"""ebatch loadgen: schedules (gamma cv, duration bound), the summary's formulas, the max-rate search, open loop
against a serial stub server (latency from the scheduled time), and a live ebatch server via the CLI."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from ebatch.bench.loadgen import LoadResult, RequestRecord, run_load, summarize
from ebatch.bench.maxrate import find_max_rate, is_burst
from ebatch.bench.schedule import make_schedule, send_times_s


def test_gamma_send_times_have_the_rate_and_cv():
    gaps = np.diff(send_times_s("gamma", 20001, 50.0, 2.0, np.random.default_rng(1)))
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.08)
    poisson = np.diff(send_times_s("poisson", 20001, 50.0, 9.0, np.random.default_rng(1)))
    assert poisson.std() / poisson.mean() == pytest.approx(1.0, rel=0.05)


def test_schedule_is_bounded_and_checked():
    s = make_schedule("librispeech-test-clean", "poisson", 100.0, duration_s=0.5, seed=3)
    assert s.send_s[0] == 0 and s.send_s.max() < 0.5 and 20 < len(s) < 90
    assert len(make_schedule("librispeech-test-clean", "mooncake", 5.0, requests=7)) == 7
    with pytest.raises(ValueError, match="requests: give --requests or --duration-s"):
        make_schedule("librispeech-test-clean", "poisson", 1.0)
    with pytest.raises(ValueError, match="cv:"):
        make_schedule("librispeech-test-clean", "gamma", 1.0, requests=3, cv=0)
    with pytest.raises(ValueError, match="arrival: unknown 'uniform'"):
        make_schedule("librispeech-test-clean", "uniform", 1.0, requests=3)


def test_summary_counts_failures_as_infinite_latency():
    s = make_schedule("librispeech-test-clean", "poisson", 10.0, requests=4)
    s = type(s)(s.lengths, np.array([0.0, 0.1, 0.2, 0.3]), 10.0, "poisson", 1.0, "w")
    records = [RequestRecord(0.0, 5, 200, 0.2, 0.05, 0.1, 0.0), RequestRecord(0.1, 5, 200, 0.9, 0.7, 0.1, 0.0),
               RequestRecord(0.2, 5, 429, 0.01, np.nan, np.nan, 0.0), RequestRecord(0.3, 5, 0, np.nan, np.nan,
                                                                                   np.nan, 0.0)]
    r = summarize(records, s, slo_p99_s=0.5, model="m")
    assert (r.ok, r.rejected_429, r.server_5xx, r.errors) == (2, 1, 0, 1)
    assert r.span_s == pytest.approx(1.0)  # the last answer: 0.1 + 0.9
    assert r.offered_rps == pytest.approx(10.0) and r.achieved_rps == pytest.approx(2.0)
    assert r.goodput_rps == pytest.approx(1.0) and r.p50_s == pytest.approx(0.9) and r.p99_s == np.inf
    assert r.queue_s_mean == pytest.approx(0.375) and not r.slo_met
    assert (r.energy_j_mean, r.energy_source) == (None, "n/a")  # no X-Energy-Joules from this server
    with_energy = [RequestRecord(0.0, 5, 200, 0.2, 0.0, 0.1, 0.0, 0.5, "rapl"),
                   RequestRecord(0.1, 5, 200, 0.2, 0.0, 0.1, 0.0, 1.5, "rapl"),
                   RequestRecord(0.2, 5, 429, 0.01, np.nan, np.nan, 0.0), RequestRecord(0.3, 5, 200, 0.2, 0.0,
                                                                                       0.1, 0.0, 4.0, "rapl")]
    e = summarize(with_energy, s, slo_p99_s=0.5, model="m")
    assert e.energy_j_mean == pytest.approx(2.0) and (e.energy_j_p50, e.energy_j_p99) == (1.5, 4.0)
    assert e.energy_source == "rapl"


def _result(rate: float, p99_s: float, requests: int = 1000) -> LoadResult:
    return LoadResult("x", "m", "w", "poisson", 1.0, rate, requests, requests, 0, 0, 0, 1.0, rate, rate, rate, 1.0,
                      p99_s, p99_s, p99_s, 0.0, 0.0, 0.0)


def test_find_max_rate_brackets_then_bisects_within_its_probe_budget():
    found = find_max_rate(lambda r: _result(r, 0.5 if r <= 37 else 2.0), start_rps=5, rel_tolerance=0.05,
                          max_probes=12)
    assert [p.rate_rps for p in found.probes][:5] == [5, 10, 20, 40, 30]
    assert 37 * 0.95 <= found.max_rate_rps <= 37 and len(found.probes) <= 12
    down = find_max_rate(lambda r: _result(r, 0.5 if r <= 3 else 2.0), start_rps=40, max_probes=4)
    assert [p.rate_rps for p in down.probes] == [40, 20, 10, 5] and down.max_rate_rps == 0.0
    assert not found.probe_limited and not down.probe_limited


def test_find_max_rate_stops_at_a_probe_sent_as_one_burst_within_the_slo():
    # 50 requests, SLO 1 s: above 49 requests/s the whole probe is sent within the SLO; a server that meets
    # it then has absorbed a burst, which bounds no sustained rate
    found = find_max_rate(lambda r: _result(r, 0.5, requests=50), start_rps=10, max_probes=12)
    assert [p.rate_rps for p in found.probes] == [10, 20, 40, 80]
    assert found.max_rate_rps == 80 and found.probe_limited
    # 3 requests asked at 1/s span 2 s, over the 1 s SLO: drawn by chance within 0.2 s, they are still no
    # burst; nor are 3 asked at 10/s but drawn over 2 s (a short draw)
    assert is_burst(_result(80, 0.5, requests=50)) and not is_burst(replace(_result(1, 0.5, 3), offered_rps=10.0))
    assert not is_burst(replace(_result(10, 0.5, 3), offered_rps=1.0))


class _SerialStub(BaseHTTPRequestHandler):
    """Answers one request at a time, each after 0.1 s: a server that queues."""

    def do_GET(self):
        self._send(json.dumps({"models": [{"name": "m", "input_size": 3}]}).encode(), "application/json")

    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        time.sleep(0.1)
        self._send(b"x", "application/x-npy", {"X-Queue-Seconds": "0.0", "X-Compute-Seconds": "0.1"})

    def _send(self, body, kind, extra=None):
        self.send_response(200)
        for key, value in ({"content-type": kind, "content-length": str(len(body))} | (extra or {})).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_open_loop_latency_counts_from_the_scheduled_send_time(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _SerialStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (tmp_path / "w.csv").write_text("length\n4\n6\n8\n5\n7\n")
        schedule = make_schedule(str(tmp_path / "w.csv"), "poisson", 50.0, requests=5, seed=0)
        run = run_load(schedule, f"http://127.0.0.1:{server.server_port}", slo_p99_s=0.25, timeout_s=5)
        with pytest.raises(ValueError, match="model: the server .* serves 'm', not 'z'"):
            run_load(schedule, f"http://127.0.0.1:{server.server_port}", model="z")
    finally:
        server.shutdown()
        thread.join(5)
    latencies = [r.latency_s for r in run.records]
    # sent on schedule: a closed loop would send the 5th at least 0.4 s late (after four 0.1 s answers); the bound
    # leaves room for a busy machine
    assert run.result.ok == 5 and all(r.send_lag_s < 0.3 for r in run.records)
    # served one after another: the k-th waits for the k before it, so latency grows (a closed loop hides this)
    assert latencies[-1] >= 0.5 - run.records[-1].send_s - 0.01 and latencies[-1] > 3 * latencies[0] * 0.9
    assert not run.result.slo_met and run.result.compute_s_mean == pytest.approx(0.1)
    from ebatch.bench.loadgen_report import runs_csv, runs_json, runs_table

    assert "n/a" in runs_table([run.result]) and json.loads(runs_json([run.result]))["runs"][0]["energy_j_p99"] is None
    row = runs_csv([run.result]).splitlines()[1]
    assert row.endswith("n/a,n/a,n/a,n/a,False")


def test_loadgen_cli_against_a_live_server(tmp_path, capsys):
    pytest.importorskip("fastapi")
    pytest.importorskip("torch")
    from ebatch.cli import main
    from ebatch.runtime import RNNWeights
    from ebatch.serve.service import ServeConfig
    from servetools import live_server, torch_lstm

    (tmp_path / "w.csv").write_text("length\n" + "\n".join(str(n) for n in [5, 12, 30, 8, 20, 3, 16, 9]) + "\n")
    config = ServeConfig(model="torch", name="m", batch_size=4, timesteps=4, max_queued_requests=2)
    with live_server(config, RNNWeights.from_torch(torch_lstm(seed=5))) as (url, _):
        main(["loadgen", "--url", url, "--workload", str(tmp_path / "w.csv"), "--rate", "40", "-n", "24",
              "--format", "json", "--out", str(tmp_path / "a.json"), "--slo-p99-s", "5"])
        run = json.loads(capsys.readouterr().out)["runs"][0]
        assert run["requests"] == 24 and run["ok"] + run["rejected_429"] == 24 and run["errors"] == 0
        assert run["compute_s_mean"] > 0 and run["label"] == "m"
        main(["loadgen", "--url", url, "--workload", str(tmp_path / "w.csv"), "--arrival", "gamma", "--cv", "1",
              "--rate", "20", "--duration-s", "2", "--slo-p99-s", "1", "--find-max-rate", "--max-probes", "2",
              "--format", "csv"])
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("label,model,") and len(lines) == 3
    main(["loadgen-plot", str(tmp_path / "a.json"), "--out", str(tmp_path / "p.png")])
    assert (tmp_path / "p.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as exit_info:
        main(["loadgen", "--url", url, "-n", "2"])
    assert exit_info.value.code == 2


def test_loadgen_with_hardware_simulates_the_server_instead_of_sending(tmp_path, capsys):
    from ebatch.bench.predict import ServerModel, simulated_max_rate
    from ebatch.bench.runtime import bench_model
    from ebatch.cli import main
    from ebatch.hardware.host import load_hardware

    args = ["loadgen", "--hardware", "h200", "--model", "lstm-2x512", "--policy", "padding:max_wait_s=0.01",
            "--batch-size", "8", "--workload", "librispeech-test-clean", "--arrival", "gamma", "--cv", "2",
            "--rate", "20", "-n", "40", "--slo-p99-s", "0.5", "--find-max-rate", "--max-probes", "5",
            "--format", "json"]
    main(args)  # the URL's default points at nothing: nothing is sent
    printed = json.loads(capsys.readouterr().out)
    server = ServerModel(bench_model("lstm-2x512"), load_hardware("h200"), "padding",
                         {"batch_size": 8, "max_wait_s": 0.01}, request_overhead_s=0.005)
    expected = simulated_max_rate(server, "librispeech-test-clean", "gamma", 0.5, 20.0, requests=40, cv=2.0,
                                  rel_tolerance=0.1, max_probes=5)
    assert printed["max_rate_rps"] == pytest.approx(expected.max_rate_rps) and expected.max_rate_rps > 0
    assert [r["p99_s"] for r in printed["runs"]] == pytest.approx([p.p99_s for p in expected.probes])
    for bad in (["--model", "lstm-2x512", "--hardware", "epur"], ["--hardware", "h200"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["loadgen", *bad, "-n", "2"])
        assert exit_info.value.code == 2
    assert "host preset" in capsys.readouterr().err
