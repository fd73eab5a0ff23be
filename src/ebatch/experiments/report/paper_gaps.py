"""What of the paper's method could not be found, and what ebatch runs in its place (a section of the
reproduction report).

Only the abstract of arXiv 2009.10656 (and, on ar5iv, the start of its introduction) could be read: it names
E-PUR and the TPU as platforms and "the state of the art" as the baseline, and gives the four headline
figures. Everything else in :data:`GAPS` is missing; each row's stand-in is built from the reproduction's
configuration, the policies' defaults, the models and the presets, so the table follows them when they change.
``paper_gaps(config)`` returns the section; ``gap_rows(config)`` its rows.
"""

from __future__ import annotations

from ebatch.experiments.formatting import number
from ebatch.experiments.report.markdown import markdown_table
from ebatch.experiments.study.reproduce_config import PAPER_HEADLINE, ReproduceConfig
from ebatch.experiments.study.sensitivity import BATCH_SIZES
from ebatch.experiments.study.tune import OBJECTIVE_MEANINGS
from ebatch.hardware import HardwareSpec, load_preset
from ebatch.model import get_model
from ebatch.policies.base import defaults as policy_defaults

__all__ = ["GAPS", "TORNADO_COMMAND", "gap_rows", "paper_gaps", "tornado_pointer"]

#: The command that writes docs/tornado.md (``ebatch tornado``, its own study and page).
TORNADO_COMMAND = "ebatch tornado --workers 2 --out results/tornado --doc docs/tornado.md"

#: (part of the method, what the reachable text says about it)
GAPS = (
    ("the baseline's exact rule", "\"the state of the art\": schemes that update the batch every few time-steps"),
    ("the networks", "none named; the introduction cites machine translation and speech recognition"),
    ("the batch sizes", "not given"),
    ("the arrival model and load", "not given"),
    ("how T is chosen", "\"dynamically controls the number of time-steps\"; the rule is not given"),
    ("the E-PUR configuration", "\"on top of E-PUR\"; no sizes, clock or memory"),
    ("the TPU configuration", "\"TPU\"; which generation and memory are not given"),
    ("the energy tools and constants", "not given"),
)


def _params(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None) or "none"


def _networks(config: ReproduceConfig) -> str:
    parts = []
    for net in config.networks:
        model = get_model(net.model)
        bi = sum(layer.bidirectional for layer in model.layers)
        cells = sorted({layer.cell for layer in model.layers})
        parts.append(f"`{net.model}` ({model.num_layers} {'/'.join(cells).upper()} layers, {bi} bidirectional, "
                     f"{number(model.params / 1e6)} M parameters) on `{net.dataset}`")
    return "; ".join(parts)


def _platform(spec: HardwareSpec) -> str:
    assumed = [n for n in spec.parameter_names() if "assumption" in spec.sources.get(n, "").lower()]
    return (f"preset `{spec.name}`: {spec.array_rows}x{spec.array_cols} MACs at {number(spec.clock_hz / 1e6)} MHz, "
            f"{number(spec.weight_buffer_bytes / 2**20)} MiB weight and {number(spec.activation_buffer_bytes / 2**20)} "
            f"MiB activation buffers, DRAM {number(spec.dram_bandwidth_bytes_per_s / 1e9)} GB/s; {len(assumed)} of "
            f"its {len(spec.parameter_names())} parameters are assumptions")


def _energy(specs: list[HardwareSpec]) -> str:
    parts = []
    for s in specs:
        parts.append(f"`{s.name}`: DRAM {number(s.dram_energy_j_per_byte * 1e12 / 8)} pJ/bit, SRAM "
                     f"{number(s.sram_energy_j_per_byte * 1e12)} pJ/B, MAC {number(s.mac_energy_j * 1e12)} pJ, static "
                     f"{number(s.static_power_w)} W")
    return ("a per-phase cost model (`ebatch.hardware.cost`) with each preset's constants, each with its source "
            "in the preset: " + "; ".join(parts))


def gap_rows(config: ReproduceConfig) -> list[list[str]]:
    """One row per entry of :data:`GAPS`: the part, what the paper's reachable text says, ebatch's stand-in."""
    specs = {p: load_preset(p) for p in config.presets}
    cellular = policy_defaults("cellular")
    cellular.pop("batch_size", None)
    stand_ins = {
        "the baseline's exact rule": f"`cellular` (BatchMaker-style, {_params(cellular)}), and beside it `padding` "
                                     f"and `padding` with `sort_window={config.sort_window}`; the headline is "
                                     "E-BATCH over `cellular`",
        "the networks": _networks(config),
        "the batch sizes": f"B = {config.batch_size} slots for every policy; the sensitivity study tries B in "
                           f"{', '.join(str(b) for b in BATCH_SIZES)}",
        "the arrival model and load": "throughput and energy: every request queued at 0 (offline); latency: Poisson "
                                      f"at {config.load_fraction:g} x the best baseline's offline throughput, and "
                                      f"the `{config.trace}` trace time-scaled to that rate",
        "how T is chosen": f"swept per network and preset under that Poisson load, objective "
                           f"`{config.tune_objective}` ({OBJECTIVE_MEANINGS[config.tune_objective]}); "
                           "`timesteps=\"auto\"` adapts T online in a separate study",
        "the E-PUR configuration": _platform(specs["epur"]) if "epur" in specs else "not run",
        "the TPU configuration": _platform(specs["tpu-v1"]) + " (Jouppi et al., ISCA 2017, for the rest)"
                                 if "tpu-v1" in specs else "not run",
        "the energy tools and constants": _energy(list(specs.values())),
    }
    return [[part, said, stand_ins[part]] for part, said in GAPS]


def paper_gaps(config: ReproduceConfig) -> str:
    """The section: what could not be found, and ebatch's stand-in for each."""
    figures = "; ".join(f"{p}: {v['throughput']:g}x throughput, {v['energy_efficiency']:g}x energy efficiency"
                        for p, v in PAPER_HEADLINE.items())
    return (
        "## What the paper does not tell us, and what stands in for it\n\n"
        "Only the paper's abstract could be read (arXiv 2009.10656; ar5iv shows the abstract and the start of the "
        f"introduction). It gives the platforms, the idea and four figures ({figures}), none of the method "
        "below. Each stand-in is ebatch's own choice, taken from this run's configuration and presets; "
        "`ebatch tornado` (docs/tornado.md) measures how far the presets' assumptions and the cost model's "
        "modelling choices move the headline.\n\n"
        + markdown_table(["part of the method", "what the abstract says", "ebatch's stand-in"], gap_rows(config))
    )


def tornado_pointer() -> str:
    """The reproduction report's pointer to the tornado study, which runs as its own command and page."""
    return (
        "## What drives the headline\n\n"
        "The tornado study varies every preset parameter whose source is an assumption, and every modelling choice "
        "of the cost model (double buffering, compute/DRAM overlap, the spill's DRAM passes, invocation overhead, "
        "notification latency), one at a time over a stated plausible range, and reports the range of E-BATCH's "
        "headline ratios over cellular per preset, with a tornado chart and the three assumptions that move the "
        f"conclusion most: [tornado.md](tornado.md), written by `{TORNADO_COMMAND}`."
    )
