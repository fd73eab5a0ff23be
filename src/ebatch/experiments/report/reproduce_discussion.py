"""The "what it means and why it differs from the paper" section of the reproduction report.

Every number is computed from the result, and every claim from the result's configuration, the presets it ran
(their values and whether their sources are assumptions) and the models it names (which layers are
bidirectional); sentences that depend on a number's direction are chosen by it, and a point that does not
apply to the configuration is left out, so the text stays true when the networks or the presets change.
``discussion(result)``.
"""

from __future__ import annotations

from ebatch.experiments.formatting import geomean, percent, times
from ebatch.experiments.study.reproduce_results import Case, ReproduceResult
from ebatch.hardware import HardwareSpec, load_preset
from ebatch.policies.base import defaults as policy_defaults

__all__ = ["discussion"]


def _share(case: Case, policy: str, part: str) -> float:
    b = case.policies[policy].offline.energy_breakdown_j
    return b[part] / sum(b.values())


def _specs(result: ReproduceResult) -> dict[str, HardwareSpec]:
    """The presets the result ran, by the name its cases carry."""
    specs = [load_preset(p) for p in result.config.presets]
    return {spec.name: spec for spec in specs}


def _assumed(spec: HardwareSpec, parameter: str) -> bool:
    return parameter in spec.assumptions


def _headline_text(result: ReproduceResult) -> list[str]:
    lines = []
    for preset, h in result.headline.items():
        paper = result.paper.get(preset)
        if not paper:
            continue
        thr, eff = h["throughput_vs_cellular"], h["energy_efficiency_vs_cellular"]
        lines.append(
            f"- **`{preset}`**: E-BATCH gives {times(thr)} the throughput of cellular batching "
            f"({'above' if thr > paper['throughput'] else 'below'} the paper's {paper['throughput']}x) and "
            f"{times(eff)} its requests per joule ({'above' if eff > paper['energy_efficiency'] else 'below'} the "
            f"paper's {paper['energy_efficiency']}x). Against plain padding: {times(h['throughput_vs_padding'])} "
            f"throughput, {times(h['energy_efficiency_vs_padding'])} requests per joule; against padding with a "
            f"sort window: {times(h['throughput_vs_padding-sorted'])} and "
            f"{times(h['energy_efficiency_vs_padding-sorted'])}. p99 latency under load: "
            f"{times(h['p99_latency_vs_cellular'])} of cellular's, {times(h['p99_latency_vs_padding'])} of padding's."
        )
    return lines


def _baseline_text(result: ReproduceResult) -> str:
    cases = result.cases
    strongest: dict[str, int] = {}
    for c in cases:
        strongest[c.saturation_policy] = strongest.get(c.saturation_policy, 0) + 1
    named = ", ".join(f"{label} in {n} of {len(cases)}" for label, n in sorted(strongest.items()))
    per_preset = "; ".join(
        f"`{p}` {times(h['throughput_vs_best_baseline'])} throughput and "
        f"{times(h['energy_efficiency_vs_best_baseline'])} requests per joule" for p, h in result.headline.items()
    )
    return (
        "**Which baseline is \"the state of the art\".** The paper compares against the state of the art; the "
        "issue asks for ratios to cellular batching and to padding. Here the strongest baseline offline (highest "
        f"throughput) is {named} cases. Against the strongest baseline of each case E-BATCH gives (geometric "
        f"means) {per_preset}. Our cellular batching runs one time-step of one layer per invocation and "
        "re-reads that layer's weights at every invocation (DESIGN.md section 4), and its offline throughput "
        "grows with the number of queued requests (the `requests` rows of the sensitivity table), so ratios "
        "to it depend on how many requests are queued."
    )


def _static_text(result: ReproduceResult, preset: str, spec: HardwareSpec) -> str:
    """For a preset where static power is most of E-BATCH's energy."""
    cases = result.cases_on(preset)
    static = geomean([_share(c, "ebatch", "static") for c in cases])
    if not static > 0.5:
        return ""
    h = result.headline[preset]
    source = "assumed" if _assumed(spec, "static_power_w") else "published"
    text = (
        f"**Energy on `{preset}` is static power.** The `{preset}` preset charges the {source} "
        f"{spec.static_power_w:g} W static power for every second a step runs; that is {percent(static)} of "
        "E-BATCH's energy on it (geometric mean over networks). Energy per request is then nearly time per "
        f"request, so requests per joule move with throughput ({times(h['energy_efficiency_vs_cellular'])} vs "
        f"{times(h['throughput_vs_cellular'])})."
    )
    paper = result.paper.get(preset)
    if paper and paper["energy_efficiency"] < paper["throughput"]:
        text += (
            f" The paper's energy gain on this platform ({paper['energy_efficiency']}x) is below its throughput "
            f"gain ({paper['throughput']}x), so in its model a larger share of the energy is proportional to the "
            "work done (MACs, memory accesses) rather than to time; the abstract does not give that model, and we "
            "did not adjust the preset to match."
        )
    return text


