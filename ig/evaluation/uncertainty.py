"""How sure a metric is: bootstrap standard errors, paired differences, and the verdict on a comparison.

**Bootstrap.** A metric's sampling error is the spread of the metric over resamples (with
replacement) of the generated samples, the reference held fixed. The N samples are resampled as
K contiguous blocks (K = N when the memory allows, else as many as fit: 64 blocks at 2048-d), so
that the Fréchet distance of a resample is a sum of precomputed block moments and one symmetric
eigenvalue problem, not a covariance of N×d features: 20 resamples at 50K × 2048 take seconds,
not minutes. Blocks of i.i.d. samples are i.i.d., so the block bootstrap estimates the same
variance (``tests/test_uncertainty.py`` checks it against the spread of independent sample sets).

**Pairing.** The resamples depend only on (N, K, the bootstrap seed), so two sample sets of N
samples drawn from the same sampling seeds (``ig.sampling.sets``: sample *i* has the same noise and
label in both) are resampled at the same indices; a difference of two metrics is then judged by the
spread of its per-resample differences, which cancels the sampling noise both sets share.

**Training seeds.** A run with several training seeds samples each seed from its own noise (its
settings stay paired within the seed). A seed's value is then the method's mean + the seed's
training deviation + its own sampling error, independent across seeds, so the spread over seeds
holds both noises: a cell over seeds is their mean with its Student-t error (:func:`seed_mean`), a
comparison over seeds the mean of per-seed paired differences with its t error
(:func:`seed_difference`). Had all seeds shared one sampling noise, its error would be common to
every seed and absent from their spread: judged by std/√n, that design called 17 % of null
differences over 3 seeds real, and its cells covered their mean half of the time
(``tests/test_calibration.py`` shows both). A seeded cell against a one-seed cell sampled from one
of the seeds' noise: :func:`mixed_difference`; two independent estimates:
:func:`independent_difference`.

**Verdict.** :func:`verdict` is the one rule every table uses to call a difference better, worse or
within noise (its 95 % interval). A claim of the paper is a test decided in advance: one-sided in
the claimed direction, an equivalence test (TOST) against a stated margin for "matches"
(:func:`claim_p_value`), Holm's adjustment over the family of claims (:func:`holm`), and
:func:`claim_outcome` to read the result. ``tests/test_calibration.py`` measures each rule's
false-positive rate and coverage on simulated campaigns with a known truth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from scipy import optimize, stats

from ig.errors import IGError
from ig.evaluation.metrics import (
    IS_SPLIT_SIZE,
    Manifolds,
    feature_statistics,
    frechet_distance,
    inception_score_of_probabilities,
    psd_factor,
    softmax,
    weighted_kid,
)
from ig.evaluation.record import as_record

BLOCK_BYTES = 1 << 30  # memory for the block second moments of one feature space (float32)
MIN_BLOCKS = 64
LOWER_IS_BETTER = {"fid": True, "sfid": True, "is": False, "precision": False, "recall": False, "kid": True}
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Bootstrap:
    """The resamples of a set of ``num_samples`` samples: ``resamples`` multinomial draws of block
    counts, seeded by ``seed`` alone (so every set of that size is resampled alike)."""

    num_samples: int
    resamples: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples < 2:
            raise IGError(f"the bootstrap needs at least 2 resamples, got {self.resamples}")

    def blocks(self, dim: int) -> int:
        """Bootstrap units for features of ``dim`` dimensions: every sample, or as many blocks as
        the block moments' memory allows (``BLOCK_BYTES``), at least ``MIN_BLOCKS``."""
        return min(self.num_samples, max(MIN_BLOCKS, BLOCK_BYTES // (4 * dim * dim)))

    def block_index(self, blocks: int) -> np.ndarray:
        """The block of each sample: contiguous runs of (nearly) equal length."""
        return np.arange(self.num_samples) * blocks // self.num_samples

    def counts(self, blocks: int) -> np.ndarray:
        """(resamples, blocks): how often each block is drawn in each resample."""
        rng = np.random.default_rng([self.seed, self.num_samples, blocks])
        return rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=self.resamples)

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "resamples": self.resamples, "seed": self.seed}


