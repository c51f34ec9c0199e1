"""FID/sFID, Inception Score, precision and recall on feature arrays (a contract).

The definitions are those of the ADM evaluator (openai/guided-diffusion ``evaluations/evaluator.py``),
so that our numbers sit beside the paper's:

- statistics: mean and ``np.cov(rowvar=False)`` in float64;
- Fréchet distance: ``|mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½)``;
- Inception Score: softmax of bias-free logits, consecutive (unshuffled) parts of 5,000 rows, the
  mean over parts of ``exp(mean KL(p(y|x) ‖ p(y)))``;
- precision/recall (Kynkäänniemi et al. 2019): each point's manifold ball has the squared distance
  to its k-th nearest neighbour (itself excluded) as radius; precision is the fraction of generated
  points inside some real ball, recall the fraction of real points inside some generated ball.
  Distances in ADM's float16 arithmetic (``adm``, the default for the paper's numbers) or exactly
  in float32 (``exact``); the two differ by ~1e-3.
- KID (Bińkowski et al. 2018), not an ADM metric: a companion to FID without its small-sample bias
  (see :func:`kernel_inception_distance`).

Everything takes and returns numpy; torch only speeds up the pairwise distances.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import rel_entr

from ig.errors import IGError
from ig.evaluation.settings import PR_ARITHMETICS

# Pairwise squared distances are computed in blocks of at most this many entries (128 MB in fp32).
BLOCK_ELEMENTS = 2**25
IS_SPLIT_SIZE = 5000  # ADM's compute_inception_score(split_size=5000)


def _features(x: np.ndarray, what: str, min_rows: int) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise IGError(f"{what} must be a 2-D array (samples × features), got shape {x.shape}")
    if len(x) < min_rows:
        raise IGError(f"{what} has {len(x)} samples but needs at least {min_rows}; evaluate more samples")
    if not np.isfinite(x).all():
        raise IGError(f"{what} contains NaN or infinite values; check the images and the feature network")
    return x


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of N×D features, as ADM's ``compute_statistics``."""
    x = _features(features, "features", min_rows=2).astype(np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False)


