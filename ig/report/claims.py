"""``ig claims``: the paper's claims, each with the paper's figure, ours ± error and a verdict.

A campaign's ``claims:`` section lists what the paper says and which of our sample sets test it:

- ``kind: compare`` (the default): setting ``a`` against setting ``b`` on one metric; the paper says
  ``a`` is ``better`` than ``b``, ``worse``, or ``matches`` it (within the claim's ``margin``). Ours
  is the paired difference ``a − b`` (:func:`ig.report.results.difference`: per training seed and
  over seeds when both have several, else the paired bootstrap), tested one-sided in the paper's
  direction, or by TOST against the margin.
- ``kind: matched``: ``a`` against ``b`` at matched quality (recall at the same FID):
  :mod:`ig.evaluation.matched` reads b's ``metric`` off its ``curve`` (b's guidance settings, e.g.
  CFG's scales) at a's value of ``match``, so that a method is not judged against another's
  stronger or weaker setting; tested like ``compare``.
- ``kind: steps_to_reach``: run ``a`` reaches run ``b``'s value at ``b``'s last milestone in fewer
  training steps (the training-speed claim): :func:`ig.evaluation.speedup.steps_to_reach`, a's
  monotone mean curve against the target with its own error; inconclusive when it cannot decide.

The campaign's claims are one family: their p-values are adjusted together (Holm), and a claim is
reproduced only when its adjusted p-value is at most 5 % (:func:`judge_family`).

The paper's figure is ``a − b`` of the two rows the claim names in ``results/paper/numbers.csv``;
in another feature space (the embedded campaigns' classifier) only its sign and relative size
compare with ours, which the report says. The report (``README.md`` of the campaign) is written
from the numbers alone, with the campaign's settings listed from its config.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ig import campaign as campaign_mod
from ig.campaign import Campaign, SampleSet
from ig.models.sizes import model_options
from ig.report.tables import decimals
from ig.utils.io import atomic_path, read_json, write_json

# The results and their statistics (ig.report.results, ig.evaluation.uncertainty) import pandas,
# scipy and torch: imported where used, so that `ig claims --help` needs none of them.


@dataclass(frozen=True)
class Finding:
    """One claim judged: ``p`` is its test's p-value (one-sided in the claimed direction; TOST for
    ``matches``; None when not evaluated), ``p_adjusted`` the same after Holm over the campaign's
    claims, and ``outcome`` what that says (:func:`ig.evaluation.uncertainty.claim_outcome`)."""

    claim: str
    metric: str
    paper: str
    ours: str
    outcome: str
    detail: dict[str, Any]
    p: float | None = None
    p_adjusted: float | None = None


@dataclass(frozen=True)
class Test:
    """A claim's evidence before the family is adjusted: its finding, and how an adjusted p-value
    turns into an outcome."""

    finding: Finding
    decide: Callable[[float], str] | None = None


def _paper_row(claim: dict, side: str) -> dict:
    key = claim["paper"]
    return {"table": key["table"], "method": key[side]} | (
        {"iterations": key["iterations"]} if "iterations" in key else {}
    )


def _paper_effect(paper, claim: dict) -> tuple[float | None, str]:
    """The paper's ``a − b`` on the claim's metric, and how the report shows it."""
    from ig.report.results import paper_value

    if not claim.get("paper"):
        return None, "–"
    numbers = [paper_value(paper, _paper_row(claim, side), claim["metric"]) for side in ("a", "b")]
    if None in numbers:
        return None, "–"
    a, b = numbers
    f = f".{decimals(claim['metric'])}f"
    grades = sorted({n.grade for n in numbers} - {"table"})
    graded = f" [{', '.join(grades)}]" if grades else ""  # a figure reading or a secondary source says so
    return a.value - b.value, f"{b.value:{f}}{b.mark} → {a.value:{f}}{a.mark} ({a.value - b.value:+{f}}){graded}"


def _paper_steps(paper, claim: dict) -> str:
    """The paper's training-speed figure: the iterations at which its curve of ``a`` reaches the value
    of ``b`` at ``b``'s last iteration (rows of one table and metric with ``iterations``)."""
    from ig.evaluation.uncertainty import LOWER_IS_BETTER
    from ig.report.results import paper_grade

    if not claim.get("paper"):
        return "–"
    key, metric = claim["paper"], claim["metric"]
    curves, grades = {}, set()
    for side in ("a", "b"):
        rows = paper[(paper["table"] == key["table"]) & (paper["method"] == key[side]) & (paper["metric"] == metric)]
        grades |= {paper_grade(r.source, r.note) for r in rows.itertuples() if r.iterations}
        curves[side] = sorted((int(r.iterations), float(r.value)) for r in rows.itertuples() if r.iterations)
    if not curves["a"] or not curves["b"]:
        return "–"
    graded = f" [{', '.join(sorted(grades - {'table'}))}]" if grades - {"table"} else ""
    b_step, target = curves["b"][-1]
    steps, values = zip(*curves["a"], strict=True)
    reached = crossing_step(list(steps), list(values), target, LOWER_IS_BETTER[metric])
    if reached is None:
        return f"not reached by {b_step:,}{graded}"
    return f"{reached:,.0f} vs {b_step:,} iterations ({b_step / reached:.1f}× faster){graded}"


