"""Workload constructors: shipped data sets, arrivals (offline, Poisson, traces), CSV files, lists; bad input."""

from __future__ import annotations

import numpy as np
import pytest

import ebatch
from ebatch.workload import DATASETS, TRACES, Workload, dataset_lengths, trace_arrivals

SIZES = {
    "librispeech-test-clean": 2620,
    "librispeech-dev-clean": 2703,
    "librispeech-train-clean-100": 28539,
    "wmt21-en-de": 1002,
    "wmt22-en-de": 2037,
    "iwslt15-en-vi": 1268,
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_dataset_sizes_and_file_order(name):
    assert set(DATASETS) == set(SIZES)
    workload = Workload.from_dataset(name)
    assert len(workload) == SIZES[name]
    assert workload.lengths.tolist() == dataset_lengths(name).tolist()
    assert workload.lengths.min() >= 1 and (workload.arrivals_s == 0).all()


def test_speech_frames_follow_the_frame_rate():
    # the first test-clean utterance lasts 4.905 s: 490.5 frames at 100/s rounds up to 491; 245.25 at 50/s
    assert dataset_lengths("librispeech-test-clean")[0] == 491
    assert dataset_lengths("librispeech-test-clean", frame_rate_hz=50)[0] == 246
    assert Workload.from_dataset("librispeech-test-clean", frame_rate_hz=50).meta["frame_rate_hz"] == 50
    with pytest.raises(ValueError, match="frame_rate_hz"):
        dataset_lengths("librispeech-test-clean", frame_rate_hz=0)


def test_text_tokens_follow_the_subword_factor():
    assert dataset_lengths("wmt21-en-de")[0] == 25  # 19 words x 1.3 = 24.7
    assert dataset_lengths("wmt21-en-de", subword_factor=1.0)[0] == 19
    assert dataset_lengths("iwslt15-en-vi")[0] == 39  # 30 x 1.3 is 39.000000000000004 in floating point
    with pytest.raises(ValueError, match="subword_factor"):
        dataset_lengths("wmt21-en-de", subword_factor=-1)


def test_draws_are_reproducible_with_the_seed():
    a = Workload.from_dataset("wmt22-en-de", n=100, seed=7)
    b = Workload.from_dataset("wmt22-en-de", n=100, seed=7)
    c = Workload.from_dataset("wmt22-en-de", n=100, seed=8)
    assert a.lengths.tolist() == b.lengths.tolist() and a.lengths.tolist() != c.lengths.tolist()
    assert set(a.lengths.tolist()) <= set(dataset_lengths("wmt22-en-de").tolist())
    # more requests than the set holds: drawn with replacement
    assert len(Workload.from_dataset("wmt21-en-de", n=1500)) == 1500


def test_poisson_arrivals_are_reproducible_and_at_the_rate():
    a = Workload.from_dataset("librispeech-dev-clean", n=2000, arrival="poisson", rate_rps=50, seed=1)
    b = Workload.from_dataset("librispeech-dev-clean", n=2000, arrival="poisson", rate_rps=50, seed=1)
    c = Workload.from_dataset("librispeech-dev-clean", n=2000, arrival="poisson", rate_rps=50, seed=2)
    assert a.arrivals_s.tolist() == b.arrivals_s.tolist() and a.arrivals_s.tolist() != c.arrivals_s.tolist()
    gaps = np.diff(np.concatenate([[0.0], a.arrivals_s]))
    assert (gaps >= 0).all() and a.arrivals_s[0] > 0
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.1)


def test_gamma_arrivals_have_the_rate_and_cv_and_need_both():
    work = Workload.from_dataset("librispeech-dev-clean", n=20000, arrival="gamma", rate_rps=50, cv=2.0, seed=1)
    gaps = np.diff(np.concatenate([[0.0], work.arrivals_s]))
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.1)
    assert work.meta["cv"] == 2.0
    assert "cv" not in Workload.from_dataset("librispeech-dev-clean", n=5, arrival="poisson", rate_rps=50).meta
    with pytest.raises(ValueError, match="^cv: gamma arrivals need"):
        Workload.from_dataset("librispeech-dev-clean", n=5, arrival="gamma", rate_rps=50)
    with pytest.raises(ValueError, match="^cv: .* got 0"):
        Workload.from_dataset("librispeech-dev-clean", n=5, arrival="gamma", rate_rps=50, cv=0)
    with pytest.raises(ValueError, match="^rate: gamma arrivals need a rate"):
        Workload.from_dataset("librispeech-dev-clean", n=5, arrival="gamma", cv=2.0)


