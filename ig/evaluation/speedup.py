"""Training speed: the step at which a run's metric curve first reaches a target, with its interval.

The paper's speed claim: run a reaches the value that run b has at its last milestone in fewer
training steps. Our estimate: a's curve, the mean over its training seeds at each milestone, made
monotone by isotonic regression (the expected curve improves with training; noise that makes it
dip and rise again would give several crossings), linear between milestones, crossed with the
target (b's cell, itself an estimate with an error).

**Interval.** The steps at which the target is within the 95 % band of the curve: at each
milestone, a's cell over its seeds (:func:`~ig.evaluation.uncertainty.seed_mean`: the seeds'
spread, which holds their training and sampling noise) minus the target, with the error of two
independent estimates (:func:`~ig.evaluation.uncertainty.independent_difference`, Welch's t),
its band linear between milestones. The crossing's interval runs from where the band's better edge
first reaches the target to where its worse edge last misses it. This is the limit of a bootstrap
over seeds and over the target's error that moves each curve by one draw of its error: a bootstrap
that drew the curve's and the target's t errors independently covered 98.7 % for 95 % in
simulation (it ignores that two variance estimates average out: Welch), and resampling 2–5 seeds
understates their spread. If the worse edge still misses the target at the last milestone, the
interval is unbounded (∞): a reaches the target at some later step or never, and a claim of "sooner"
cannot be decided. A crossing before the first milestone counts as at it (nothing earlier was
measured). ``tests/test_calibration.py`` checks the interval's coverage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import isotonic_regression

from ig.errors import IGError
from ig.evaluation.uncertainty import Difference, independent_difference, seed_mean


def first_reach(steps: np.ndarray, curve: np.ndarray) -> float:
    """The first step at which the piecewise-linear ``curve`` is ≤ 0 (∞ if it never is)."""
    below = np.flatnonzero(curve <= 0)
    if not len(below):
        return math.inf
    k = below[0]
    if k == 0:
        return float(steps[0])
    return float(steps[k - 1] + curve[k - 1] / (curve[k - 1] - curve[k]) * (steps[k] - steps[k - 1]))


def last_miss(steps: np.ndarray, curve: np.ndarray) -> float:
    """The last step at which the piecewise-linear ``curve`` is ≥ 0 (∞ if it still is at the end)."""
    above = np.flatnonzero(curve >= 0)
    if not len(above):
        return float(steps[0])
    k = above[-1]
    if k == len(steps) - 1:
        return math.inf
    return float(steps[k] + curve[k] / (curve[k] - curve[k + 1]) * (steps[k + 1] - steps[k]))


@dataclass(frozen=True)
class Reach:
    """When a curve first reaches its target: ``step`` (∞: not by the last milestone), the 95 %
    interval ``low``–``high``, and ``gaps``: at each milestone of ``steps``, the curve minus the
    target with its error (negative: reached), oriented so that lower is better."""

    step: float
    low: float
    high: float
    steps: tuple[float, ...]
    gaps: tuple[Difference, ...]

    def p_sooner(self, budget: float) -> float:
        """The one-sided p-value of "reaches the target within ``budget`` steps" (for
        :func:`~ig.evaluation.uncertainty.holm`): of the curve being below the target at the last
        milestone no later than ``budget`` (1 if none is)."""
        measured = [gap for step, gap in zip(self.steps, self.gaps, strict=True) if step <= budget]
        return measured[-1].p_value("less") if measured else 1.0

    def verdict(self, budget: float) -> str:
        """``better`` (the interval lies before ``budget``: fewer steps), ``worse`` (it lies after;
        an unbounded one only when a was trained to ``budget``, else a might still reach the
        target in between) or ``within noise``."""
        if self.high < budget:
            return "better"
        if self.low > budget and (math.isfinite(self.low) or self.steps[-1] >= budget):
            return "worse"
        return "within noise"

    def speedup(self, budget: float) -> tuple[float, float, float]:
        """``budget`` / steps: the estimate and its 95 % interval (0 where the steps are ∞)."""
        return budget / self.step, budget / self.high, budget / self.low


def steps_to_reach(
    steps: Sequence[float],
    values: Sequence[Sequence[float]],
    sampling_ses: Sequence[Sequence[float]],
    target: Difference,
    lower_is_better: bool,
) -> Reach:
    """When run a's curve first reaches ``target`` (a cell, e.g. b's last milestone by
    :func:`~ig.evaluation.uncertainty.seed_mean`), with its interval. ``values`` and
    ``sampling_ses``: per training seed of a (each sampled from its own noise), per milestone at
    ``steps``."""
    at, per_seed, ses = (np.asarray(x, dtype=np.float64) for x in (steps, values, sampling_ses))
    if per_seed.ndim != 2 or per_seed.shape != ses.shape or per_seed.shape[1] != len(at):
        raise IGError(f"steps_to_reach needs a value and an error per seed and milestone, got {per_seed.shape}")
    if np.any(np.diff(at) <= 0):
        raise IGError(f"milestone steps must increase, got {at.tolist()}")
    sign = 1.0 if lower_is_better else -1.0  # work on curves that improve downwards
    curves = sign * per_seed
    fitted = isotonic_regression(curves.mean(axis=0), increasing=False).x
    curves += fitted - curves.mean(axis=0)  # each seed moves with the fit, keeping the seeds' spread
    goal = Difference(sign * target.delta, target.se, target.paired, target.dof)
    gaps = tuple(independent_difference(seed_mean(curves[:, k], ses[:, k]), goal) for k in range(len(at)))
    gap = np.array([g.delta for g in gaps])
    half = np.array([g.critical() * g.se for g in gaps])
    return Reach(first_reach(at, gap), first_reach(at, gap - half), last_miss(at, gap + half), tuple(at), gaps)