def compare(c: Campaign, claim: dict, metrics: dict, paper) -> Test:
    from ig.evaluation.uncertainty import OUTCOMES, claim_outcome, claim_p_value, verdict
    from ig.report.results import cell, difference

    metric, expect, margin = claim["metric"], claim["expect"], claim.get("margin")
    a, b = (cell(c.row_sets(claim[side]), metrics, metric) for side in ("a", "b"))
    effect, paper_text = _paper_effect(paper, claim)
    if a is None or b is None:
        return Test(Finding(claim["claim"], metric, paper_text, "not evaluated", OUTCOMES[2], {}))
    d = difference(a, b, metric)
    judged = verdict(d, metric)
    low, high = d.interval
    seeds = f", {a.n} seeds" if a.n > 1 else ""
    f = f".{decimals(metric)}f"
    within = f", margin ±{margin:{f}}" if expect == "matches" else ""
    ours = f"{b.value:{f}} → {a.value:{f}} ({d.delta:+{f}} ± {d.se:{f}}{seeds}{within}; {judged})"
    detail = {"a": a.value, "b": b.value, "delta": d.delta, "se": d.se, "interval": [low, high], "dof": d.dof,
              "paired": d.paired, "verdict": judged, "paper_delta": effect, "margin": margin}  # fmt: skip
    p = claim_p_value(d, expect, metric, margin)
    finding = Finding(claim["claim"], metric, paper_text, ours, "", detail, p)
    return Test(finding, lambda p_adjusted: claim_outcome(d, expect, metric, p_adjusted, margin))


def matched(c: Campaign, claim: dict, metrics: dict, paper) -> Test:
    from ig.errors import IGError
    from ig.evaluation.matched import matched_over_seeds
    from ig.evaluation.uncertainty import OUTCOMES, claim_outcome, claim_p_value, verdict

    metric, match, expect, margin = claim["metric"], claim["match"], claim["expect"], claim.get("margin")
    effect, paper_text = _paper_effect(paper, claim)
    a_sets = c.row_sets(claim["a"])  # one per training seed of a's run
    b_sets = list(zip(*(c.row_sets({**claim["b"], "guidance": g}) for g in claim["curve"]), strict=True))  # per b seed
    read = [*a_sets, *(s for curve in b_sets for s in curve)]
    if any(s not in metrics or None in (metrics[s].value(metric), metrics[s].value(match)) for s in read):
        return Test(Finding(claim["claim"], metric, paper_text, "not evaluated", OUTCOMES[2], {}))
    a = [metrics[s] for s in a_sets]
    curves = [[metrics[s] for s in curve] for curve in b_sets]
    try:
        d = matched_over_seeds(a, curves, metric, match)
    except IGError as e:
        return Test(Finding(claim["claim"], metric, paper_text, f"not evaluated: {e}", OUTCOMES[2], {}))
    judged = verdict(d, metric)
    f, at = f".{decimals(metric)}f", float(np.mean([r.value(match) for r in a]))
    seeds = f", {len(a)} seeds" if len(a) > 1 else ""
    a_value = float(np.mean([r.value(metric) for r in a]))
    ours = (f"{a_value - d.delta:{f}} → {a_value:{f}} at {match} {at:.{decimals(match)}f} "
            f"({d.delta:+{f}} ± {d.se:{f}}{seeds}; {judged})")  # fmt: skip
    detail = {"a": a_value, "b_at_match": a_value - d.delta, "match": match, "at": at, "curve": claim["curve"],
              "delta": d.delta, "se": d.se, "interval": list(d.interval), "dof": d.dof, "paired": d.paired,
              "verdict": judged, "paper_delta": effect}  # fmt: skip
    finding = Finding(claim["claim"], metric, paper_text, ours, "", detail, claim_p_value(d, expect, metric, margin))
    return Test(finding, lambda p_adjusted: claim_outcome(d, expect, metric, p_adjusted, margin))