def test_trace_replay_and_time_scaling():
    assert set(TRACES) == {"azure-conv", "azure-code", "mooncake"}
    raw = Workload.from_dataset("wmt21-en-de", n=100, arrival="azure-code")
    trace = trace_arrivals("azure-code")
    assert raw.arrivals_s.tolist() == pytest.approx((trace[:100] - trace[0]).tolist())
    scaled = Workload.from_dataset("wmt21-en-de", n=100, arrival="azure-code", rate_rps=250)
    # n - 1 gaps span the run: the mean rate is the target exactly
    assert 99 / scaled.arrivals_s[-1] == pytest.approx(250, rel=1e-12)
    # and the trace's shape is kept: every gap is scaled by the same factor
    assert scaled.arrivals_s.tolist() == pytest.approx((raw.arrivals_s * 99 / raw.arrivals_s[-1] / 250).tolist())


def test_trace_repeats_back_to_back_when_shorter_than_the_workload():
    n = trace_arrivals("mooncake").size + 100
    workload = Workload.from_dataset("librispeech-train-clean-100", n=n, arrival="mooncake")
    assert len(workload) == n
    assert (np.diff(workload.arrivals_s) >= 0).all()
    assert workload.arrivals_s[-1] > trace_arrivals("mooncake")[-1]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(name="librispeech-test-dirty"), "librispeech-test-clean"),
        (dict(name="wmt21-en-de", arrival="azure-chat"), "azure-conv"),
        (dict(name="wmt21-en-de", arrival="poisson"), "rate"),
        (dict(name="wmt21-en-de", arrival="poisson", rate_rps=0), "rate"),
        (dict(name="wmt21-en-de", arrival="azure-conv", rate_rps=-5), "rate"),
        (dict(name="wmt21-en-de", n=0), "requests"),
    ],
)
def test_dataset_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Workload.from_dataset(**kwargs)


def test_from_lengths_sorts_by_arrival_and_validates():
    workload = Workload.from_lengths([4, 5, 6], arrivals_s=[2.0, 0.0, 2.0])
    assert workload.lengths.tolist() == [5, 4, 6] and workload.arrivals_s.tolist() == [0, 2, 2]
    assert workload.total_timesteps == 15
    with pytest.raises(ValueError, match="no requests"):
        Workload.from_lengths([])
    for bad in ([3, 0], [3, -2], [2.5]):
        with pytest.raises(ValueError, match="lengths"):
            Workload.from_lengths(bad)
    with pytest.raises(ValueError, match="arrivals_s"):
        Workload.from_lengths([1, 2], arrivals_s=[0.0])
    with pytest.raises(ValueError, match="arrivals_s"):
        Workload.from_lengths([1, 2], arrivals_s=[0.0, -1.0])


def test_csv_with_length_or_duration(tmp_path):
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("length,arrival_s\n7,0.5\n3,0.0\n9,1.0\n")
    workload = Workload.from_csv(lengths)
    assert workload.lengths.tolist() == [3, 7, 9] and workload.arrivals_s.tolist() == [0, 0.5, 1.0]
    assert workload.name == "lengths"
    assert Workload.load(str(lengths)).lengths.tolist() == [3, 7, 9]
    assert Workload.from_csv(lengths, n=2).lengths.tolist() == [3, 7]
    poisson = Workload.from_csv(lengths, arrival="poisson", rate_rps=10, seed=3)
    assert (poisson.arrivals_s > 0).all()

    durations = tmp_path / "speech.csv"
    durations.write_text("duration_s\n0.004\n1.0\n2.345\n")
    assert Workload.from_csv(durations).lengths.tolist() == [1, 100, 235]
    assert Workload.from_csv(durations, frame_rate_hz=50).lengths.tolist() == [1, 50, 118]
    result = ebatch.simulate("tiny-lstm", str(durations), "sequential")
    assert result.summary()["completed"] == 3


@pytest.mark.parametrize(
    "text, field",
    [
        ("words\n3\n4\n", "length"),  # no usable column; says which to add
        ("", "speech.csv"),  # empty file
        ("length\n", "no requests"),  # header only
        ("length\n3\n0\n", "lengths"),
        ("length\n3\n-2\n", "lengths"),
        ("length\n3\n2.5\n", "lengths"),
        ("length\n3\nlong\n", "lengths"),
        ("duration_s\n1.0\n0\n", "duration_s"),
        ("duration_s\n1.0\n-0.5\n", "duration_s"),
        ("duration_s\n1.0\nabc\n", "duration_s"),
        ("length,arrival_s\n3,0\n4,soon\n", "arrivals_s"),
    ],
)
def test_bad_csv_raises_naming_the_field(tmp_path, text, field):
    path = tmp_path / "speech.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=field):
        Workload.from_csv(path)


def test_missing_file_and_unknown_name():
    with pytest.raises(ValueError, match="does not exist"):
        Workload.from_csv("/nonexistent/requests.csv")
    with pytest.raises(ValueError, match="unknown dataset"):
        Workload.load("librispeech")
