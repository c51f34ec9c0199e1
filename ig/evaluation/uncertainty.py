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

**Verdict.** :func:`verdict` is the one rule every table uses to call a difference better, worse or
within noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from ig.errors import IGError
from ig.evaluation.metrics import IS_SPLIT_SIZE, Manifolds, inception_score_of_probabilities, psd_factor, softmax

BLOCK_BYTES = 1 << 30  # memory for the block second moments of one feature space (float32)
MIN_BLOCKS = 64
LOWER_IS_BETTER = {"fid": True, "sfid": True, "is": False, "precision": False, "recall": False}
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


def frechet_replicates(features: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray, boot: Bootstrap) -> np.ndarray:
    """The Fréchet distance to (``mu_ref``, ``sigma_ref``) of each bootstrap resample of ``features``.

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
    y = xc.float() @ torch.as_tensor(psd_factor(np.asarray(sigma_ref, np.float64)), dtype=torch.float32)
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


# --- comparisons -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Difference:
    """``a − b`` with its standard error; ``dof`` is None for a normal (bootstrap) error, else the
    degrees of freedom of a Student-t error (spread over training seeds)."""

    delta: float
    se: float
    paired: bool
    dof: int | None = None

    def critical(self) -> float:
        """The half-width of the 95 % interval in units of ``se``."""
        q = 0.5 + CONFIDENCE / 2
        return float(stats.norm.ppf(q) if self.dof is None else stats.t.ppf(q, self.dof))

    @property
    def interval(self) -> tuple[float, float]:
        half = self.critical() * self.se
        return self.delta - half, self.delta + half


def paired_difference(a: dict[str, Any], b: dict[str, Any], metric: str) -> Difference:
    """``a[metric] − b[metric]`` of two metrics files, with the error of the difference: from their
    per-resample differences when the two sets are paired (same sampling seed, label mode, sample
    count and bootstrap), else from both errors as independent."""
    if a.get(metric) is None or b.get(metric) is None:
        raise IGError(f"cannot compare {metric}: a metrics file has no {metric}")
    delta = a[metric] - b[metric]
    if is_paired(a, b):
        diff = np.asarray(a["bootstrap"]["replicates"][metric]) - np.asarray(b["bootstrap"]["replicates"][metric])
        return Difference(delta, float(diff.std(ddof=1)), True)
    return Difference(delta, math.hypot(a[f"{metric}_se"], b[f"{metric}_se"]), False)


def is_paired(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two metrics files come from sample sets of the same seeds, resampled alike."""
    samples_a, samples_b = a.get("samples", {}), b.get("samples", {})
    for key in ("seed", "labels"):
        if samples_a.get(key) is None or samples_a.get(key) != samples_b.get(key):
            return False
    boot_a, boot_b = a.get("bootstrap", {}), b.get("bootstrap", {})
    if a.get("num_samples") != b.get("num_samples"):
        return False
    return all(boot_a.get(key) == boot_b.get(key) for key in ("seed", "resamples", "blocks"))


def seed_difference(deltas: list[float]) -> Difference:
    """The mean of per-training-seed differences, its error from their spread (Student t, n − 1 dof):
    training and sampling noise together."""
    if len(deltas) < 2:
        raise IGError("a difference over training seeds needs at least two seeds")
    values = np.asarray(deltas, dtype=np.float64)
    return Difference(float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), True, len(values) - 1)


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