def crossing_step(steps: list[int], values: list[float], target: float, lower_is_better: bool) -> float | None:
    """The first training step at which the curve reaches ``target`` (linear between milestones)."""
    reached = [(v <= target) if lower_is_better else (v >= target) for v in values]
    for i, ok in enumerate(reached):
        if ok:
            if i == 0:
                return float(steps[0])
            s0, s1, v0, v1 = steps[i - 1], steps[i], values[i - 1], values[i]
            return s0 + (target - v0) * (s1 - s0) / (v1 - v0)
    return None


def steps_to_reach(c: Campaign, claim: dict, metrics: dict, paper) -> Test:
    """Training steps for ``a`` to reach ``b``'s value at ``b``'s last milestone
    (:func:`ig.evaluation.speedup.steps_to_reach`: a's mean curve over its seeds made monotone, the
    target with its own error, an interval that is unbounded when it cannot decide)."""
    from ig.evaluation.speedup import steps_to_reach as reach_of
    from ig.evaluation.uncertainty import ALPHA, LOWER_IS_BETTER, OUTCOMES
    from ig.report.results import cell

    metric, labels = claim["metric"], claim["a"].get("labels", "random")
    guidance = claim["a"].get("guidance", "none")
    target = cell(c.row_sets({**claim["b"], "milestone": "last"}), metrics, metric)
    b_step = c.milestone_step(c.groups[claim["b"]["run"]][0], c.milestones(claim["b"]["run"])[-1])
    paper_text = _paper_steps(paper, claim)
    seeds = c.groups[claim["a"]["run"]]
    milestones = [m for m in c.milestones(seeds[0]) if all(SampleSet(r, m, guidance, labels) in metrics for r in seeds)]
    if target is None or not milestones:
        return Test(Finding(claim["claim"], metric, paper_text, "not evaluated", OUTCOMES[2], {}))
    sets = [[metrics[SampleSet(r, m, guidance, labels)] for m in milestones] for r in seeds]
    reach = reach_of(
        [c.milestone_step(seeds[0], m) for m in milestones],
        [[s.value(metric) for s in row] for row in sets],
        [[s.se(metric) or 0.0 for s in row] for row in sets],
        target.error,
        LOWER_IS_BETTER[metric],
    )
    judged = reach.verdict(b_step)  # fewer steps is better
    steps = "not reached" if math.isinf(reach.step) else f"{reach.step:,.0f} steps"
    high = "∞" if math.isinf(reach.high) else f"{reach.high:,.0f}"
    ours = f"{steps} (95 %: {reach.low:,.0f}–{high}) vs {b_step:,}, {len(seeds)} seed(s); {judged}"
    detail = {"target": target.value, "target_se": target.error.se, "b_steps": b_step, "steps": reach.step,
              "interval": [reach.low, reach.high], "speedup": reach.speedup(b_step), "verdict": judged}  # fmt: skip
    finding = Finding(claim["claim"], metric, paper_text, ours, "", detail, reach.p_sooner(b_step))

    def decide(p_adjusted: float) -> str:
        if p_adjusted <= ALPHA:
            return OUTCOMES[0]
        return OUTCOMES[1] if judged == "worse" else OUTCOMES[2]

    return Test(finding, decide)


KINDS = {"compare": compare, "matched": matched, "steps_to_reach": steps_to_reach}


