"""``ebatch.policies.get``: names, parameters, and errors that name the parameter and the allowed values."""

from __future__ import annotations

import pytest

import ebatch
from ebatch import policies


def test_registry_has_the_four_policies():
    assert {"sequential", "padding", "cellular", "ebatch"} <= set(policies.available())
    assert policies.parameters("sequential") == []
    assert {"batch_size", "max_wait_s", "sort_window"} <= set(policies.parameters("padding"))
    assert policies.parameters("cellular") == ["batch_size", "priority"]
    assert {"batch_size", "timesteps"} <= set(policies.parameters("ebatch"))


def test_get_builds_fresh_objects_with_their_parameters():
    a = policies.get("ebatch", batch_size=8, timesteps=4)
    b = policies.get("ebatch", batch_size=8, timesteps=4)
    assert a is not b and a.name == "ebatch"
    assert (a.batch_size, a.timesteps) == (8, 4)
    assert a.params()["batch_size"] == 8 and a.params()["timesteps"] == 4
    padding = policies.get("padding", batch_size=3, max_wait_s=0.25, sort_window=9)
    assert {k: padding.params()[k] for k in ("batch_size", "max_wait_s", "sort_window")} == {
        "batch_size": 3, "max_wait_s": 0.25, "sort_window": 9
    }
    assert policies.get(a) is a
    assert "batch_size=8" in repr(a)


def test_unknown_policy_names_the_choices():
    with pytest.raises(ValueError, match="unknown policy 'bucket'; choose one of") as error:
        policies.get("bucket")
    assert all(name in str(error.value) for name in ("sequential", "padding", "cellular", "ebatch"))


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("cellular", {"timesteps": 4}, r"unknown parameter 'timesteps'; allowed: batch_size"),
        ("sequential", {"batch_size": 4}, r"unknown parameter 'batch_size'; allowed: none"),
        ("padding", {"batchsize": 4}, r"unknown parameter 'batchsize'; allowed: batch_size, max_wait_s, sort_window"),
        ("ebatch", {"T": 4}, r"unknown parameter 'T'; allowed: batch_size, timesteps, bidirectional"),
    ],
)
def test_unknown_parameter_names_it_and_the_allowed_ones(name, params, match):
    with pytest.raises(ValueError, match=match):
        policies.get(name, **params)


@pytest.mark.parametrize(
    "name, params, field",
    [
        ("padding", {"batch_size": 0}, "batch_size"),
        ("cellular", {"batch_size": -1}, "batch_size"),
        ("cellular", {"batch_size": 2.5}, "batch_size"),
        ("cellular", {"batch_size": True}, "batch_size"),
        ("cellular", {"batch_size": "8"}, "batch_size"),
        ("ebatch", {"batch_size": 0}, "batch_size"),
        ("ebatch", {"timesteps": 0}, "timesteps"),
        ("ebatch", {"lookahead": 0}, "lookahead"),
        ("padding", {"max_wait_s": -0.1}, "max_wait_s"),
        ("padding", {"max_wait_s": "soon"}, "max_wait_s"),
        ("padding", {"sort_window": 0}, "sort_window"),
        ("ebatch", {"bidirectional": "split"}, "bidirectional: must be one of stream, pack"),
        ("ebatch", {"stage_order": "random"}, "stage_order: must be one of fullest"),
        ("ebatch", {"stage_order": "oldest", "bidirectional": "pack"}, "stage_order: only used with"),
        ("cellular", {"priority": "newest"}, "priority: must be one of most-ready, oldest"),
    ],
)
def test_invalid_values_name_the_parameter(name, params, field):
    with pytest.raises(ValueError, match=field):
        policies.get(name, **params)


def test_parameters_cannot_be_given_with_a_policy_object():
    with pytest.raises(ValueError, match="policy object"):
        policies.get(policies.get("cellular"), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        ebatch.simulate("tiny-lstm", ebatch.Workload.from_lengths([2]), "cellular", "epur", batch_size=0)


def test_summary_reports_the_parameters():
    result = ebatch.simulate("tiny-lstm", ebatch.Workload.from_lengths([2, 3]), "ebatch", "epur", batch_size=2,
                             timesteps=5)
    summary = result.summary()
    assert summary["policy"] == "ebatch" and summary["params"]["timesteps"] == 5
    assert summary["model"] == "tiny-lstm" and summary["hardware"] == "epur"


def test_every_policy_declares_example_parameters_that_it_accepts():
    for name in policies.available():
        examples = policies.get(name).example_params
        assert examples, name
        for params in examples:
            assert policies.get(name, **params).params() | params == policies.get(name, **params).params()
