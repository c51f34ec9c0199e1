"""Comparisons at matched quality: a's metric against b's curve, read at a's value of another metric.

Guidance trades one metric for another along its scale (CFG buys FID and precision with recall), so
"IG keeps recall where CFG trades it away" compared at one scale each says more about the two scales
than about the two methods: a stronger CFG has the better FID and the worse recall. The fair test
holds FID fixed: b's recall read off its curve over its guidance settings, at a's FID. The curve is
piecewise linear through b's settings in the order the claim lists them (by scale); where it passes
a's FID more than once (guidance overshoots: FID falls, then rises again), b is read at its best
there, so that a is held against the frontier of b's trade-off as sampled.

The error comes from the bootstrap: every set of one sampling seed, label mode and sample count is
resampled on the same indices (:func:`ig.evaluation.uncertainty.is_paired`), so on each resample a
is read against b's curve of that resample, and the spread of those differences is the paired
difference's error, the interpolation's own uncertainty included. Over training seeds, the
per-seed matched differences and their spread (:func:`ig.evaluation.uncertainty.seed_difference`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from ig.errors import IGError
from ig.evaluation.record import MetricsRecord
from ig.evaluation.uncertainty import LOWER_IS_BETTER, Difference, is_paired, seed_difference

MAX_OUTSIDE = 0.1  # resamples whose a lies beyond b's curve, above which the comparison is refused


def read_at(x: float, xs: Sequence[float], ys: Sequence[float], best: Callable[[list[float]], float] = max) -> float:
    """The curve through the points ``(xs, ys)`` in their order (b's settings by scale) read at ``x``,
    linear between neighbours. Where it passes ``x`` more than once (a stronger guidance overshoots and
    FID rises again), the ``best`` of the readings: b at its best at that ``x``. NaN where it never
    reaches ``x``: an extrapolation is not a measurement."""
    readings = [
        y0 if x1 == x0 else y0 + (x - x0) * (y1 - y0) / (x1 - x0)
        for (x0, y0), (x1, y1) in itertools.pairwise(zip(xs, ys, strict=True))
        if min(x0, x1) <= x <= max(x0, x1)
    ]
    return best(readings) if readings else math.nan


def matched_delta(a: MetricsRecord, curve: Sequence[MetricsRecord], metric: str, match: str) -> float:
    """``a``'s ``metric`` minus b's curve's at ``a``'s ``match`` value; one line naming the fix when
    ``a`` lies beyond the curve."""
    xs = [s.value(match) for s in curve]
    at = read_at(a.value(match), xs, [s.value(metric) for s in curve], _best(metric))
    if math.isnan(at):
        raise IGError(
            f"a's {match} {a.value(match):.3g} lies outside b's curve ({min(xs):.3g} to {max(xs):.3g}): "
            f"add a setting of b beyond it"
        )
    return a.value(metric) - at


def _best(metric: str) -> Callable[[list[float]], float]:
    return min if LOWER_IS_BETTER[metric] else max


def matched_difference(a: MetricsRecord, curve: Sequence[MetricsRecord], metric: str, match: str) -> Difference:
    """One training seed: ``a − b`` at matched ``match``, its error from the paired resamples."""
    if len(curve) < 2:
        raise IGError("a curve needs at least two settings of b")
    if not all(is_paired(a, s) for s in curve):
        raise IGError("a matched comparison needs sets of the same sampling seed, labels, count and resampling")
    delta = matched_delta(a, curve, metric, match)
    xs = np.stack([s.replicates(match) for s in curve])  # (settings, resamples)
    ys = np.stack([s.replicates(metric) for s in curve])
    a_xs, a_ys = a.replicates(match), a.replicates(metric)
    best = _best(metric)
    deltas = np.array([a_ys[r] - read_at(a_xs[r], xs[:, r], ys[:, r], best) for r in range(len(a_xs))])
    outside = np.isnan(deltas).mean()
    if outside > MAX_OUTSIDE:
        raise IGError(
            f"a's {match} {a.value(match):.3g} lies beyond b's curve in {100 * outside:.0f} % of the resamples "
            f"(at its edge): compare a setting of a further inside b's range, or add settings of b around it"
        )
    return Difference(delta, float(np.nanstd(deltas, ddof=1)), True)


def matched_over_seeds(
    a: Sequence[MetricsRecord], curves: Sequence[Sequence[MetricsRecord]], metric: str, match: str
) -> Difference:
    """``a − b`` at matched ``match`` over training seeds: seed i of a against seed i's curve of b
    (one seed: :func:`matched_difference`; several: the mean of per-seed differences, Student t)."""
    if len(a) != len(curves):
        raise IGError(
            f"a matched comparison needs the same training seeds on both sides, got {len(a)} and {len(curves)}"
        )
    if len(a) == 1:
        return matched_difference(a[0], curves[0], metric, match)
    return seed_difference([matched_delta(ai, ci, metric, match) for ai, ci in zip(a, curves, strict=True)])
