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
    assert inception_score(np.zeros((100, 7)), splits=10) == pytest.approx(1.0, abs=1e-12)
    one_hot = 1000.0 * np.tile(np.eye(8), (5, 1))  # each split of 8 rows holds every class once
    assert inception_score(one_hot, splits=5) == pytest.approx(8.0, rel=1e-12)


def test_inception_score_splits_are_ordered_not_shuffled():
    logits = 1000.0 * np.repeat(np.eye(2), 50, axis=0)  # first half class 0, second half class 1
    assert inception_score(logits, splits=1) == pytest.approx(2.0)
    assert inception_score(logits, splits=2) == pytest.approx(1.0)  # each half is a single class


def test_inception_score_matches_straightforward_formula():
    logits = np.random.default_rng(5).standard_normal((103, 11)) * 3
    expected = []
    for idx in np.array_split(np.arange(103), 4):
        p = softmax(logits[idx], axis=1)
        expected.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0))), axis=1))))
    assert inception_score(logits, splits=4) == pytest.approx(np.mean(expected), rel=1e-12)
    with pytest.raises(IGError, match="needs at least 4"):
        inception_score(logits[:3], splits=4)


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
def test_precision_recall_matches_brute_force_and_is_blocking_invariant(k, monkeypatch):
    rng = np.random.default_rng(k)
    real = rng.standard_normal((300, 16))
    fake = rng.standard_normal((250, 16)) * 1.3 + 0.2
    expected = _brute_force_precision_recall(real, fake, k)
    assert precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-12)
    monkeypatch.setattr(metrics, "BLOCK_ELEMENTS", 1000)  # blocks of 3-4 rows
    assert precision_recall(real, fake, k=k) == pytest.approx(expected, abs=1e-12)


def test_precision_recall_rejects_bad_inputs():
    x = np.zeros((10, 4))
    with pytest.raises(IGError, match="at least 4"):
        precision_recall(x, x[:3], k=3)
    with pytest.raises(IGError, match="dimension"):
        precision_recall(x, np.zeros((10, 5)))
