"""Metric functions against closed forms, hand-made cases and independent implementations."""

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist
from scipy.special import softmax

from ig.errors import IGError
from ig.evaluation import metrics
from ig.evaluation.metrics import feature_statistics, frechet_distance, inception_score, precision_recall


def _random_covariance(rng, d, samples=None):
    a = rng.standard_normal((samples or 2 * d, d))
    return a.T @ a / len(a)


def _adm_frechet_distance(mu1, sigma1, mu2, sigma2):
    """The ADM evaluator's formula with scipy.linalg.sqrtm, as an independent reference."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    diff = mu1 - mu2
    return diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean).real


def _closed_form(mu1, a, mu2, b):
    """FD of Gaussians whose covariances share eigenvectors, with eigenvalues a and b."""
    return np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(64), rng.standard_normal(64)
    a, b = rng.uniform(0.1, 3, 64), rng.uniform(0.1, 3, 64)
    fd = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert fd == pytest.approx(_closed_form(mu1, a, mu2, b), rel=1e-12)


def test_frechet_distance_commuting_closed_form():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((100, 100)))
    a, b = rng.uniform(0.01, 5, 100), rng.uniform(0.01, 5, 100)
    mu1, mu2 = rng.standard_normal(100), rng.standard_normal(100)
    fd = frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert fd == pytest.approx(_closed_form(mu1, a, mu2, b), rel=1e-10)


def test_frechet_distance_singular_commuting_closed_form():
    # rank-deficient covariances (as from fewer samples than dimensions): no NaN, still exact
    a = np.array([1.0, 0.0, 4.0, 0.0, 0.0])
    b = np.array([0.0, 1.0, 1.0, 0.0, 2.0])
    fd = frechet_distance(np.zeros(5), np.diag(a), np.ones(5), np.diag(b))
    assert fd == pytest.approx(_closed_form(np.zeros(5), a, np.ones(5), b), abs=1e-9)


@pytest.mark.parametrize("d", [16, 256])
def test_frechet_distance_matches_adm_sqrtm(d):
    rng = np.random.default_rng(d)
    s1, s2 = _random_covariance(rng, d), _random_covariance(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d) * 0.1
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_adm_frechet_distance(mu1, s1, mu2, s2), rel=1e-6)
    assert ours == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)  # symmetric


def test_frechet_distance_of_identical_statistics_is_zero():
    rng = np.random.default_rng(3)
    mu, sigma = feature_statistics(rng.standard_normal((50, 200)))  # singular: 50 samples, 200 dims
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8 * np.trace(sigma)


def test_frechet_distance_rejects_bad_inputs():
    with pytest.raises(IGError, match="same feature extractor"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(IGError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2), np.array([0.0, np.nan]), np.eye(2))


def test_feature_statistics_are_float64_mean_and_cov():
    x = np.random.default_rng(4).standard_normal((30, 5)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64).T), rtol=1e-12)
    with pytest.raises(IGError, match="at least 2"):
        feature_statistics(x[:1])
    with pytest.raises(IGError, match="2-D"):
        feature_statistics(x[0])


def test_inception_score_uniform_is_one_and_one_hot_is_class_count():
    assert inception_score(np.zeros((100, 7)), split_size=10) == pytest.approx(1.0, abs=1e-12)
    one_hot = 1000.0 * np.tile(np.eye(8), (5, 1))  # each part of 8 rows holds every class once
    assert inception_score(one_hot, split_size=8) == pytest.approx(8.0, rel=1e-12)


def test_inception_score_parts_are_consecutive_not_shuffled():
    logits = 1000.0 * np.repeat(np.eye(2), 50, axis=0)  # first half class 0, second half class 1
    assert inception_score(logits, split_size=100) == pytest.approx(2.0)
    assert inception_score(logits, split_size=50) == pytest.approx(1.0)  # each half is a single class


def _adm_inception_score(logits, split_size=5000):
    """The ADM evaluator's compute_inception_score loop, transcribed: parts of split_size rows, the
    last one shorter."""
    preds = softmax(logits, axis=1)
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i : i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))


@pytest.mark.parametrize("rows", [600, 12_000, 50_000])
def test_inception_score_splits_as_the_adm_evaluator_for_any_count(rows):
    logits = np.random.default_rng(rows).standard_normal((rows, 20)) * 2
    assert inception_score(logits) == pytest.approx(_adm_inception_score(logits), rel=1e-12)
    if rows == 12_000:  # where the old 10 equal splits differ from ADM's parts of 5,000
        ten = np.mean([_adm_inception_score(part, len(part)) for part in np.array_split(logits, 10)])
        assert abs(ten - inception_score(logits)) > 1e-3 * inception_score(logits)


def test_inception_score_rejects_bad_split_size():
    with pytest.raises(IGError, match="split_size >= 1"):
        inception_score(np.zeros((4, 3)), split_size=0)


def _line(xs):
    return np.stack([np.asarray(xs, dtype=np.float64), np.zeros(len(xs))], axis=1)


def test_precision_recall_hand_computed():
    real = _line(range(10))  # k = 1: every real ball has radius 1
    fake = _line([0.5, 1.5, 100, 101])  # k = 1: every fake ball has radius 1
    precision, recall = precision_recall(real, fake, k=1)
    assert precision == 0.5  # 0.5 and 1.5 lie in real balls, 100 and 101 do not
    assert recall == 0.3  # real 0, 1, 2 lie within 1 of a fake point


def test_precision_recall_identical_and_disjoint_sets():
    x = np.random.default_rng(6).standard_normal((40, 8))
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0, k=3) == (0.0, 0.0)


def _brute_force_precision_recall(real, fake, k):
    def radii(x):
        return np.sort(cdist(x, x, "sqeuclidean"), axis=1)[:, k]

    d = cdist(fake, real, "sqeuclidean")
    return np.mean((d <= radii(real)[None]).any(1)), np.mean((d <= radii(fake)[:, None]).any(0))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_exact_precision_recall_matches_brute_force_and_is_blocking_invariant(k, monkeypatch):
    rng = np.random.default_rng(k)
    real = rng.standard_normal((300, 16))
    fake = rng.standard_normal((250, 16)) * 1.3 + 0.2
    expected = _brute_force_precision_recall(real, fake, k)
    assert precision_recall(real, fake, k=k, arithmetic="exact") == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(metrics, "BLOCK_ELEMENTS", 1000)  # blocks of 3-4 rows
    assert precision_recall(real, fake, k=k, arithmetic="exact") == pytest.approx(expected, abs=1e-12)


def _adm_distances_numpy(u, v):
    """ADM's DistanceBlock in numpy float16: squares, the product (float32 sums) and every later step
    rounded to float16, then float32; the float32 formula where float16 overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        d = _float16_distances(u.astype(np.float16), v.astype(np.float16))
    if not np.isfinite(d).all():
        u, v = u.astype(np.float32), v.astype(np.float32)
        d = np.maximum((u**2).sum(1)[:, None] - 2 * u @ v.T + (v**2).sum(1)[None], 0)
    return d.astype(np.float32)