def _block_sums(values: torch.Tensor, index: torch.Tensor, blocks: int) -> torch.Tensor:
    return torch.zeros((blocks, *values.shape[1:]), dtype=values.dtype).index_add_(0, index, values)


def frechet_replicates(
    features: np.ndarray,
    mu_ref: np.ndarray,
    sigma_ref: np.ndarray,
    boot: Bootstrap,
    factor_ref: np.ndarray | None = None,
) -> np.ndarray:
    """The Fréchet distance to (``mu_ref``, ``sigma_ref``) of each bootstrap resample of ``features``
    (``factor_ref``: ``psd_factor(sigma_ref)`` when the caller has it).

    With ``sigma_ref = B Bᵀ`` and the features projected as ``y = (x − mean) B``, a resample's
    ``tr((Σ Σ_ref)^½)`` is the sum of the square roots of the eigenvalues of its covariance of ``y``,
    which is a count-weighted sum of per-block moments of ``y``.
    """
    x = torch.as_tensor(features, dtype=torch.float64)
    n, d = x.shape
    if n != boot.num_samples:
        raise IGError(f"the bootstrap is for {boot.num_samples} samples, the features have {n}")
    blocks = boot.blocks(d)
    index = torch.as_tensor(boot.block_index(blocks))
    counts = torch.as_tensor(boot.counts(blocks), dtype=torch.float64)
    mean = x.mean(0)
    xc = x - mean
    if factor_ref is None:
        factor_ref = psd_factor(np.asarray(sigma_ref, np.float64))
    y = xc.float() @ torch.as_tensor(factor_ref, dtype=torch.float32)
    sums_x, sums_y = _block_sums(xc, index, blocks), _block_sums(y.double(), index, blocks)
    squares = _block_sums(xc.square().sum(1), index, blocks)
    moments = torch.empty(blocks, d, d, dtype=torch.float32)
    bounds = np.searchsorted(boot.block_index(blocks), np.arange(blocks + 1))
    for b in range(blocks):
        yb = y[bounds[b] : bounds[b + 1]]
        moments[b] = yb.T @ yb
    weighted = (counts.float() @ moments.view(blocks, d * d)).view(-1, d, d)
    mu_ref = torch.as_tensor(mu_ref, dtype=torch.float64)
    trace_ref = float(np.trace(sigma_ref))
    out = []
    for r in range(boot.resamples):
        sx, sy = counts[r] @ sums_x, counts[r] @ sums_y
        cov_y = (weighted[r].double() - torch.outer(sy, sy) / n) / (n - 1)
        tr_sqrt = torch.linalg.eigvalsh((cov_y + cov_y.T) / 2).clamp_min(0).sqrt().sum()
        trace = (counts[r] @ squares - sx @ sx / n) / (n - 1)
        diff = mean + sx / n - mu_ref
        out.append(float(diff @ diff + trace + trace_ref - 2 * tr_sqrt))
    return np.array(out)


