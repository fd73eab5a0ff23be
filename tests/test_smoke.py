import ebatch


def test_every_policy_completes_a_small_workload():
    workload = ebatch.Workload.from_lengths([3, 1, 4, 1, 5], arrivals_s=[0, 0, 0.001, 0.002, 0.002])
    for name in ebatch.policies.available():
        params = {} if name == "sequential" else {"batch_size": 2}
        result = ebatch.simulate("tiny-bilstm", workload, name, "epur", **params)
        assert result.summary()["completed"] == 5
