"""Comparisons at matched quality: a's metric against b's curve, read at a's value of another metric.

Guidance trades one metric for another along its scale (CFG buys FID and precision with recall), so
"IG keeps recall where CFG trades it away" compared at one scale each says more about the two scales
than about the two methods: a stronger CFG has the better FID and the worse recall. The fair test
holds FID fixed: b's recall read off its curve over its guidance settings, at a's FID. The curve is
piecewise linear through b's settings in order of their FID (the trade-off's frontier as sampled).

The error comes from the bootstrap: every set of one sampling seed, label mode and sample count is
resampled on the same indices (:func:`ig.evaluation.uncertainty.is_paired`), so on each resample a
is read against b's curve of that resample, and the spread of those differences is the paired
difference's error, the interpolation's own uncertainty included. Over training seeds, the
per-seed matched differences and their spread (:func:`ig.evaluation.uncertainty.seed_difference`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ig.errors import IGError
from ig.evaluation.record import MetricsRecord
from ig.evaluation.uncertainty import Difference, is_paired, seed_difference

MAX_OUTSIDE = 0.1  # resamples whose a lies beyond b's curve, above which the comparison is refused


def read_at(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """The piecewise-linear curve through the points ``(xs, ys)``, in order of ``xs``, at ``x``
    (NaN outside the curve's range: an extrapolation is not a measurement)."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    order = np.argsort(xs, kind="stable")
    return float(np.interp(x, xs[order], ys[order], left=np.nan, right=np.nan))


def matched_delta(a: MetricsRecord, curve: Sequence[MetricsRecord], metric: str, match: str) -> float:
    """``a``'s ``metric`` minus b's curve's at ``a``'s ``match`` value; one line naming the fix when
    ``a`` lies beyond the curve."""
    xs = [s.value(match) for s in curve]
    at = read_at(a.value(match), xs, [s.value(metric) for s in curve])
    if np.isnan(at):
        raise IGError(
            f"a's {match} {a.value(match):.3g} lies outside b's curve ({min(xs):.3g} to {max(xs):.3g}): "
            f"add a setting of b beyond it"
        )
    return a.value(metric) - at


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
    deltas = np.array([a_ys[r] - read_at(a_xs[r], xs[:, r], ys[:, r]) for r in range(len(a_xs))])
    outside = np.isnan(deltas).mean()
    if outside > MAX_OUTSIDE:
        raise IGError(
            f"a's {match} lies beyond b's curve in {100 * outside:.0f} % of the resamples: "
            f"add a setting of b beyond {a.value(match):.3g}"
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
