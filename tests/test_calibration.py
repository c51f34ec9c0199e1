"""Calibration: the verdict rules on simulated campaigns with a known truth (DESIGN.md, "Errors on
metrics").

Each test simulates many campaigns of one design, applies the rule the reports use, and counts how
often the rule calls a null difference real (its false-positive rate, nominal 5 %) and how often
its 95 % interval covers the truth. The bounds, with the simulation's own noise in them:

- false-positive rate ≤ 6 % over ``SIMS`` = 4,000 campaigns (2,000 where each costs FID
  bootstraps): a rule whose rate is 5 % passes with probability 99.8 % (98 %), one at 7 % fails
  with probability 99.4 % (96 %);
- coverage 93–97 % over ``COVERAGE_SIMS`` = 1,000 campaigns: a 95 % interval passes with
  probability 99.7 %.

Designs: one training seed, two settings paired (real Gaussian features through FID and its
bootstrap); several seeds, each with its own sampling noise (per-seed paired differences; cells),
against the old design that sampled every seed from one noise and judged by std/√n (which must
fail); one seed against several (:func:`~ig.evaluation.uncertainty.mixed_difference`); Holm over a
family of claims; TOST at the margin; the speed-up interval. Every draw is seeded.

At the level of metric values, setting x of training seed i is μₓ + tᵢ + eₓᵢ: tᵢ the seed's training
deviation (sd ``tau``; the two settings of a seed differ in it by sd ``tau_diff``), eₓᵢ the sampling
error (sd ``s``; a paired difference's sd ``p``, as the settings of a seed share their noise). The
defaults are this project's ablations at 1,000 samples (README: sampling error ±0.16, seed spread
0.02–0.10, paired differences ±0.02–0.03). Sampling errors are known exactly at this level; the
feature-level designs use the bootstrap's estimates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from ig.evaluation import uncertainty
from ig.evaluation.matched import matched_difference
from ig.evaluation.metrics import feature_statistics, frechet_distance
from ig.evaluation.record import MetricsRecord
from ig.evaluation.speedup import Reach, steps_to_reach
from ig.evaluation.uncertainty import (
    Bootstrap,
    Difference,
    claim_outcome,
    claim_p_value,
    equivalence,
    frechet_replicates,
    holm,
    mixed_difference,
    paired_difference,
    seed_difference,
    seed_mean,
    verdict,
)

SIMS, FEATURE_SIMS, COVERAGE_SIMS = 4000, 2000, 1000
FPR_BOUND, COVERAGE_BAND = 0.06, (0.93, 0.97)
Draw = Callable[[np.random.Generator, float], Difference]


def rates(draw: Draw, effect: float, sims: int = SIMS) -> tuple[float, float]:
    """The false-positive rate of the verdict on ``draw``'s differences over ``sims`` campaigns with
    no effect, and how often their 95 % interval covers ``effect`` when there is one."""
    rng = np.random.default_rng(0)
    false_positive = np.mean([verdict(draw(rng, 0.0), "fid") != "within noise" for _ in range(sims)])
    intervals = [draw(rng, effect).interval for _ in range(COVERAGE_SIMS)]
    return float(false_positive), float(np.mean([low <= effect <= high for low, high in intervals]))


def assert_calibrated(fpr: float, coverage: float, nominal: bool = True) -> None:
    """≤ 6 % false positives, and coverage within 93–97 % (``nominal``) or at least 93 %."""
    assert fpr <= FPR_BOUND, f"false-positive rate {fpr:.3f} > {FPR_BOUND}"
    low, high = COVERAGE_BAND
    assert low <= coverage <= (high if nominal else 1.0), f"coverage {coverage:.3f}"


# --- metric values -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Noise:
    """A metric's noise (see the module docstring), with a design: ``shared`` samples every training
    seed from one noise (the old design), else each seed from its own."""

    tau: float = 0.05
    tau_diff: float = 0.03
    s: float = 0.16
    p: float = 0.03
    shared: bool = False

    def sampling(self, rng: np.random.Generator, seeds: int) -> tuple[np.ndarray, np.ndarray]:
        """Two paired settings' sampling errors per seed: sd ``s`` each, sd ``p`` apart."""
        draws = 1 if self.shared else seeds
        common = rng.normal(0, math.sqrt(self.s**2 - self.p**2 / 4), draws)
        apart = rng.normal(0, self.p, draws)
        return np.broadcast_to(common + apart / 2, seeds), np.broadcast_to(common - apart / 2, seeds)

    def pair(self, rng: np.random.Generator, seeds: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
        """Setting a's and b's values over ``seeds`` training seeds, a − b = ``effect`` in truth."""
        training = rng.normal(0, self.tau, seeds)
        ea, eb = self.sampling(rng, seeds)
        return effect + training + rng.normal(0, self.tau_diff, seeds) + ea, training + eb


def test_over_seeds_own_noise_per_seed_is_calibrated_and_one_shared_noise_is_not():
    """The mean of per-seed paired differences with its t error (3 seeds): right when each seed has
    its own sampling noise; with one noise for all seeds (the old design) the same rule calls a null
    difference real far too often (its shared sampling error is not in the seeds' spread)."""

    def draw(noise: Noise) -> Draw:
        return lambda rng, effect: seed_difference(np.subtract(*noise.pair(rng, 3, effect)))

    assert_calibrated(*rates(draw(Noise()), effect=0.1))
    old_fpr, old_coverage = rates(draw(Noise(shared=True)), effect=0.1)
    assert old_fpr > 0.12 and old_coverage < 0.9, (old_fpr, old_coverage)


def test_a_cell_over_seeds_holds_training_and_sampling_noise():
    """A cell over 3 seeds (:func:`seed_mean`) covers the method's mean at the nominal rate when each
    seed has its own noise; the old cell (one shared noise, std/√n) covers it far less often."""
    noise = Noise()

    def cell(rng: np.random.Generator, effect: float) -> Difference:
        return seed_mean(noise.pair(rng, 3, effect)[0], [noise.s] * 3)

    def old_cell(rng: np.random.Generator, effect: float) -> Difference:
        values = Noise(shared=True).pair(rng, 3, effect)[0]
        return Difference(values.mean(), values.std(ddof=1) / math.sqrt(3), False, 2)

    assert_calibrated(*rates(cell, effect=2.0))
    old_fpr, old_coverage = rates(old_cell, effect=2.0)
    assert old_fpr > 0.3 and old_coverage < 0.7, (old_fpr, old_coverage)


# (seeds, training sd, sampling sd of each seed, of the one-seed arm, of their paired difference),
# and whether the interval is near nominal there: it is conservative when sampling noise dominates
# at few seeds (see mixed_difference).
MIXED = {
    "ablations: sampling dominates, 3 seeds": ((3, 0.05, 0.16, 0.16, 0.03), False),
    "training as large as sampling": ((3, 0.1, 0.1, 0.1, 0.03), False),
    "training dominates, 3 seeds": ((3, 0.3, 0.05, 0.05, 0.02), True),
    "training dominates, 5 seeds": ((5, 0.2, 0.1, 0.1, 0.03), True),
    "one-seed arm less noisy than the seeds": ((3, 0.1, 0.16, 0.08, 0.1), False),
    "2 seeds, training dominates": ((2, 1.0, 0.05, 0.05, 0.02), True),
}


@pytest.mark.parametrize("regime", MIXED)
def test_one_seed_against_several_is_never_anti_conservative(regime):
    """A one-seed arm b, sampled from the noise of the seeded arm's seed 0, against the seeded arm's
    mean: the truth is the seeded method's mean minus b's network's expectation."""
    (n, tau, s, s_b, p), nominal = MIXED[regime]
    covariance = (s**2 + s_b**2 - p**2) / 2

    def draw(rng: np.random.Generator, effect: float) -> Difference:
        sampling = rng.normal(0, s, n)
        seeded = effect + rng.normal(0, tau, n) + sampling
        b = covariance / s**2 * sampling[0] + math.sqrt(s_b**2 - covariance**2 / s**2) * rng.standard_normal()
        return mixed_difference(seeded, [s] * n, s_b, 0, Difference(seeded[0] - b, p, True))

    assert_calibrated(*rates(draw, effect=0.2), nominal=nominal)


# --- real features: Gaussian features through FID and its bootstrap --------------------------------
D, N, RESAMPLES, BLOCKS = 6, 256, 50, 64
MU_A = np.array([0.5, 0, 0, 0, 0, 0])  # setting a's generator mean; the reference is N(0, I)
MU_B = np.array([0, 0.5, 0, 0, 0, 0])
MIX = np.eye(D) + 0.3 * np.random.default_rng(7).standard_normal((D, D)) / math.sqrt(D)


def features(rng: np.random.Generator, effect: float, shift: np.ndarray, noise: np.ndarray) -> tuple:
    """Paired sample sets of settings a and b: a's noise ``noise``; b's is 0.9 of it plus fresh noise
    (same distribution). ``shift`` is the training seed's deviation of the generator's mean. The
    covariances are alike, so E[FID_a − FID_b] = |μ_a|² − |μ_b|², set to ``effect`` by scaling μ_b."""
    mu_b = MU_B * math.sqrt((MU_A @ MU_A - effect) / (MU_B @ MU_B))
    noise_b = 0.9 * noise + math.sqrt(1 - 0.81) * rng.standard_normal(noise.shape)
    return MU_A + shift + noise @ MIX.T, mu_b + shift + noise_b @ MIX.T


def fid(x: np.ndarray) -> float:
    return frechet_distance(*feature_statistics(x), np.zeros(D), np.eye(D))


def metrics_file(x: np.ndarray) -> dict:
    """The fields of an ``ig evaluate`` file that paired_difference reads."""
    boot = Bootstrap(N, RESAMPLES)
    replicates = frechet_replicates(x, np.zeros(D), np.eye(D), boot)
    return {"fid": fid(x), "fid_se": float(replicates.std(ddof=1)), "num_samples": N,
            "samples": {"seed": 0, "labels": "random"},
            "bootstrap": {**boot.to_dict(), "blocks": {"fid": BLOCKS}, "replicates": {"fid": replicates}}}  # fmt: skip


def test_paired_single_seed_fid_difference_is_calibrated(monkeypatch, single_thread):
    """Two guidance settings of one network, sampled from the same noise, judged by the paired
    bootstrap difference of their FIDs (64 bootstrap blocks, as at 50K × 2048)."""
    monkeypatch.setattr(uncertainty, "BLOCK_BYTES", 4 * D * D * BLOCKS)
    monkeypatch.setattr(uncertainty, "MIN_BLOCKS", BLOCKS)

    def draw(rng: np.random.Generator, effect: float) -> Difference:
        xa, xb = features(rng, effect, np.zeros(D), rng.standard_normal((N, D)))
        return paired_difference(metrics_file(xa), metrics_file(xb), "fid")

    assert_calibrated(*rates(draw, effect=0.1, sims=FEATURE_SIMS))


def test_over_seeds_fid_difference_is_calibrated_only_with_noise_per_seed(single_thread):
    """Three training seeds, each moving both settings' generator mean (sd 0.05 per dimension), the
    per-seed FID differences judged by their spread: calibrated when each seed is sampled from its own
    noise, far too often "real" when all seeds share one."""

    def draw(shared: bool) -> Draw:
        def campaign(rng: np.random.Generator, effect: float) -> Difference:
            noise = rng.standard_normal((N, D))
            deltas = []
            for _ in range(3):
                own = noise if shared else rng.standard_normal((N, D))
                xa, xb = features(rng, effect, rng.normal(0, 0.05, D), own)
                deltas.append(fid(xa) - fid(xb))
            return seed_difference(deltas)

        return campaign

    assert_calibrated(*rates(draw(shared=False), effect=0.1, sims=FEATURE_SIMS))
    old_fpr, _ = rates(draw(shared=True), effect=0.1, sims=FEATURE_SIMS)
    assert old_fpr > 0.12, old_fpr


# --- at matched quality: b's curve read at a's value --------------------------------------------------
CURVE_X, SLOPE, A_X = np.array([0.0, 1.0, 2.0]), -0.5, 0.7  # b's settings trade y for x along a line


def matched_campaign(rng: np.random.Generator, effect: float, b_exact: bool = False) -> Difference:
    """Three settings of b along y = 1 + SLOPE·x and setting a, ``effect`` above b's line at a's x; per
    sample, x and y with noise that the paired sets share in part; each metric the mean over samples,
    bootstrapped on the same resamples in every set. ``b_exact`` takes b's curve as known (its
    resamples all at its values): the interpolation's own error left out."""
    n, resamples = 400, 100
    shared = 0.3 * rng.standard_normal((n, 2))
    index = rng.integers(0, n, (resamples, n))

    def record(mx: float, my: float, exact: bool = False) -> dict:
        x, y = (np.array([mx, my]) + shared + rng.standard_normal((n, 2))).T
        per_sample = {"fid": x, "recall": y}
        reps = {m: np.full(resamples, v.mean()) if exact else v[index].mean(axis=1) for m, v in per_sample.items()}
        return {**{m: v.mean() for m, v in per_sample.items()}, "num_samples": n,
                "samples": {"seed": 0, "labels": "random"},
                "bootstrap": {"seed": 0, "resamples": resamples, "blocks": None, "replicates": reps}}  # fmt: skip

    curve = [MetricsRecord(record(x, 1 + SLOPE * x, b_exact)) for x in CURVE_X]
    return matched_difference(MetricsRecord(record(A_X, 1 + SLOPE * A_X + effect)), curve, "recall", "fid")


def test_matched_difference_is_calibrated_and_fails_without_the_curves_error():
    """Recall at matched FID (:mod:`ig.evaluation.matched`): the bootstrap through the interpolation is
    calibrated; taking b's curve as exact, as reading it off a plot would, is not."""
    assert_calibrated(*rates(matched_campaign, effect=0.05, sims=FEATURE_SIMS))
    _, coverage = rates(lambda rng, effect: matched_campaign(rng, effect, b_exact=True), 0.05, sims=100)
    assert coverage < COVERAGE_BAND[0], coverage


# --- a family of claims ----------------------------------------------------------------------------
def test_holm_keeps_the_family_wise_error_of_eight_claims_at_five_percent():
    """Six directional claims and two "matches" claims, all false (no effect; the matched pairs sit at
    the margin): the chance that any is called reproduced stays ≤ 5 % with Holm (bound 5.7 %: a rate
    of 5 % passes it with probability 98 % at 4,000 families), and is far above without."""
    rng = np.random.default_rng(3)
    claims = [("better", "fid", None)] * 3 + [("worse", "is", None)] * 3 + [("matches", "fid", 0.2)] * 2
    any_holm = any_raw = 0
    for _ in range(SIMS):
        diffs = [Difference(rng.standard_normal() * 0.1 + (margin or 0.0), 0.1, True) for _, _, margin in claims]
        p = [claim_p_value(d, e, m, margin) for d, (e, m, margin) in zip(diffs, claims, strict=True)]
        outcomes = [claim_outcome(d, e, m, q, mg) for d, (e, m, mg), q in zip(diffs, claims, holm(p), strict=True)]
        any_holm += "reproduced" in outcomes
        any_raw += min(p) <= uncertainty.ALPHA
    assert any_holm / SIMS <= 0.057, any_holm / SIMS
    assert any_raw / SIMS > 0.25, any_raw / SIMS


def test_equivalence_at_the_margin_is_declared_five_percent_of_the_time_at_most():
    """TOST's size: a true difference exactly at the margin is called equivalent in ~5 % of campaigns
    with a normal error, and in no more over 3 seeds (Student t); a true match, its error a quarter
    of the margin, is called equivalent nearly always."""
    rng = np.random.default_rng(4)
    margin = 0.2

    def normal(truth: float) -> Difference:
        return Difference(truth + 0.05 * rng.standard_normal(), 0.05, True)

    def over_seeds(truth: float) -> Difference:
        return seed_difference(truth + rng.normal(0, 0.1, 3))

    def rate(draw: Callable[[float], Difference], truth: float) -> float:
        return sum(equivalence(draw(truth), margin) == "equivalent" for _ in range(SIMS)) / SIMS

    for truth in (margin, -margin):
        assert 0.035 <= rate(normal, truth) <= FPR_BOUND
        assert rate(over_seeds, truth) <= FPR_BOUND
    assert rate(normal, 0.0) > 0.95


# --- the speed-up claim ----------------------------------------------------------------------------
def test_steps_to_reach_interval_covers_the_true_crossing():
    """A monotone curve 3 + 6·exp(−step/500) at 10 milestones, 3 training seeds (each a training shift
    of sd 0.05 and jitter 0.02 per milestone, sampling noise of sd 0.1 shared 80 % across its
    milestones); the target is another run's cell over 3 seeds. When the curve truly reaches the
    target at step 1,100, between milestones, the interval covers 1,100 at a roughly nominal rate
    (93–98 %: the band is linear between milestones, a little wide); when it truly reaches it at
    step 1,000, "sooner than 1,000" is claimed (one-sided p ≤ 5 %) in at most 6 % of campaigns."""
    rng = np.random.default_rng(5)
    steps = np.arange(200.0, 2001.0, 200.0)

    def curve(at: np.ndarray) -> np.ndarray:
        return 3 + 6 * np.exp(-at / 500)

    def runs(at: np.ndarray) -> np.ndarray:
        shifts = rng.normal(0, 0.05, (3, 1)) + rng.normal(0, 0.02, (3, len(at)))
        shared, own = rng.standard_normal((3, 1)), rng.standard_normal((3, len(at)))
        return curve(at) + shifts + 0.1 * (math.sqrt(0.8) * shared + math.sqrt(0.2) * own)

    def reach(truth: float) -> Reach:
        target = seed_mean(runs(np.array([truth]))[:, 0], [0.1] * 3)
        return steps_to_reach(steps, runs(steps), np.full((3, len(steps)), 0.1), target, lower_is_better=True)

    covered = np.mean([r.low <= 1100 <= r.high for r in (reach(1100.0) for _ in range(COVERAGE_SIMS))])
    claimed = np.mean([reach(1000.0).p_sooner(1000) <= uncertainty.ALPHA for _ in range(COVERAGE_SIMS)])
    assert 0.93 <= covered <= 0.98, covered
    assert claimed <= FPR_BOUND, claimed


def test_the_detectable_effect_is_found_with_the_stated_power():
    """A true effect the size of a comparison's detectable effect (α = 0.05 and Holm's strictest
    0.05/13, 5 seeds or a normal error) is called by the one-sided test in 80 % of campaigns
    (77–83 % at 4,000); the normal rule's t quantiles in its place would fall to ~74 % and fail."""
    rng = np.random.default_rng(7)
    sigma, seeds = 0.2, 5
    for alpha in (uncertainty.ALPHA, uncertainty.ALPHA / 13):
        at_seeds = Difference(0.0, sigma / math.sqrt(seeds), True, seeds - 1).detectable(alpha)
        found = np.mean([seed_difference(rng.normal(-at_seeds, sigma, seeds)).p_value("less") <= alpha
                         for _ in range(SIMS)])  # fmt: skip
        assert 0.77 <= found <= 0.83, (alpha, found)
        normal = Difference(0.0, 0.1, True).detectable(alpha)
        found = np.mean([Difference(-normal + 0.1 * rng.standard_normal(), 0.1, True).p_value("less") <= alpha
                         for _ in range(SIMS)])  # fmt: skip
        assert 0.77 <= found <= 0.83, (alpha, found)
