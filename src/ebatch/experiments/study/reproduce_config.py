"""What ``ebatch reproduce`` runs: the networks, presets and policies of the paper's comparison, as one frozen
:class:`ReproduceConfig`, and the run configurations every part of the study draws from it
(:func:`policy_specs`, :func:`case_workload`). The paper's own figures (:data:`PAPER_HEADLINE`) are here too,
for the report to put beside ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from ebatch.hardware import load_preset
from ebatch.model import get_model
from ebatch.sweep import RunConfig, WorkloadConfig
from ebatch.workload import DATASETS, Workload

__all__ = [
    "EXTRA_HEADLINE_KEYS", "HEADLINE_KEYS", "NETWORKS", "Network", "PAPER_HEADLINE", "POLICY_LABELS", "PRESETS",
    "ReproduceConfig", "case_workload", "policy_configs", "policy_specs", "workload_config",
]


@dataclass(frozen=True)
class Network:
    """A zoo model and the data set its requests come from."""

    model: str
    dataset: str
    frame_rate_hz: float = 100.0  # speech only: frames per second of audio


NETWORKS = (
    Network("eesen", "librispeech-test-clean", 100.0),
    Network("deepspeech2", "librispeech-test-clean", 50.0),  # its conv front end halves the frame rate
    Network("gnmt-enc", "wmt22-en-de"),
)
PRESETS = ("epur", "tpu-v1")
#: The paper's abstract: E-BATCH over the state of the art.
PAPER_HEADLINE = {
    "epur": {"throughput": 1.8, "energy_efficiency": 3.6},
    "tpu-v1": {"throughput": 2.1, "energy_efficiency": 1.6},
}
HEADLINE_KEYS = (
    "throughput_vs_cellular", "energy_efficiency_vs_cellular", "throughput_vs_padding",
    "energy_efficiency_vs_padding", "p99_latency_vs_cellular",
)
#: Also in the headline: E-BATCH against the strongest baseline here (sorted padding) and padding's latency.
EXTRA_HEADLINE_KEYS = (
    "throughput_vs_padding-sorted", "energy_efficiency_vs_padding-sorted", "p99_latency_vs_padding",
    "p99_latency_vs_padding-sorted", "throughput_vs_best_baseline", "energy_efficiency_vs_best_baseline",
)
#: The compared policies' labels: the three baselines, then E-BATCH (see :func:`policy_specs`).
POLICY_LABELS = ("padding", "padding-sorted", "cellular", "ebatch")


@dataclass(frozen=True)
class ReproduceConfig:
    """What ``run_reproduce`` runs. ``requests=None``: every request of each data set (the test set);
    ``backlog_factors``: the offline backlogs of the convergence study, in multiples of the test set (1 is
    the test set itself; 2 and 4 draw 2x and 4x as many lengths from it with the seed, with replacement
    once they outnumber it); ``quick_run``: a ``--quick`` run, whose figures the report says are not comparable
    to the paper's."""

    networks: tuple[Network, ...] = NETWORKS
    presets: tuple[str, ...] = PRESETS
    requests: int | None = None
    batch_size: int = 64
    sort_window: int = 256
    load_fraction: float = 0.7
    curve_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)
    tune_objective: str = "edp"
    trace: str = "azure-conv"
    sensitivity: bool = True
    sensitivity_requests: int | None = None  # None: as many as the main runs
    sensitivity_request_counts: tuple[int, ...] = (300, 1000)  # the "requests" variants
    auto_study: bool = True
    auto_requests: int = 1500
    auto_slo_factor: float = 2.0
    auto_extra_networks: tuple[Network, ...] = (Network("lstm-2x512", "librispeech-test-clean", 100.0),)
    seed: int = 0
    backlog_factors: tuple[int, ...] = (1, 2, 4)
    quick_run: bool = False

    @classmethod
    def quick(cls, **changes) -> ReproduceConfig:
        """Fewer requests and load points: the ``--quick`` run."""
        base = dict(requests=300, curve_fractions=(0.4, 0.7, 1.0), sensitivity_requests=60,
                    sensitivity_request_counts=(30,), auto_requests=300, quick_run=True)
        return cls(**{**base, **changes})

    def check(self) -> None:
        """Raise ``ValueError`` naming the field for an unknown network, data set or preset, or a bad number."""
        for net in self.networks + self.auto_extra_networks:
            get_model(net.model)
            if net.dataset not in DATASETS:
                raise ValueError(
                    f"network {net.model}: unknown dataset {net.dataset!r}; choose one of {', '.join(sorted(DATASETS))}"
                )
        for preset in self.presets:
            load_preset(preset)
        if not self.load_fraction > 0:
            raise ValueError(f"load_fraction: must be > 0, got {self.load_fraction}")
        if self.requests is not None and self.requests < 2:
            raise ValueError(f"requests: must be >= 2, got {self.requests}")
        if 1 not in self.backlog_factors or min(self.backlog_factors) < 1:
            raise ValueError(f"backlog_factors: whole multiples >= 1 of the test set, 1 among them; "
                             f"got {self.backlog_factors}")


def policy_specs(config: ReproduceConfig, timesteps: int | None = None) -> list[tuple[str, str, dict]]:
    """(label, policy name, parameters) of the compared policies; E-BATCH only once T is known."""
    b = config.batch_size
    specs = [
        ("padding", "padding", {"batch_size": b}),
        ("padding-sorted", "padding", {"batch_size": b, "sort_window": config.sort_window}),
        ("cellular", "cellular", {"batch_size": b}),
    ]
    if timesteps is not None:
        specs.append(("ebatch", "ebatch", {"batch_size": b, "timesteps": int(timesteps)}))
    return specs


def case_workload(net: Network, config: ReproduceConfig, arrival: str = "offline",
                  rate_rps: float | None = None) -> Workload:
    """``config.requests`` requests of ``net``'s data set (seeded), offline or arriving as ``arrival`` says."""
    return Workload.from_dataset(net.dataset, n=config.requests, arrival=arrival, rate_rps=rate_rps,
                                 seed=config.seed, frame_rate_hz=net.frame_rate_hz)


def workload_config(net: Network, config: ReproduceConfig, arrival: str = "offline", rate_rps: float | None = None,
                    requests: int | None = None, backlog_factor: int = 1) -> WorkloadConfig:
    """The sweep's form of :func:`case_workload` (the same requests): ``requests`` (default
    ``config.requests``) times ``backlog_factor``, a test set of ``None`` requests counting as its size."""
    n = config.requests if requests is None else requests
    if backlog_factor != 1:
        n = backlog_factor * (n if n is not None else len(Workload.from_dataset(net.dataset)))
    speech = DATASETS[net.dataset].kind == "speech"
    return WorkloadConfig(net.dataset, requests=n, arrival=arrival, rate_rps=rate_rps, seed=config.seed,
                          frame_rate_hz=net.frame_rate_hz if speech else None)


def policy_configs(net: Network, preset: str, work: WorkloadConfig, specs: list[tuple[str, str, dict]],
                   overrides: dict | None = None) -> dict[str, RunConfig]:
    """``{label: RunConfig}`` of ``specs`` (from :func:`policy_specs`) serving ``work`` on ``preset``."""
    return {label: RunConfig(net.model, preset, work, name, params, overrides or {}) for label, name, params in specs}
