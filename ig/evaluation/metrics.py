"""FID/sFID, Inception Score, precision and recall on feature arrays (a contract).

The definitions are those of the ADM evaluator (openai/guided-diffusion ``evaluations/evaluator.py``),
so that our numbers sit beside the paper's:

- statistics: mean and ``np.cov(rowvar=False)`` in float64;
- Fréchet distance: ``|mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr((S1 S2)^½)``;
- Inception Score: softmax of bias-free logits, ordered (unshuffled) splits, the mean over splits
  of ``exp(mean KL(p(y|x) ‖ p(y)))``;
- precision/recall (Kynkäänniemi et al. 2019): each point's manifold ball has the squared distance
  to its k-th nearest neighbour (itself excluded) as radius; precision is the fraction of generated
  points inside some real ball, recall the fraction of real points inside some generated ball.

Everything takes and returns numpy; torch only speeds up the pairwise distances.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import rel_entr

from ig.errors import IGError

# Pairwise squared distances are computed in blocks of at most this many entries (128 MB in fp32).
BLOCK_ELEMENTS = 2**25


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


def _psd_factor(sigma: np.ndarray) -> np.ndarray:
    """Some A with A Aᵀ = sigma: Cholesky when sigma is positive definite (cheap), else from the
    eigendecomposition, round-off negative eigenvalues counted as zero (singular covariances)."""
    try:
        return np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(sigma)
        return v * np.sqrt(np.clip(w, 0.0, None))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

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
    factor = _psd_factor(sigma1)
    middle = factor.T @ sigma2 @ factor
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    # eigenvalues below round-off (numpy's matrix_rank tolerance) are zero: their square roots
    # (~1e-8 each) would otherwise add up to ~1e-5 on singular covariances
    tolerance = eigenvalues.max(initial=0.0) * len(eigenvalues) * np.finfo(np.float64).eps
    tr_covmean = np.sqrt(eigenvalues[eigenvalues > tolerance]).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def inception_score(logits: np.ndarray, splits: int = 10) -> float:
    """Mean over ``splits`` consecutive parts of ``exp(mean KL(p(y|x) ‖ p(y)))``.

    ``logits`` are bias-free (ADM applies the softmax to ``pool3 @ W``). The parts are taken in
    order, not shuffled, as ADM's 5000-sample splits of 50K samples.
    """
    if splits < 1:
        raise IGError(f"inception score needs splits >= 1, got {splits}")
    logits = _features(logits, "logits", min_rows=splits).astype(np.float64)
    log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    scores = []
    for part in np.array_split(np.exp(log_p), splits):
        marginal = part.mean(axis=0, keepdims=True)
        scores.append(np.exp(rel_entr(part, marginal).sum(axis=1).mean()))
    return float(np.mean(scores))


def _squared_distances(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """All squared Euclidean distances between rows of ``u`` and rows of ``v`` (as ADM: expanded
    form, clamped at zero)."""
    return (u.square().sum(1, keepdim=True) - 2.0 * u @ v.T + v.square().sum(1)).clamp_min_(0.0)


def _block_rows(columns: int) -> int:
    """Rows per block of distances, so that a block holds at most ``BLOCK_ELEMENTS`` entries."""
    return max(1, BLOCK_ELEMENTS // columns)


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Squared distance of every row to its k-th nearest other row (ADM's ``manifold_radii``)."""
    step = _block_rows(len(x))
    # the (k+1)-th smallest distance, since each point is its own nearest neighbour at distance 0
    blocks = [_squared_distances(x[i : i + step], x).kthvalue(k + 1, dim=1).values for i in range(0, len(x), step)]
    return torch.cat(blocks)


def precision_recall(
    real_features: np.ndarray, fake_features: np.ndarray, k: int = 3, device: str | torch.device = "cpu"
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al.) with k-NN manifolds, as ADM's
    ``ManifoldEstimator`` (k = 3 there). Distances in float32 (ADM: float16 with a float32
    fallback; the published torch port uses float32 and matches ADM to ~1e-3)."""
    if k < 1:
        raise IGError(f"precision/recall needs k >= 1, got {k}")
    real = torch.as_tensor(_features(real_features, "real features", k + 1), dtype=torch.float32, device=device)
    fake = torch.as_tensor(_features(fake_features, "fake features", k + 1), dtype=torch.float32, device=device)
    if real.shape[1] != fake.shape[1]:
        raise IGError(
            f"real and fake features differ in dimension ({real.shape[1]} vs {fake.shape[1]}): use one extractor"
        )
    real_radii, fake_radii = _knn_radii(real, k), _knn_radii(fake, k)
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool, device=device)
    real_in_fake = torch.zeros(len(real), dtype=torch.bool, device=device)
    step = _block_rows(len(real))
    for i in range(0, len(fake), step):
        d = _squared_distances(fake[i : i + step], real)
        fake_in_real[i : i + step] = (d <= real_radii[None, :]).any(dim=1)
        real_in_fake |= (d <= fake_radii[i : i + step, None]).any(dim=0)
    return fake_in_real.double().mean().item(), real_in_fake.double().mean().item()
