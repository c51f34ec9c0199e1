"""The paper's statements about its 2D toy, each judged over training seeds: ``claims.md``.

A claim says that row ``a`` of the table beats row ``b`` on one metric (or, for a "matches"
claim, is no worse). Every seed trains its own networks and samples every row from the same
noise, so ``a − b`` is taken per seed and judged by the project's one rule,
:func:`ig.evaluation.uncertainty.verdict`, on :func:`~ig.evaluation.uncertainty.seed_difference`
(mean ± standard error, Student-t interval over seeds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ig.evaluation.uncertainty import outcome, seed_difference, verdict
from ig.toy2d.metrics import DISPLAY, LOWER_IS_BETTER, show
from ig.utils.io import atomic_path, write_json


@dataclass(frozen=True)
class Claim:
    """``statement``: row ``a`` beats row ``b`` on ``metric`` (``matches``: is no worse than it)."""

    label: str
    statement: str
    a: str
    b: str
    metric: str
    matches: bool = False


def check(claim: Claim, per_seed: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """The claim with its per-seed differences, their mean, error and interval, verdict and result."""
    deltas = [m[claim.a][claim.metric] - m[claim.b][claim.metric] for m in per_seed]
    difference = seed_difference(deltas)
    judged = verdict(difference, claim.metric, LOWER_IS_BETTER)
    return {
        **asdict(claim),
        "lower_is_better": LOWER_IS_BETTER[claim.metric],
        "a_mean": sum(m[claim.a][claim.metric] for m in per_seed) / len(per_seed),
        "b_mean": sum(m[claim.b][claim.metric] for m in per_seed) / len(per_seed),
        "deltas": deltas,
        "delta": difference.delta,
        "se": difference.se,
        "interval": list(difference.interval),
        "verdict": judged,
        "result": outcome("matches" if claim.matches else "better", judged),
        # in the units of the metrics table, for reports that do not import the toy (ig claims)
        "shown": {
            "metric": DISPLAY[claim.metric][0],
            "delta": show(claim.metric, difference.delta),
            "se": show(claim.metric, difference.se),
        },
    }


def write_claims(out_dir: Path, results: list[dict[str, Any]]) -> str:
    """``claims.json`` (the seed count and ``results`` as given) and ``claims.md``; returns the Markdown."""
    seeds = len(results[0]["deltas"])
    lines = [
        "| | claim | a | b | metric | mean a | mean b | a − b ± se | 95 % interval | verdict | result |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in results:
        m = r["metric"]
        low, high = r["interval"]
        lines.append(
            f"| {r['label']} | {r['statement']} | {r['a']} | {r['b']} | {m} | {show(m, r['a_mean'])} "
            f"| {show(m, r['b_mean'])} | {show(m, r['delta'])} ± {show(m, r['se'])} "
            f"| [{show(m, low)}, {show(m, high)}] | {r['verdict']} | **{r['result']}** |"
        )
    markdown = (
        f"The paper's statements about its toy, over {seeds} seeds. Each seed trains its own networks and samples "
        "every row from the same noise; a − b is taken per seed (mean ± standard error, 95 % Student-t interval "
        "over seeds) and judged by the project's one rule (`ig.evaluation.uncertainty.verdict`). A claim that a "
        "beats b is reproduced when a is better, not reproduced when worse, inconclusive within noise; a claim "
        "that a matches b is reproduced unless a is worse. Metrics in the units of `metrics.md`.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    write_json(out_dir / "claims.json", {"seeds": seeds, "claims": results})
    with atomic_path(out_dir / "claims.md") as tmp:
        tmp.write_text(markdown)
    return markdown
