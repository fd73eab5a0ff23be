"""Golden numbers: headline metrics per preset for fixed workloads, pinned so a changed formula shows up.

If a change to a cost formula, a policy or the simulator is *intended* to move these numbers, regenerate
them and paste the new tuples here, saying in the commit why they moved::

    .venv/bin/python tests/test_golden.py

(prints the ``GOLDEN`` dicts below from the current code). Never loosen the tolerance to make a change pass.
"""

from __future__ import annotations

import pytest

import ebatch

KEYS = ("throughput_rps", "energy_per_request_j", "latency_p99_s", "padding_fraction", "dram_weight_bytes")

CASES = {
    # EESEN (5 BiLSTM layers) on 200 LibriSpeech test-clean utterances, offline
    "eesen": dict(
        model="eesen",
        workload=lambda: ebatch.Workload.from_dataset("librispeech-test-clean", n=200, seed=0),
        policies={
            "sequential": {},
            "padding": {"batch_size": 64},
            "cellular": {"batch_size": 64},
            "ebatch": {"batch_size": 64, "timesteps": 16},
        },
    ),
    # a unidirectional 2 x 512 LSTM on 200 WMT22 sentences arriving as the Azure conversation trace at
    # 1,500 requests/s (E-BATCH's streaming slots, cellular runs cut by arrivals, padding under load)
    "lstm-2x512": dict(
        model="lstm-2x512",
        workload=lambda: ebatch.Workload.from_dataset(
            "wmt22-en-de", n=200, arrival="azure-conv", rate_rps=1500, seed=0
        ),
        policies={
            "sequential": {},
            "padding": {"batch_size": 16},
            "cellular": {"batch_size": 16},
            "ebatch": {"batch_size": 16, "timesteps": 8},
        },
    ),
}

# (throughput_rps, energy_per_request_j, latency_p99_s, padding_fraction, dram_weight_bytes)
GOLDEN = {
    "eesen": {
        "epur": {
            "sequential": (9.669257338215257, 0.07922369092064001, 20.45021954259999, 0.0, 4382720000.0),
            "padding": (17.664605221369015, 0.056446663068799995, 11.32207584, 0.7218588208021018, 87654400.0),
            "cellular": (26.614899974053245, 0.03189360183270383, 6.02156399005847, 0.0, 4008140800.0),
            "ebatch": (55.94602774811085, 0.017777163670880003, 3.13225566, 0.03266616948514838, 43827200.0),
        },
        "tpu-v1": {
            "sequential": (11.502614395394742, 3.435107324803047, 17.190795520235245, 0.0, 591101952000.0),
            "padding": (68.26502075728867, 0.5869963636738824, 2.929758136470587, 0.7218588208021018, 44198707200.0),
            "cellular": (33.873181035272765, 1.1593585066229046, 4.479302140644917, 0.0, 194707456000.0),
            "ebatch": (166.75734178870226, 0.23920070457427062, 0.8279658235294117, 0.03266616948514838, 24339865600.0),
        },
    },
    "lstm-2x512": {
        "epur": {
            "sequential": (627.1017430594038, 0.0014908473699136, 0.17998000875360484, 0.0, 1677721600.0),
            "padding": (
                1411.9038490435066,
                0.0006413166490655999,
                0.017128588213155268,
                0.5332755256882723,
                310378496.0,
            ),
            "cellular": (1286.5873731439028, 0.0007134740216736, 0.03436012099543214, 0.0, 1560281088.0),
            "ebatch": (
                1442.465114354727,
                0.0007919097998655999,
                0.005985888533777355,
                0.07912745936698032,
                1526726656.0,
            ),
        },
        "tpu-v1": {
            "sequential": (694.5885091870756, 0.05495002304530071, 0.1497198895630176, 0.0, 9449766912.0),
            "padding": (
                1438.713118022404,
                0.024150107007367527,
                0.006455413542951636,
                0.4352046169989507,
                4146069504.0,
            ),
            "cellular": (1421.0911106663716, 0.025256373215653643, 0.008303843571151603, 0.0, 4294967296.0),
            "ebatch": (1454.71570576173, 0.02319528833972706, 0.004821587501731678, 0.07991452991452991, 3978297344.0),
        },
    },
}


def headline(case: str, preset: str, policy: str) -> tuple[float, ...]:
    spec = CASES[case]
    result = ebatch.simulate(spec["model"], spec["workload"](), policy, preset, **spec["policies"][policy])
    summary = result.summary()
    assert summary["completed"] == summary["requests"] == 200
    return tuple(summary[k] for k in KEYS)


@pytest.mark.parametrize("policy", ["sequential", "padding", "cellular", "ebatch"])
@pytest.mark.parametrize("preset", ["epur", "tpu-v1"])
@pytest.mark.parametrize("case", list(CASES))
def test_golden_numbers(case, preset, policy):
    got = dict(zip(KEYS, headline(case, preset, policy)))
    expected = dict(zip(KEYS, GOLDEN[case][preset][policy]))
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key


if __name__ == "__main__":  # regenerate: prints GOLDEN from the current code
    print("GOLDEN = {")
    for case, spec in CASES.items():
        print(f'    "{case}": {{')
        for preset in ("epur", "tpu-v1"):
            print(f'        "{preset}": {{')
            for policy in spec["policies"]:
                print(f'            "{policy}": {headline(case, preset, policy)!r},')
            print("        },")
        print("    },")
    print("}")