def _assumed_text(result: ReproduceResult, preset: str, spec: HardwareSpec) -> str:
    """For a preset most of whose parameters are assumptions."""
    assumed = len(spec.assumptions)
    total = len(spec.parameter_names())
    if not assumed > total / 2:
        return ""
    cases = result.cases_on(preset)
    dram_cell = geomean([_share(c, "cellular", "dram") for c in cases])
    sram_cell = geomean([_share(c, "cellular", "sram") for c in cases])
    spill = []
    for c in cases:
        off = c.policies["ebatch"].offline
        weight_j = off.dram_weight_bytes * spec.dram_energy_j_per_byte
        dram_j = off.energy_breakdown_j["dram"]
        spill.append(f"{c.network} {percent(1 - weight_j / dram_j if dram_j > 0 else 0.0)}")
    dram_pj_per_bit = spec.dram_energy_j_per_byte * 1e12 / 8
    if dram_cell < 0.5:
        effect = ("so the weight re-fetching that the paper blames for cellular batching's energy costs less here "
                  "than in the paper")
    else:
        effect = "so the weight re-fetching that the paper blames for cellular batching's energy dominates here too"
    buffer_source = "assumed" if _assumed(spec, "activation_buffer_bytes") else "from the preset's source"
    text = (
        f"**`{preset}` energy depends on assumed numbers.** {assumed} of the {total} `{preset}` parameters are "
        f"assumptions (listed below). With DRAM at {dram_pj_per_bit:g} pJ/bit, DRAM is {percent(dram_cell)} of "
        f"cellular batching's energy on `{preset}` (SRAM {percent(sram_cell)}: every single-step invocation reads "
        f"its layer's weights from the buffer into the array), {effect}. The share of E-BATCH's own DRAM energy on "
        f"`{preset}` that is activation spill, not weights: {', '.join(spill)}; the cost model keeps a whole "
        "invocation's gate pre-activations (all its T x B cells) on chip and spills what exceeds the "
        f"`activation_buffer_bytes` ({spec.activation_buffer_bytes / 2**20:g} MiB, {buffer_source}, for "
        f"`{preset}`)."
    )
    if result.sensitivity:
        text += f" The sensitivity table shows how the `{preset}` ratios move with DRAM energy and buffer size."
    return text


def _layers_text(case: Case) -> str:
    layers = case.model.layers
    both = [str(i + 1) for i, layer in enumerate(layers) if layer.bidirectional]
    if len(both) == len(layers):
        return f"`{case.network}` is bidirectional throughout"
    return f"`{case.network}` has layer{'s' if len(both) > 1 else ''} {', '.join(both)} of {len(layers)} bidirectional"


def _bidirectional_text(result: ReproduceResult) -> str:
    first = result.cases_on(result.cases[0].preset)
    bidirectional = [c for c in first if c.model.bidirectional]
    if not bidirectional:
        return ""
    mode = policy_defaults("ebatch").get("bidirectional")
    who = ("All" if len(bidirectional) == len(first) else f"{len(bidirectional)} of the") + f" {len(first)}"
    names = {c.network for c in bidirectional}
    tuned = ", ".join(f"{c.network}/{c.preset}: T={c.tuned_timesteps}" for c in result.cases if c.network in names)
    text = (
        f"**{who} networks have a bidirectional layer** ({'; '.join(_layers_text(c) for c in bidirectional)}), "
        f"so E-BATCH, with its default `bidirectional=\"{mode}\"`, "
    )
    if mode != "pack":
        return text + f"runs them in that mode. The tuner's picks: {tuned}."
    return text + (
        "packs whole sequences per window (DESIGN.md section 4): a window is max(T, longest of the B oldest) wide, "
        "and T changes nothing until it exceeds that. Larger T puts several sequences one after another in the "
        f"first slots (first fit), which lengthens windows. The tuner's picks: {tuned}. The streaming mode "
        "(`bidirectional=\"stream\"`: every direction of every layer streams with its own slots, T decides how "
        "often weights are reloaded) is compared with packing in docs/bidirectional.md; it is not the default "
        "because its p99 latency under load is higher at every load point measured there."
    )


def _latency_text(result: ReproduceResult) -> str:
    over = sorted({f"{c.network}/{c.preset}" for c in result.cases if c.policies["cellular"].overloaded})
    text = (f"**Latency.** All policies see the same offered load, {result.config.load_fraction:g} x the best "
            "baseline's offline throughput. ")
    if over:
        text += (f"Cellular batching is overloaded at that load on {', '.join(over)} (its offline throughput is "
                 "lower), so its p99 there grows with the number of requests and the p99 ratio to it depends on "
                 "the run length; the latency-versus-load table shows the whole curve.")
    else:
        text += "Cellular batching is not overloaded at that load in any case."
    return text