def _float16_distances(u16, v16):
    norm_u = (u16.astype(np.float32) ** 2).astype(np.float16).astype(np.float32).sum(1).astype(np.float16)
    norm_v = (v16.astype(np.float32) ** 2).astype(np.float16).astype(np.float32).sum(1).astype(np.float16)
    product = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
    return np.maximum((norm_u[:, None] - np.float16(2) * product) + norm_v[None, :], np.float16(0))


def test_adm_arithmetic_is_float16_distances_as_the_adm_evaluator():
    import torch

    rng = np.random.default_rng(11)
    u = np.abs(rng.standard_normal((40, 64))).astype(np.float32) * 0.7  # pool3-like: non-negative
    v = np.abs(rng.standard_normal((30, 64))).astype(np.float32) * 0.7
    ours = metrics.squared_distances(torch.from_numpy(u), torch.from_numpy(v), "adm").numpy()
    np.testing.assert_array_equal(ours, _adm_distances_numpy(u, v))
    exact = metrics.squared_distances(torch.from_numpy(u), torch.from_numpy(v), "exact").numpy()
    assert 1e-4 < np.abs(ours - exact).max() / exact.max() < 1e-2  # float16 rounding, not a bug
    big = u * 300  # squared norms beyond float16's 65504: ADM falls back to float32
    fallback = metrics.squared_distances(torch.from_numpy(big), torch.from_numpy(big), "adm").numpy()
    reference = _adm_distances_numpy(big, big)
    assert np.abs(fallback - reference).max() <= 1e-6 * reference.max()  # float32 (summation order)


def test_adm_and_exact_precision_recall_agree_to_about_1e_3():
    rng = np.random.default_rng(12)
    real = np.abs(rng.standard_normal((2000, 256))).astype(np.float32)
    fake = np.abs(rng.standard_normal((2000, 256)) * 1.05 + 0.02).astype(np.float32)
    adm = precision_recall(real, fake, arithmetic="adm")
    exact = precision_recall(real, fake, arithmetic="exact")
    assert adm != exact  # the arithmetic is really different...
    assert np.abs(np.subtract(adm, exact)).max() < 5e-3  # ...and the metrics nearly the same


def test_precision_recall_rejects_bad_inputs():
    x = np.zeros((10, 4))
    with pytest.raises(IGError, match="at least 4"):
        precision_recall(x, x[:3], k=3)
    with pytest.raises(IGError, match="dimension"):
        precision_recall(x, np.zeros((10, 5)))
    with pytest.raises(IGError, match="arithmetic must be one of"):
        precision_recall(x, x, arithmetic="fp8")