def findings(c: Campaign, paper_csv: str | Path) -> list[Finding]:
    from ig.report.results import load_paper, load_results

    metrics, paper = load_results(c).metrics, load_paper(paper_csv)
    return judge_family([KINDS[claim["kind"]](c, claim, metrics, paper) for claim in c.config["claims"]])


def judge_family(tests: list[Test]) -> list[Finding]:
    """The campaign's claims judged as one family: Holm's adjustment over every evaluated claim's
    p-value, so that the chance of calling any false claim reproduced stays at most 5 %."""
    from ig.evaluation.uncertainty import holm

    tested = [t for t in tests if t.decide is not None]
    adjusted = dict(zip(map(id, tested), holm([t.finding.p for t in tested]), strict=True))
    judged = []
    for t in tests:
        if t.decide:
            p, detail = adjusted[id(t)], t.finding.detail | detectable(t.finding.detail, len(tested))
            judged.append(replace(t.finding, p_adjusted=p, outcome=t.decide(p), detail=detail))
        else:
            judged.append(t.finding)
    return judged


def detectable(detail: dict[str, Any], family: int) -> dict[str, Any]:
    """The power analysis of a difference claim: the smallest true |a − b| its one-sided test finds
    with 80 % power at its error, alone (α) and at Holm's strictest level (α over the family's size,
    what the family's most significant claim must pass). Nothing for the speed-up claims, whose
    interval says what they can resolve."""
    from ig.evaluation.uncertainty import ALPHA, Difference

    if "se" not in detail:
        return {}
    d = Difference(detail["delta"], detail["se"], detail["paired"], detail["dof"])
    power = {"alpha": d.detectable(ALPHA), "holm_strictest": d.detectable(ALPHA / family), "family": family}
    return {"detectable": power}


def settings_summary(c: Campaign) -> list[str]:
    """The campaign's settings, read off its config (so that no figure in the report is typed by hand)."""
    lines = []
    for name, runs in c.groups.items():
        spec = c.runs[runs[0]]
        if "train" not in spec:
            continue
        model = spec["train"]["model"]
        options = model_options(**model)
        seeds = f"{len(runs)} training seeds" if len(runs) > 1 else "1 training seed"
        head = f"head after block {options['ig_layer']}" if options["ig_layer"] else "no intermediate head"
        loss = spec["train"].get("loss", {})
        lines.append(
            f"- `{name}`: {model['name']} with {options['depth']} blocks of width {options['hidden_size']}, {head}, "
            f"λ = {loss.get('lam', 0.5)}, ω = {loss.get('omega', 0.0)}; {spec['train']['global_batch']} images per "
            f"step to {c.milestone_step(runs[0], spec['milestones'][-1]):,} steps; {seeds}"
        )
    s = c.sampling_defaults
    lines.append(
        f"- sampling: {s.sampler.method} with {s.sampler.steps} steps, {s.num_samples:,} samples per setting "
        f"(paired: the same noise and labels in every setting), sampling seed {s.seed}"
    )
    lines.append(f"- features: `{c.config['evaluation']['extractor']}`")
    return lines


def power_section(found: list[Finding]) -> list[str]:
    """What each difference claim can detect at this campaign's size (:func:`detectable`)."""
    from ig.evaluation.uncertainty import POWER
    from ig.report.results import METRIC_NAMES

    rows = [f for f in found if "detectable" in f.detail]
    if not rows:
        return []
    family = rows[0].detail["detectable"]["family"]  # the size judge_family adjusted over
    lines = [
        "",
        "## What each claim can detect",
        "",
        f"The smallest true a − b that each comparison finds with {100 * POWER:.0f} % power at its error, tested "
        f"one-sided at 5 % alone and at 5 %/{family} (Holm's strictest step, which the family's most significant "
        "claim must pass): a smaller true effect most likely comes out *inconclusive* here. The speed-up claims "
        "are left out: their interval says what they resolve.",
        "",
        f"| Claim | Metric | s.e. | Detectable at 5 % | at 5 %/{family} |",
        "|---|---|---|---|---|",
    ]
    for f in rows:
        fmt, power = f".{decimals(f.metric) + 1}f", f.detail["detectable"]
        lines.append(f"| {f.claim} | {METRIC_NAMES.get(f.metric, f.metric)} | {f.detail['se']:{fmt}} | "
                     f"{power['alpha']:{fmt}} | {power['holm_strictest']:{fmt}} |")  # fmt: skip
    return lines