def frechet_with_replicates(
    features: np.ndarray,
    mu_ref: np.ndarray,
    sigma_ref: np.ndarray,
    boot: Bootstrap,
    factor_ref: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """The Fréchet distance of ``features`` to the reference and of each bootstrap resample, with
    the reference's covariance factored once for both (an eigendecomposition when it is singular)."""
    if factor_ref is None:
        factor_ref = psd_factor(np.asarray(sigma_ref, np.float64))
    point = frechet_distance(mu_ref, sigma_ref, *feature_statistics(features), factor1=factor_ref)
    return point, frechet_replicates(features, mu_ref, sigma_ref, boot, factor_ref)


def _resample_indices(boot: Bootstrap, blocks: int, r: int) -> np.ndarray:
    """The sample indices of resample ``r``: each drawn block's samples, block after block."""
    bounds = np.searchsorted(boot.block_index(blocks), np.arange(blocks + 1))
    drawn = np.repeat(np.arange(blocks), boot.counts(blocks)[r])
    return np.concatenate([np.arange(bounds[b], bounds[b + 1]) for b in drawn])


def inception_score_replicates(
    logits: np.ndarray, boot: Bootstrap, split_size: int = IS_SPLIT_SIZE, blocks: int | None = None
) -> np.ndarray:
    """ADM's Inception Score of each bootstrap resample (``blocks``: as the pool features' bootstrap)."""
    probabilities = softmax(logits)
    blocks = blocks or boot.blocks(probabilities.shape[1])
    return np.array(
        [
            inception_score_of_probabilities(probabilities[_resample_indices(boot, blocks, r)], split_size)
            for r in range(boot.resamples)
        ]
    )


def precision_recall_replicates(m: Manifolds, boot: Bootstrap) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of each resample: precision counts the drawn generated points inside
    the real manifold; recall asks which real points some drawn block's balls cover (each
    generated point keeps the radius it has in the full set). ``m`` must have been computed with
    ``fake_blocks=boot.block_index(blocks)``."""
    blocks = m.real_covered.shape[0]
    counts = boot.counts(blocks)
    inside = np.bincount(boot.block_index(blocks), weights=m.fake_in_real, minlength=blocks)
    precision = counts @ inside / boot.num_samples
    recall = ((counts > 0).astype(np.float64) @ m.real_covered.astype(np.float64) > 0).mean(axis=1)
    return precision, recall


def kid_replicates(
    features: np.ndarray, reference_features: np.ndarray, boot: Bootstrap, device: str | torch.device = "cpu"
) -> np.ndarray:
    """KID against ``reference_features`` (held fixed) of each bootstrap resample of ``features``.

    Every sample is its own bootstrap unit (``boot.counts(num_samples)``): KID's resamples need no
    per-block moments, only a weight per sample, so memory never forces blocks. A resample's KID is
    :func:`ig.evaluation.metrics.weighted_kid` with the sample counts as weights, all resamples in
    the one pass over the kernel tiles that the metric itself needs (the weights add ``resamples``
    columns to each tile's product: ~1 % at 2048-d). Where the generated and reference distributions
    are the same (KID ≈ 0, a degenerate U-statistic) the bootstrap overstates the error (×1.4 in a
    simulated null): on the safe side."""
    n = len(features)
    if n != boot.num_samples:
        raise IGError(f"the bootstrap is for {boot.num_samples} samples, the features have {n}")
    return weighted_kid(reference_features, features, boot.counts(n).T, device)


# --- comparisons -----------------------------------------------------------------------------------
ALTERNATIVES = ("two-sided", "less", "greater")
POWER = 0.8  # the power at which a comparison's detectable effect is stated (the write-ups' power analysis)


@dataclass(frozen=True)
class Difference:
    """``a − b`` with its standard error; ``dof`` is None for a normal (bootstrap) error, else the
    degrees of freedom of a Student-t error (spread over training seeds; fractional when
    Welch–Satterthwaite's)."""

    delta: float
    se: float
    paired: bool
    dof: float | None = None

    def critical(self) -> float:
        """The half-width of the 95 % interval in units of ``se``."""
        q = 0.5 + CONFIDENCE / 2
        return float(stats.norm.ppf(q) if self.dof is None else stats.t.ppf(q, self.dof))

    def _tail(self, z: float) -> float:
        """P(Z > z) for the error's distribution: normal, or Student t with ``dof``."""
        return float(stats.norm.sf(z) if self.dof is None else stats.t.sf(z, self.dof))

    @property
    def interval(self) -> tuple[float, float]:
        half = self.critical() * self.se
        return self.delta - half, self.delta + half

    def p_value(self, alternative: str = "two-sided") -> float:
        """The p-value of ``a − b = 0`` against ``alternative``: ``less`` (a < b), ``greater`` (a > b)
        or ``two-sided``."""
        if alternative not in ALTERNATIVES:
            raise IGError(f"unknown alternative {alternative!r}; one of {', '.join(ALTERNATIVES)}")
        exact = math.copysign(math.inf, self.delta) if self.delta else 0.0  # no error known: any change is sure
        z = self.delta / self.se if self.se > 0 else exact
        if alternative == "less":
            return self._tail(-z)
        if alternative == "greater":
            return self._tail(z)
        return min(1.0, 2 * self._tail(abs(z)))

    def detectable(self, alpha: float, power: float = POWER) -> float:
        """The smallest true |a − b| that a one-sided test at level ``alpha`` finds with probability
        ``power``, were ``se`` the true error: (z(1 − alpha) + z(power)) × se for a normal error; for a
        Student-t one, the noncentrality at which the t test has that power (the normal rule's
        t quantiles would promise 74 % instead of 80 % at 4 degrees of freedom and α = 0.05/13)."""
        if self.dof is None:
            return float((stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)) * self.se)
        critical = stats.t.ppf(1 - alpha, self.dof)
        ncp = optimize.brentq(lambda nc: stats.nct.sf(critical, self.dof, nc) - power, 0.0, 10 * critical + 10)
        return float(ncp * self.se)

    def __neg__(self) -> Difference:
        """``b − a``."""
        return replace(self, delta=-self.delta)


def paired_difference(a: Mapping[str, Any], b: Mapping[str, Any], metric: str) -> Difference:
    """``a[metric] − b[metric]`` of two metrics files (:class:`~ig.evaluation.record.MetricsRecord`),
    with the error of the difference: from their per-resample differences when the two sets are
    paired (same sampling seed, label mode, sample count and bootstrap), else from both errors as
    independent."""
    a, b = as_record(a), as_record(b)
    if a.value(metric) is None or b.value(metric) is None:
        raise IGError(f"cannot compare {metric}: a metrics file has no {metric}")
    delta = a.value(metric) - b.value(metric)
    if is_paired(a, b):
        diff = a.replicates(metric) - b.replicates(metric)
        return Difference(delta, float(diff.std(ddof=1)), True)
    return Difference(delta, math.hypot(a.se(metric), b.se(metric)), False)


def is_paired(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two metrics files come from sample sets of the same seeds, resampled alike."""
    a, b = as_record(a), as_record(b)
    same_noise = a.seed is not None and a.labels is not None and (a.seed, a.labels) == (b.seed, b.labels)
    return same_noise and a.num_samples == b.num_samples and a.resampling == b.resampling


# --- over training seeds ---------------------------------------------------------------------------
SEED_DOF_QUANTILE = 0.25  # mixed_difference's degrees of freedom: at this quantile's bound on the seeds' variance


def seed_mean(values: Sequence[float], sampling_ses: Sequence[float]) -> Difference:
    """A cell over training seeds, each sampled from its own noise: the mean of ``values``, its error
    as a difference from 0.

    Seed i's value is the method's mean + the seed's training deviation (variance τ²) + its sampling
    error (variance sᵢ², ``sampling_ses``). With independent noise per seed the seeds are independent,
    so their variance S² estimates τ² + mean(sᵢ²) without bias, and S/√n with n − 1 degrees of
    freedom is the error of the mean with both noises in it: the sampling errors are not added again.
    (If the seeds shared one sampling noise, its error would be common to all and missing from S.)
    One seed: its sampling error, normal; its training deviation cannot be measured, so a one-seed
    cell stands for that one network."""
    values, ses = np.asarray(values, dtype=np.float64), np.asarray(sampling_ses, dtype=np.float64)
    if len(values) == 0 or len(values) != len(ses):
        raise IGError(f"a cell over seeds needs one sampling error per value, got {len(values)} and {len(ses)}")
    if len(values) == 1:
        return Difference(float(values[0]), float(ses[0]), False)
    return Difference(float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), False, len(values) - 1)


def seed_difference(deltas: Sequence[float]) -> Difference:
    """The mean of per-training-seed paired differences, its error from their spread (Student t,
    n − 1 dof): training and sampling noise together, as each seed has its own sampling noise (with
    one noise shared by all seeds the spread would miss its error)."""
    if len(deltas) < 2:
        raise IGError("a difference over training seeds needs at least two seeds")
    values = np.asarray(deltas, dtype=np.float64)
    return Difference(float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), True, len(values) - 1)


def independent_difference(a: Difference, b: Difference) -> Difference:
    """``a − b`` of two independent estimates (e.g. cells of :func:`seed_mean`): errors add in
    quadrature, with Welch–Satterthwaite's degrees of freedom (a normal error counts as infinitely
    many), not the smaller of the two: that would be too wide when one error is much the larger."""
    va, vb = a.se**2, b.se**2
    spread = [v**2 / dof for v, dof in ((va, a.dof), (vb, b.dof)) if dof is not None and v > 0]
    dof = (va + vb) ** 2 / sum(spread) if spread else None
    return Difference(a.delta - b.delta, math.sqrt(va + vb), False, dof)


def mixed_difference(
    seeded: Sequence[float], seeded_ses: Sequence[float], single_se: float, matched: int, pair: Difference
) -> Difference:
    """``a − b`` of a cell over n ≥ 2 training seeds (``seeded``, each seed sampled from its own noise,
    with sampling errors ``seeded_ses``) and a one-seed cell b (sampling error ``single_se``) sampled
    from the noise of seed ``matched``; ``pair`` is the paired difference ``seeded[matched] − b``.
    (For ``b − a``, negate the result.)

    The estimate is ``mean(a) − b``, with b's network fixed (a one-seed cell stands for its network,
    as in :func:`seed_mean`). Its variance is Var(mean a) + s_b² − 2 Cov(mean a, b), where only the
    matched seed shares b's noise: Cov = c/n, c = (s_m² + s_b² − p²)/2 from the paired error p; and
    Var(mean a) is the seeds' variance S² over n, held at least at what their sampling errors alone
    give (τ² ≥ 0; this also keeps the sum positive). Degrees of freedom: Welch–Satterthwaite's, with
    only S² estimated (n − 1 dof) and the bootstrap terms taken as known, evaluated at an upper-quartile
    bound on the seeds' variance instead of S² itself: S² gives too many degrees of freedom exactly
    when the seeds happen to agree, which in simulation made the 5 % rule 7–12 % false-positive at
    2–3 seeds when training noise dominates.

    Why not the paired difference to the matched seed alone? It cancels the shared sampling noise but
    carries that seed's whole training deviation τ², which the seeds' spread tells apart from their
    sampling noise only as S² − mean sᵢ²: with 3 seeds and sampling noise the larger (this project's
    case), that is as uncertain as sᵢ² itself, and the interval, with well under one degree of
    freedom, was unbounded in simulation. The mean carries τ²/n, measured together with the sampling
    noise by S². The price: where sampling noise dominates at 2–3 seeds the interval is conservative
    (no false positives in simulation, 1.5× the needed width: d is then mostly the contrast between
    seed m and the others, which also drives S²); it is near nominal where training noise dominates
    (``tests/test_calibration.py``). The exact remedy is to sample b's network from every seed's
    noise: then per-seed paired differences and :func:`seed_difference`."""
    values, ses = np.asarray(seeded, dtype=np.float64), np.asarray(seeded_ses, dtype=np.float64)
    n = len(values)
    if n < 2 or len(ses) != n or not 0 <= matched < n:
        raise IGError(f"a mixed difference needs ≥ 2 seeds with their errors and a matched seed, got {n}, {len(ses)}")
    b = values[matched] - pair.delta
    seeds_var = max(float(values.var(ddof=1)), float(np.mean(ses**2)))
    covariance = (ses[matched] ** 2 + single_se**2 - pair.se**2) / 2
    known = single_se**2 - 2 * covariance / n
    variance = seeds_var / n + known
    bound = seeds_var * (n - 1) / stats.chi2.ppf(SEED_DOF_QUANTILE, n - 1)
    dof = (n - 1) * (1 + n * known / bound) ** 2
    return Difference(float(values.mean() - b), math.sqrt(max(variance, 0.0)), pair.paired, float(dof))


# --- verdicts --------------------------------------------------------------------------------------
def verdict(difference: Difference, metric: str, lower_is_better: Mapping[str, bool] = LOWER_IS_BETTER) -> str:
    """``better``, ``worse`` or ``within noise``: a − b is a real change when its 95 % interval
    (normal for a bootstrap error, Student t over training seeds) excludes 0; better or worse by
    the metric's direction (``lower_is_better``; the image metrics' by default: FID and sFID lower,
    IS, precision and recall higher)."""
    low, high = difference.interval
    if low <= 0.0 <= high:
        return "within noise"
    improved = (difference.delta < 0) == lower_is_better[metric]
    return "better" if improved else "worse"


OUTCOMES = ("reproduced", "not reproduced", "inconclusive")


def outcome(expect: str, judged: str) -> str:
    """What our verdict on a − b says of a claim of the paper that a is ``better`` (or ``worse``)
    than b, or ``matches`` it: the paper's direction seen is *reproduced*, the opposite direction
    *not reproduced*, no difference where the paper claims one *inconclusive* (at this scale); a
    ``matches`` claim is reproduced unless a is worse."""
    if expect == "matches":
        return OUTCOMES[1] if judged == "worse" else OUTCOMES[0]
    if judged == "within noise":
        return OUTCOMES[2]
    return OUTCOMES[0] if judged == expect else OUTCOMES[1]


# --- claims as tests -------------------------------------------------------------------------------
ALPHA = 1 - CONFIDENCE  # a claim's (or a family's) false-positive rate


def claim_alternative(expect: str, metric: str, lower_is_better: Mapping[str, bool] = LOWER_IS_BETTER) -> str:
    """The one-sided alternative on ``a − b`` of a claim that a is ``better`` or ``worse`` than b."""
    if expect not in ("better", "worse"):
        raise IGError(f"a directional claim is 'better' or 'worse', not {expect!r}")
    return "less" if (expect == "better") == lower_is_better[metric] else "greater"


def equivalence_p_value(difference: Difference, margin: float) -> float:
    """TOST: the p-value of "|a − b| ≥ ``margin``" against "|a − b| < margin", the larger of the two
    one-sided tests at ±margin. Small when the difference is known to lie within the margin; a
    difference within noise is not evidence of a match (its p-value stays large when the error is)."""
    if margin <= 0:
        raise IGError(f"an equivalence margin must be positive, got {margin}")
    above = replace(difference, delta=difference.delta + margin).p_value("greater")  # H0: a − b ≤ −margin
    below = replace(difference, delta=difference.delta - margin).p_value("less")  # H0: a − b ≥ margin
    return max(above, below)


def equivalence(difference: Difference, margin: float, alpha: float = ALPHA) -> str:
    """``equivalent`` when TOST rejects a gap of ``margin`` or more at ``alpha`` (the 1 − 2α interval
    lies within ±margin), ``not equivalent`` when the 95 % interval lies beyond it, else
    ``inconclusive``."""
    if equivalence_p_value(difference, margin) <= alpha:
        return "equivalent"
    low, high = difference.interval
    return "not equivalent" if low > margin or high < -margin else "inconclusive"


def claim_p_value(
    difference: Difference,
    expect: str,
    metric: str,
    margin: float | None = None,
    lower_is_better: Mapping[str, bool] = LOWER_IS_BETTER,
) -> float:
    """The p-value of a claim's test, to adjust over the family (:func:`holm`): one-sided in the
    claimed direction for ``better``/``worse`` (the paper stated it before our data, so the other
    tail cannot support it), TOST against ±``margin`` for ``matches`` (no margin, no test: a
    difference within noise is not a match)."""
    if expect == "matches":
        if margin is None:
            raise IGError(f"a 'matches' claim on {metric} needs an equivalence margin")
        return equivalence_p_value(difference, margin)
    return difference.p_value(claim_alternative(expect, metric, lower_is_better))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the given order: the k-th smallest p times (m − k + 1), made
    non-decreasing, at most 1. Calling a claim reproduced when its adjusted p-value ≤ α keeps the
    chance of any false reproduction in the family ≤ α, whatever the dependence between claims."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted.tolist()


def claim_outcome(
    difference: Difference,
    expect: str,
    metric: str,
    p_adjusted: float,
    margin: float | None = None,
    lower_is_better: Mapping[str, bool] = LOWER_IS_BETTER,
) -> str:
    """A claim's outcome from its family-adjusted p-value (:func:`claim_p_value`, :func:`holm`):
    *reproduced* when ``p_adjusted`` ≤ α; else *not reproduced* when our 95 % interval says the
    opposite (a directional claim: it excludes 0 on the other side; ``matches``: it lies beyond the
    margin); else *inconclusive*."""
    if p_adjusted <= ALPHA:
        return OUTCOMES[0]
    if expect == "matches":
        against = margin is not None and equivalence(difference, margin) == "not equivalent"
    else:
        against = verdict(difference, metric, lower_is_better) not in (expect, "within noise")
    return OUTCOMES[1] if against else OUTCOMES[2]