# --- KID -------------------------------------------------------------------------------------------
def _pool_like(rng, n, d, shift=0.3):
    """Non-negative features, as Inception's pool3 (after ReLU and average pooling)."""
    return np.abs(rng.standard_normal((n, d)) * 0.8 + shift)


def _brute_force_kid(real, fake):
    """MMD²_u with the cubic kernel from whole kernel matrices (Gretton et al. 2012, eq. 3)."""

    def k(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    kxx, kyy, kxy = k(fake, fake), k(real, real), k(fake, real)
    n, m = len(fake), len(real)
    return (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()


def test_kid_equals_torch_fidelity_on_the_same_features(monkeypatch):
    """torch-fidelity's kid_features_to_metric with one subset of all n samples (a permutation of
    each set, which MMD² ignores) is our full-sample estimator, to round-off; tiling changes nothing."""
    import torch
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(20)
    real, fake = _pool_like(rng, 700, 64, 0.35), _pool_like(rng, 700, 64)
    theirs = kid_features_to_metric(
        torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=1, kid_subset_size=700, verbose=False
    )["kernel_inception_distance_mean"]
    ours = metrics.kernel_inception_distance(real, fake)
    assert 1e-4 < ours == pytest.approx(theirs, rel=1e-10, abs=1e-15)
    monkeypatch.setattr(metrics, "KID_TILE", 97)  # several tiles, the last one short
    assert metrics.kernel_inception_distance(real, fake) == pytest.approx(theirs, rel=1e-10, abs=1e-15)


def test_kid_of_unequal_sets_is_the_unbiased_mmd():
    rng = np.random.default_rng(21)
    real, fake = _pool_like(rng, 300, 32, 0.4), _pool_like(rng, 450, 32)
    assert metrics.kernel_inception_distance(real, fake) == pytest.approx(_brute_force_kid(real, fake), rel=1e-10)


def test_torch_fidelitys_subset_kid_estimates_the_same_quantity():
    """torch-fidelity's default (the mean over 100 subsets of 1,000 per side) differs from the
    full-sample estimate on the same features only by its subsets' noise (std / √100)."""
    import torch
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(22)
    real, fake = _pool_like(rng, 2000, 64, 0.35), _pool_like(rng, 2000, 64)
    subsets = kid_features_to_metric(
        torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=100, kid_subset_size=1000, verbose=False
    )
    mean, std = subsets["kernel_inception_distance_mean"], subsets["kernel_inception_distance_std"]
    assert abs(metrics.kernel_inception_distance(real, fake) - mean) < 4 * std / 10


def _fid(real, fake):
    return frechet_distance(*feature_statistics(fake), *feature_statistics(real))


def _mean_and_error(values):
    return np.mean(values), np.std(values, ddof=1) / np.sqrt(len(values))


@pytest.mark.parametrize("same", [True, False])
def test_kid_is_unbiased_at_any_sample_count_where_fid_is_not(same):
    """Over independent draws, KID's mean is the same at 200 and at 2,000 samples per side (and 0 for
    two samples of one Gaussian); FID's is not: its bias shrinks with n, which is why FIDs of sets
    with different spreads at 600-1,000 samples compare with a bias."""
    rng = np.random.default_rng(23 + same)
    d = 16
    a = np.eye(d) if same else 0.8 * np.eye(d) + 0.3 * rng.standard_normal((d, d)) / np.sqrt(d)
    shift = 0.0 if same else 0.2

    def draws(n, count):
        pairs = [(rng.standard_normal((n, d)), shift + rng.standard_normal((n, d)) @ a) for _ in range(count)]
        kid = [metrics.kernel_inception_distance(real, fake) for real, fake in pairs]
        return _mean_and_error(kid), _mean_and_error([_fid(real, fake) for real, fake in pairs])

    (kid_small, e_small), (fid_small, f_small) = draws(200, 100)
    (kid_large, e_large), (fid_large, f_large) = draws(2000, 12)
    assert abs(kid_small - kid_large) < 4 * np.hypot(e_small, e_large), (kid_small, kid_large)
    assert fid_small - fid_large > 10 * np.hypot(f_small, f_large), (fid_small, fid_large)
    if same:
        assert abs(kid_small) < 4 * e_small and abs(kid_large) < 4 * e_large
    else:
        assert kid_large > 20 * e_large  # a real difference, measured without bias


def test_kid_rejects_bad_inputs():
    x = np.ones((10, 4))
    with pytest.raises(IGError, match="dimension"):
        metrics.kernel_inception_distance(x, np.ones((10, 5)))
    with pytest.raises(IGError, match="at least 2"):
        metrics.kernel_inception_distance(x, x[:1])
    with pytest.raises(IGError, match="weights"):
        metrics.weighted_kid(x, x, np.ones((9, 1)))