def toy_section(claims: dict[str, Any]) -> list[str]:
    """The 2D toy's verdicts (``ig toy2d``'s ``claims.json``), in the units of its metrics table."""
    rows = claims["claims"]
    counts = {o: sum(r["result"] == o for r in rows) for o in dict.fromkeys(r["result"] for r in rows)}
    lines = [
        "",
        "## The 2D toy",
        "",
        f"Over {claims['seeds']} seeds, each training its own networks and sampling every method from the same "
        "noise; a − b per seed, mean ± standard error, the same verdict rule (`toy2d/claims.md` explains the "
        "metrics). **Verdicts:** " + ", ".join(f"{n} {o}" for o, n in counts.items()) + f" (of {len(rows)}).",
        "",
        "| The paper says | a vs b | Metric | a − b ± s.e. | Verdict |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        shown = r["shown"]  # the toy's own units
        lines.append(f"| {r['statement']} | {r['a']} vs {r['b']} | {shown['metric']} | "
                     f"{float(shown['delta']):+g} ± {shown['se']} | **{r['result']}** |")  # fmt: skip
    return lines


def tuning_section(traces: dict[str, dict[str, Any]]) -> list[str]:
    """What ``ig tune`` chose for each target, at what cost against the grid of its candidates."""
    from ig.tuning import extension_budget_spent

    lines = ["", "## Guidance tuning", "",
             "| Target | Chosen | FD ± s.e. (samples) | Images sampled (candidates) | Share of the grid's |",
             "|---|---|---|---|---|"]  # fmt: skip
    for target, t in traces.items():
        last, metric = t["candidates"][t["chosen_index"]]["rungs"][-1], t["metric"]
        tried = t.get("extensions", [])  # settings tried past the space's edges (ig.tuning.extend_edges)
        spent = ", extension budget spent" if extension_budget_spent(t) else ""
        edge = f" (at the edge of the space in {', '.join(t['chosen_at_edge'])}{spent})" if t["chosen_at_edge"] else ""
        candidates = f"{len(t['candidates']) - len(tried)}" + (f" + {len(tried)} past its edges" if tried else "")
        lines.append(f"| {target} | {t['chosen_label']}{edge} | {last[metric]:.2f} ± {last['se']:.2f} "
                     f"({last['num_samples']:,}) | {t['sampled_images']:,} ({candidates}) | "
                     f"{100 * t['sample_share']:.0f} % |")  # fmt: skip
    return lines


def to_markdown(
    c: Campaign, found: list[Finding], extractor: str | None, toy: dict | None = None, traces: dict | None = None
) -> str:
    from ig.evaluation.uncertainty import OUTCOMES
    from ig.report.results import METRIC_NAMES, PAPER_GRADE_LEGEND

    counts = {o: sum(f.outcome == o for f in found) for o in OUTCOMES}
    lines = [
        f"# {c.config.get('title', c.name)}",
        "",
        "Generated by `ig claims` from this campaign's metrics; every number below is computed, none typed.",
        "",
        "**Verdicts:** " + ", ".join(f"{n} {o}" for o, n in counts.items()) + f" (of {len(found)} claims).",
        "",
        "| Claim | Metric | Paper (b → a) | Ours (b → a, a − b ± s.e.) | p (Holm) | Verdict |",
        "|---|---|---|---|---|---|",
    ]
    for f in found:
        p = "–" if f.p is None else f"{f.p:.2g} ({f.p_adjusted:.2g})"
        metric = METRIC_NAMES.get(f.metric, f.metric)
        lines.append(f"| {f.claim} | {metric} | {f.paper} | {f.ours} | {p} | **{f.outcome}** |")
    lines += [
        "",
        "How to read it: ours is the paired difference of sample sets drawn from the same noise and labels; "
        "over several training seeds (each sampled from its own noise), the mean of per-seed differences with "
        "its Student-t error, which holds training and sampling noise. Each claim is tested in the paper's "
        "direction (one-sided; a claim that two settings *match*: TOST against the config's margin), and the "
        "campaign's claims as one family: p is the test's p-value, (Holm) the same adjusted over the family. "
        "A claim is *reproduced* when its adjusted p ≤ 0.05, *not reproduced* when our 95 % interval lies on "
        "the other side (or beyond the margin), *inconclusive* (at this scale) otherwise "
        "(`ig.evaluation.uncertainty.claim_outcome`). Paper figures: " + PAPER_GRADE_LEGEND + "; a claim "
        "judged against such a number says so in brackets.",
    ]
    if extractor and not extractor.startswith("inception"):
        lines.append(
            f"Our metrics are in the feature space of `{extractor}`, not Inception: compare the direction and "
            "relative size of effects with the paper's, not the values."
        )
    lines += power_section(found)
    if toy:
        lines += toy_section(toy)
    if traces:
        lines += tuning_section(traces)
    lines += ["", "## Setting", "", *settings_summary(c)]
    if c.config.get("notes"):
        lines += ["", c.config["notes"].strip()]
    lines += ["", "Tables: `tables/`; plots: `plots/`; every metrics file: `metrics/`."]
    return "\n".join(lines) + "\n"


WORKFLOW_DESCRIPTION = Path(__file__).resolve().parents[2] / "workflow" / "report" / "workflow.rst"


def report_intro(c: Campaign, found: list[Finding], pending: list[str]) -> str:
    """The first page of the campaign's ``snakemake --report`` (reStructuredText): the claims'
    verdicts and the pending cells, then the workflow's description."""
    from ig.evaluation.uncertainty import OUTCOMES

    counts = ", ".join(f"{sum(f.outcome == o for f in found)} {o}" for o in OUTCOMES)
    lines = [f"**Verdicts of the paper's claims:** {counts} (of {len(found)}; the README has the details).", ""]
    for f in found:
        p = "" if f.p_adjusted is None else f"; p (Holm) {f.p_adjusted:.2g}"
        lines.append(f"* **{f.outcome}**: {f.claim} ({f.metric}): {f.ours}{p}")
    if pending:
        lines += ["", f"**Pending** ({len(pending)} sample sets: missing, failed or out of date):", ""]
        lines += [f"* {line.removeprefix('- ').replace('`', '``')}" for line in pending]
    return "\n".join(lines) + "\n\n" + WORKFLOW_DESCRIPTION.read_text()


def write_claims(c: Campaign, paper_csv: str | Path, out: str | Path) -> list[Finding]:
    """The campaign README (and its findings as JSON beside it), with the 2D toy's verdicts and what
    each tuning target chose when the campaign has them."""
    from ig.report.results import load_results, pending_lines

    found = findings(c, paper_csv)
    results = load_results(c)
    extractor = next((m.extractor for m in results.metrics.values()), None)
    toy_path = Path(c.path("toy2d_claims"))
    toy = read_json(toy_path, "the 2D toy's claims") if c.config["toy2d"]["enabled"] and toy_path.is_file() else None
    traces = {
        t: read_json(path, "tuning trace")
        for t in c.config["tuning"]
        if (path := Path(c.path("tuning_trace", tuning=t))).is_file()
    }
    write_json(Path(out).with_suffix(".json"), [dataclasses.asdict(f) for f in found])
    with atomic_path(c.path("report_intro")) as tmp:
        tmp.write_text(report_intro(c, found, pending_lines(results)))
    with atomic_path(out) as tmp:
        pending = pending_lines(results)
        text = to_markdown(c, found, extractor, toy, traces)
        tmp.write_text(
            text
            + (
                "\n## Pending\n\nClaims marked *not evaluated* wait for these sample sets:\n\n"
                + "\n".join(pending)
                + "\n"
                if pending
                else ""
            )
        )
    return found


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="workflow config (results/<name>/campaign.yaml)")
    p.add_argument("--paper", default="results/paper/numbers.csv", help="the paper's numbers")
    p.add_argument("--out", required=True, help="report to write (Markdown; a .json beside it)")


def run(args: argparse.Namespace) -> None:
    for f in write_claims(campaign_mod.load(args.config), args.paper, args.out):
        print(f"{f.outcome:>28}: {f.claim} ({f.ours})")