def _falls(rows, preset: str, parameter: str) -> bool:
    values = [r.energy_efficiency_vs_cellular for r in rows if r.preset == preset and r.parameter == parameter]
    return len(values) > 1 and all(b < a for a, b in zip(values, values[1:]))


def _sensitivity_text(result: ReproduceResult) -> str:
    rows = result.sensitivity or ()
    if not rows:
        return ""
    parts = []
    presets = list(dict.fromkeys(r.preset for r in rows))
    for preset in presets:
        ranges = []
        for parameter in dict.fromkeys(r.parameter for r in rows):
            sub = [r for r in rows if r.preset == preset and r.parameter == parameter]
            eff = [r.energy_efficiency_vs_cellular for r in sub]
            thr = [r.throughput_vs_cellular for r in sub]
            ranges.append(f"{parameter} {times(min(eff))}-{times(max(eff))} "
                          f"(throughput {times(min(thr))}-{times(max(thr))})")
        parts.append(f"on `{preset}`, " + ", ".join(ranges))
    notes = []
    falling = [p for p in presets if _falls(rows, p, "weight_buffer_bytes")]
    if falling:
        notes.append(f"On {', '.join(f'`{p}`' for p in falling)} the ratio to cellular falls steadily as the weight "
                     "buffer grows: cellular batching's per-invocation weight loads start to hit on chip, which is "
                     "the effect the paper's argument rests on.")
    fewer = [r for r in rows if r.parameter == "requests"]
    test_set = {c.preset: [] for c in result.cases}
    for c in result.cases:
        test_set[c.preset].append(c.ratios["energy_efficiency_vs_cellular"])
    if fewer and all(r.energy_efficiency_vs_cellular > geomean(test_set[r.preset]) for r in fewer):
        notes.append("With fewer requests queued the ratios to cellular are larger: the last, partly filled "
                     "invocations weigh more in the makespan, and they cost cellular batching more than E-BATCH.")
    return ("**What drives the ratios** (sensitivity table; E-BATCH's requests per joule over cellular's as each "
            "parameter varies over its range): " + "; ".join(parts) + ". " + " ".join(notes)).rstrip()


def _auto_text(result: ReproduceResult) -> str:
    rows = result.auto_study or ()
    if not rows:
        return ""
    met = [r for r in rows if r.auto_meets_slo]
    whole = [r for r in rows if not r.streaming]
    stream = [r for r in rows if r.streaming]
    worse = [r for r in rows if r.auto_energy_vs_best_fixed > 1.0]
    text = f"**`timesteps=\"auto\"`** meets the p99 SLO in {len(met)} of {len(rows)} cases. "
    if whole:
        ratio = geomean([r.auto_energy_vs_best_fixed for r in whole])
        text += (f"With whole-sequence packing its energy per request is {times(ratio)} that of the best fixed T "
                 "meeting the SLO (geometric mean). The gain does not come from T (it changes little for these "
                 "models) but from the SLO's slack: when fewer than B requests are queued, the controller waits "
                 "(up to the latest start its learned window time allows) so windows run fuller, and the "
                 "per-time-step weight reads and recurrence are shared by more sequences. ")
    if stream:
        ratio = geomean([r.auto_energy_vs_best_fixed for r in stream])
        models = ", ".join(dict.fromkeys(r.network for r in stream))
        text += (f"With streaming slots (unidirectional: {models}) it is {times(ratio)} the best fixed T. There it "
                 "never stalls sequences in flight and holds only when every slot is empty, leaving half the "
                 "budget for a sequence's own time-steps, so it rarely holds; and it picks the largest T the "
                 "latency budget allows, which saves weight reloads, but it sees only time, not energy: where a "
                 "longer window adds tail padding without saving loads, it can pick a T above the energy "
                 "optimum. ")
    if worse:
        text += ("Cases where auto uses more energy than the best fixed T: "
                 + ", ".join(f"{r.network}/{r.preset} ({r.auto_energy_vs_best_fixed:.3f}x)" for r in worse) + ". ")
    missed = [r for r in rows if not r.auto_meets_slo]
    if missed:
        text += ("It misses the SLO on " + ", ".join(f"{r.network}/{r.preset}" for r in missed)
                 + ": its window-time model is fitted online, and a load peak can exceed what the margin covers.")
    return text


def discussion(result: ReproduceResult) -> str:
    """Markdown: the headline in words, then the reasons for each difference from the paper, numbered."""
    specs = _specs(result)
    parts = [_baseline_text(result)]
    parts += [_static_text(result, preset, spec) for preset, spec in specs.items()]
    parts += [_assumed_text(result, preset, spec) for preset, spec in specs.items()]
    parts += [_bidirectional_text(result), _latency_text(result), _sensitivity_text(result), _auto_text(result)]
    sections = ["## What the numbers say", "", *_headline_text(result), "", "## Why they differ from the paper", ""]
    for number, text in enumerate((p for p in parts if p), start=1):
        sections += [f"{number}. {text}", ""]
    return "\n".join(sections).rstrip()