def psd_factor(sigma: np.ndarray) -> np.ndarray:
    """Some A with A Aᵀ = sigma: Cholesky when sigma is positive definite (cheap), else from the
    eigendecomposition, round-off negative eigenvalues counted as zero (singular covariances)."""
    try:
        return np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(sigma)
        return v * np.sqrt(np.clip(w, 0.0, None))


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, factor1: np.ndarray | None = None
) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2); ``factor1`` is
    ``psd_factor(sigma1)`` when the caller has it (many distances to one reference factor it once).

    With ``S1 = A Aᵀ``, ``tr((S1 S2)^½)`` is the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix ``Aᵀ S2 A`` (same spectrum as ``S1 S2``). A Cholesky factor and one
    symmetric eigenvalue solve replace ADM's ``scipy.linalg.sqrtm`` of a non-symmetric product:
    several times faster at 2048-d, and never complex or NaN on singular covariances (features
    of fewer samples than dimensions).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.size
    if mu1.ndim != 1 or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise IGError(
            f"Fréchet distance needs mu (D,) and sigma (D, D) of one D, got mu1 {mu1.shape}, sigma1 {sigma1.shape},"
            f" mu2 {mu2.shape}, sigma2 {sigma2.shape}: compute both statistics with the same feature extractor"
        )
    if not all(np.isfinite(a).all() for a in (mu1, mu2, sigma1, sigma2)):
        raise IGError("Fréchet distance inputs contain NaN or infinite values; recompute the statistics")
    factor = psd_factor(sigma1) if factor1 is None else factor1
    middle = factor.T @ sigma2 @ factor
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    # eigenvalues below round-off (numpy's matrix_rank tolerance) are zero: their square roots
    # (~1e-8 each) would otherwise add up to ~1e-5 on singular covariances
    tolerance = eigenvalues.max(initial=0.0) * len(eigenvalues) * np.finfo(np.float64).eps
    tr_covmean = np.sqrt(eigenvalues[eigenvalues > tolerance]).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def inception_score(logits: np.ndarray, split_size: int = IS_SPLIT_SIZE) -> float:
    """ADM's Inception Score: the mean over consecutive parts of ``split_size`` rows (the last one
    may be shorter) of ``exp(mean KL(p(y|x) ‖ p(y)))``.

    ``logits`` are bias-free (ADM applies the softmax to ``pool3 @ W``). The parts are taken in
    order, not shuffled; at 50K samples they are ADM's (and torch-fidelity's) 10 splits.
    """
    if split_size < 1:
        raise IGError(f"inception score needs split_size >= 1, got {split_size}")
    return inception_score_of_probabilities(softmax(_features(logits, "logits", min_rows=1)), split_size)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (shifted by the row maximum, so that it never overflows)."""
    z = np.exp(np.asarray(logits, dtype=np.float64) - np.max(logits, axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def inception_score_of_probabilities(probabilities: np.ndarray, split_size: int = IS_SPLIT_SIZE) -> float:
    """:func:`inception_score` from the class probabilities (shared with the bootstrap)."""
    scores = []
    for start in range(0, len(probabilities), split_size):
        part = probabilities[start : start + split_size]
        marginal = part.mean(axis=0, keepdims=True)
        scores.append(np.exp(rel_entr(part, marginal).sum(axis=1).mean()))
    return float(np.mean(scores))


def squared_distances(u: torch.Tensor, v: torch.Tensor, arithmetic: str = "adm") -> torch.Tensor:
    """All squared Euclidean distances between rows of ``u`` and rows of ``v``, as float32, in the
    expanded form ``|u|² − 2 u·v + |v|²`` clamped at zero (as ADM).

    ``arithmetic``: ``exact`` computes in float32; ``adm`` follows the ADM evaluator's
    ``DistanceBlock``: inputs cast to float16, squares and the product (accumulated in float32, as
    cuBLAS does) rounded to float16, every later operation in float16; if any distance of the block
    is not finite, the block is redone in float32 (ADM's fallback). One step is approximated: TF sums
    the float16 squares in float16, in an order that depends on the device (Eigen on CPU, CUB on
    GPU), where we round a float32 sum once. Against ADM's own code under TF-CPU that leaves about
    half the distances bit-identical and precision/recall within 2e-4 to 1e-3 (``bench/adm_parity.py``);
    ``exact`` differs from ADM by ~3e-3.
    """
    if arithmetic not in PR_ARITHMETICS:
        raise IGError(f"precision/recall arithmetic must be one of {PR_ARITHMETICS}, got {arithmetic!r}")
    if arithmetic == "adm":
        u16, v16 = u.half().float(), v.half().float()
        norm_u = u16.square().half().float().sum(1, keepdim=True).half()
        norm_v = v16.square().half().float().sum(1).half()
        product = (u16 @ v16.T).half()
        d = ((norm_u - 2 * product) + norm_v).clamp_min(0.0)
        if torch.isfinite(d).all():
            return d.float()
    u, v = u.float(), v.float()
    return (u.square().sum(1, keepdim=True) - 2.0 * u @ v.T + v.square().sum(1)).clamp_min_(0.0)


def _block_rows(columns: int) -> int:
    """Rows per block of distances, so that a block holds at most ``BLOCK_ELEMENTS`` entries."""
    return max(1, BLOCK_ELEMENTS // columns)


def _knn_radii(x: torch.Tensor, k: int, arithmetic: str) -> torch.Tensor:
    """Squared distance of every row to its k-th nearest other row (ADM's ``manifold_radii``)."""
    step = _block_rows(len(x))
    # the (k+1)-th smallest distance, since each point is its own nearest neighbour at distance 0
    radii = []
    for i in range(0, len(x), step):
        radii.append(squared_distances(x[i : i + step], x, arithmetic).kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


@dataclass(frozen=True)
class Manifolds:
    """Who lies in whose k-NN manifold: what precision and recall (and their bootstrap) are made of.

    ``fake_in_real[i]``: generated point ``i`` lies inside some real point's ball (precision);
    ``real_covered[b, j]``: real point ``j`` lies inside the ball of some generated point of block
    ``b`` (recall; blocks as ``fake_blocks`` of :func:`manifolds`).
    """

    fake_in_real: np.ndarray
    real_covered: np.ndarray

    @property
    def precision(self) -> float:
        return float(self.fake_in_real.mean())

    @property
    def recall(self) -> float:
        return float(self.real_covered.any(axis=0).mean())


def manifolds(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int = 3,
    arithmetic: str = "adm",
    fake_blocks: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> Manifolds:
    """Improved precision and recall's memberships (Kynkäänniemi et al.), as ADM's ``ManifoldEstimator``
    with ``nhood_sizes=(3,)``; ``fake_blocks`` (a block index per generated point, default one block)
    groups the recall coverage for the bootstrap."""
    if k < 1:
        raise IGError(f"precision/recall needs k >= 1, got {k}")
    real = torch.as_tensor(_features(real_features, "real features", k + 1), dtype=torch.float32, device=device)
    fake = torch.as_tensor(_features(fake_features, "fake features", k + 1), dtype=torch.float32, device=device)
    if real.shape[1] != fake.shape[1]:
        raise IGError(
            f"real and fake features differ in dimension ({real.shape[1]} vs {fake.shape[1]}): use one extractor"
        )
    blocks = torch.zeros(len(fake), dtype=torch.long) if fake_blocks is None else torch.as_tensor(fake_blocks)
    real_radii, fake_radii = _knn_radii(real, k, arithmetic), _knn_radii(fake, k, arithmetic)
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool, device=device)
    covered = torch.zeros(int(blocks.max()) + 1, len(real), dtype=torch.int32, device=device)
    step = _block_rows(len(real))
    for i in range(0, len(fake), step):
        d = squared_distances(fake[i : i + step], real, arithmetic)
        fake_in_real[i : i + step] = (d <= real_radii[None, :]).any(dim=1)
        covered.index_add_(0, blocks[i : i + step].to(device), (d <= fake_radii[i : i + step, None]).int())
    return Manifolds(fake_in_real.cpu().numpy(), (covered > 0).cpu().numpy())


def precision_recall(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int = 3,
    arithmetic: str = "adm",
    device: str | torch.device = "cpu",
) -> tuple[float, float]:
    """Improved precision and recall with k-NN manifolds, as ADM's ``ManifoldEstimator`` (k = 3 there);
    ``arithmetic`` as :func:`squared_distances` (``adm``: ADM's float16; ``exact``: float32)."""
    m = manifolds(real_features, fake_features, k, arithmetic, device=device)
    return m.precision, m.recall


# --- KID -------------------------------------------------------------------------------------------
KID_TILE = 4096  # rows and columns of one kernel tile (float64: 128 MB)


def _cubic_kernel_minus_one(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``k(u, v) − 1`` for all rows, ``k(x, y) = (x·y/d + 1)³``: the constant 1 cancels exactly in
    MMD² (its three terms' weights sum to zero), and leaving it out keeps the sums' round-off small."""
    g = u @ v.T
    g /= u.shape[1]
    k = g + 3.0
    k *= g
    k += 3.0
    k *= g
    return k


def _pair_sums(a: torch.Tensor, weights: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Per column c of ``weights`` (rows of ``a`` × c): ``Σ_{i≠j} w_i w_j k(a_i, a_j)`` when ``b`` is
    None, else ``Σ_{i,j} w_i k(a_i, b_j)``; tile by tile, so that no n × n matrix is ever held."""
    total = torch.zeros(weights.shape[1], dtype=weights.dtype, device=weights.device)
    for i in range(0, len(a), KID_TILE):
        rows = a[i : i + KID_TILE]
        if b is not None:
            row_sums = torch.zeros(len(rows), dtype=weights.dtype, device=weights.device)
            for j in range(0, len(b), KID_TILE):
                row_sums += _cubic_kernel_minus_one(rows, b[j : j + KID_TILE]).sum(1)
            total += weights[i : i + KID_TILE].T @ row_sums
            continue
        for j in range(i, len(a), KID_TILE):  # the upper triangle of tiles; the others by symmetry
            tile = _cubic_kernel_minus_one(rows, a[j : j + KID_TILE])
            if j == i:
                tile.fill_diagonal_(0.0)  # no sample paired with itself
            sums = (weights[i : i + KID_TILE] * (tile @ weights[j : j + KID_TILE])).sum(0)
            total += sums if j == i else 2 * sums
    return total


def weighted_kid(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    weights: np.ndarray,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """KID with each generated sample i counted ``weights[i, c]`` times, one value per column c (a
    column of ones: :func:`kernel_inception_distance`; bootstrap counts: its replicates).

    The generated term is the mean of ``k`` over pairs of distinct samples, each pair weighted
    ``w_i w_j`` (a sample drawn twice is not paired with its copy, which would add ``k(x, x)``);
    the cross term the weighted mean over all (generated, real) pairs; the real term the plain
    unbiased mean. In float64 (round-off far below KID's sampling error; on a GPU, TF32 cannot
    touch it)."""
    real = _features(real_features, "real features", min_rows=2)
    fake = _features(fake_features, "fake features", min_rows=2)
    if real.shape[1] != fake.shape[1]:
        raise IGError(
            f"real and fake features differ in dimension ({real.shape[1]} vs {fake.shape[1]}): use one extractor"
        )
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64), device=device)
    if w.ndim != 2 or len(w) != len(fake):
        raise IGError(f"KID weights must be (fake samples × columns), got {tuple(w.shape)} for {len(fake)} samples")
    x = torch.as_tensor(fake, dtype=torch.float64, device=device)
    y = torch.as_tensor(real, dtype=torch.float64, device=device)
    m = len(y)
    one = torch.ones(m, 1, dtype=torch.float64, device=device)
    count = w.sum(0)
    fake_term = _pair_sums(x, w) / (count.square() - w.square().sum(0))
    cross_term = _pair_sums(x, w, y) / (count * m)
    real_term = _pair_sums(y, one) / (m * (m - 1))
    return (fake_term - 2 * cross_term + real_term).cpu().numpy()


def kernel_inception_distance(
    real_features: np.ndarray, fake_features: np.ndarray, device: str | torch.device = "cpu"
) -> float:
    """KID (Bińkowski et al. 2018): the unbiased estimate of MMD² between the real and generated
    features under the cubic polynomial kernel ``k(x, y) = (x·y/d + 1)³``, raw (not ×1000 as some
    papers print it); a squared distance in the kernel's units, ≈ 0 for equal distributions, and
    slightly negative then by chance.

    Why beside FID: FID's plug-in estimate is biased upwards by terms that shrink like 1/n and
    depend on the sets' covariances, so a narrow (guided) and a wide (unguided) set compare with a
    bias at 600-1,000 samples; KID's estimate has the same expectation at every n.

    Convention: the plain full-sample estimator (Gretton et al. 2012's MMD²_u: the within-set means
    leave out each sample paired with itself; the sets may differ in size), not torch-fidelity's
    mean over 100 random subsets of 1,000 per side. Both are unbiased for the same MMD²; the full
    estimator has the smaller variance and no random subsets to seed. It costs O(n²·d), ~1e13 flops
    at 50K × 2048 against 10K reference features: ~4 min on 2 CPU cores, well under a second of
    float64 matmuls on an H100. With equal-size sets it equals torch-fidelity's ``kid_features_to_metric`` at
    ``kid_subsets=1, kid_subset_size=n`` (``tests/test_metrics.py``)."""
    n = len(np.asarray(fake_features))
    return float(weighted_kid(real_features, fake_features, np.ones((n, 1)), device)[0])
