"""Bootstrap errors against the spread of independent sample sets (Gaussian features, where that
spread can be simulated), replicates against direct recomputation, paired differences, verdicts."""

import numpy as np
import pytest

from ig.errors import IGError
from ig.evaluation import uncertainty
from ig.evaluation.metrics import feature_statistics, frechet_distance, inception_score, manifolds
from ig.evaluation.uncertainty import (
    Bootstrap,
    Difference,
    frechet_replicates,
    inception_score_replicates,
    paired_difference,
    precision_recall_replicates,
    seed_difference,
    verdict,
)

D, N = 12, 800


def _gaussian(seed: int):
    """A generator's Gaussian (mean 0.3, a random covariance) and the reference's exact statistics."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((D, D)) / np.sqrt(D)
    mu_ref, sigma_ref = np.zeros(D), np.eye(D)
    return rng, a, mu_ref, sigma_ref


def _fd(x, mu_ref, sigma_ref):
    return frechet_distance(*feature_statistics(x), mu_ref, sigma_ref)


@pytest.mark.parametrize("blocks", [None, 64])
def test_fid_bootstrap_error_matches_the_spread_of_independent_sample_sets(blocks, monkeypatch):
    rng, a, mu_ref, sigma_ref = _gaussian(0)

    def draw():
        return 0.3 + rng.standard_normal((N, D)) @ (np.eye(D) + 0.5 * a)

    truth = np.std([_fd(draw(), mu_ref, sigma_ref) for _ in range(300)], ddof=1)
    if blocks:  # memory-limited block bootstrap, as at 50K × 2048
        monkeypatch.setattr(uncertainty, "BLOCK_BYTES", 4 * D * D * blocks)
        monkeypatch.setattr(uncertainty, "MIN_BLOCKS", blocks)
    estimates = [
        frechet_replicates(draw(), mu_ref, sigma_ref, Bootstrap(N, 100, seed)).std(ddof=1) for seed in range(4)
    ]
    assert Bootstrap(N, 100).blocks(D) == (blocks or N)
    assert 0.75 < np.mean(estimates) / truth < 1.33, (np.mean(estimates), truth)


def test_each_fid_replicate_is_the_fid_of_its_resample():
    rng, a, mu_ref, sigma_ref = _gaussian(1)
    x = 0.1 + rng.standard_normal((300, D)) @ (np.eye(D) + a)
    boot = Bootstrap(300, 5, seed=3)
    replicates = frechet_replicates(x, mu_ref, sigma_ref, boot)
    for r in range(boot.resamples):
        direct = _fd(x[uncertainty._resample_indices(boot, 300, r)], mu_ref, sigma_ref)
        assert replicates[r] == pytest.approx(direct, rel=1e-5)


def test_each_inception_score_replicate_is_the_score_of_its_resample():
    logits = np.random.default_rng(2).standard_normal((700, 9)) * 2
    boot = Bootstrap(700, 4, seed=1)
    replicates = inception_score_replicates(logits, boot, split_size=300)
    for r in range(4):
        direct = inception_score(logits[uncertainty._resample_indices(boot, 700, r)], split_size=300)
        assert replicates[r] == pytest.approx(direct, rel=1e-12)


def test_precision_recall_replicates_recount_the_resampled_points():
    rng = np.random.default_rng(3)
    real, fake = rng.standard_normal((200, 5)), rng.standard_normal((150, 5)) * 1.2
    boot = Bootstrap(150, 6, seed=2)
    blocks = 30  # 5 samples per block
    m = manifolds(real, fake, k=3, arithmetic="exact", fake_blocks=boot.block_index(blocks))
    full = manifolds(real, fake, k=3, arithmetic="exact")
    assert (m.precision, m.recall) == (full.precision, full.recall)
    precision, recall = precision_recall_replicates(m, boot)
    for r in range(6):
        idx = uncertainty._resample_indices(boot, blocks, r)
        assert precision[r] == pytest.approx(m.fake_in_real[idx].mean())
        drawn = np.unique(boot.block_index(blocks)[idx])
        assert recall[r] == pytest.approx(m.real_covered[drawn].any(axis=0).mean())


def _metrics_file(x, mu_ref, sigma_ref, boot, seed=0):
    """The fields of an `ig evaluate` file that paired_difference reads."""
    replicates = frechet_replicates(x, mu_ref, sigma_ref, boot)
    return {
        "fid": _fd(x, mu_ref, sigma_ref),
        "fid_se": replicates.std(ddof=1),
        "num_samples": len(x),
        "samples": {"seed": seed, "labels": "random"},
        "bootstrap": {**boot.to_dict(), "blocks": {"fid": boot.blocks(x.shape[1])}, "replicates": {"fid": replicates}},
    }


def test_paired_difference_cancels_shared_noise_and_matches_its_true_spread():
    """Two 'guidance settings' of the same noise: B's samples are A's, slightly shrunk. The paired
    error of FID_A − FID_B is far below the unpaired one and matches the difference's own spread."""
    rng, a, mu_ref, sigma_ref = _gaussian(4)

    def pair():
        z = rng.standard_normal((N, D)) @ (np.eye(D) + 0.5 * a) + 0.3
        return z, 0.97 * z

    truth = np.std(
        [_fd(xa, mu_ref, sigma_ref) - _fd(xb, mu_ref, sigma_ref) for xa, xb in (pair() for _ in range(300))], ddof=1
    )
    xa, xb = pair()
    boot = Bootstrap(N, 200)
    fa, fb = _metrics_file(xa, mu_ref, sigma_ref, boot), _metrics_file(xb, mu_ref, sigma_ref, boot)
    paired = paired_difference(fa, fb, "fid")
    assert paired.paired and paired.delta == pytest.approx(fa["fid"] - fb["fid"])
    assert 0.7 < paired.se / truth < 1.4, (paired.se, truth)
    assert paired.se < 0.3 * np.hypot(fa["fid_se"], fb["fid_se"])
    unpaired = paired_difference(fa, _metrics_file(xb, mu_ref, sigma_ref, boot, seed=1), "fid")
    assert not unpaired.paired and unpaired.se == pytest.approx(np.hypot(fa["fid_se"], fb["fid_se"]))


def test_verdict_is_better_worse_or_within_noise_by_the_metrics_direction():
    assert verdict(Difference(-0.5, 0.1, True), "fid") == "better"
    assert verdict(Difference(-0.5, 0.1, True), "is") == "worse"
    assert verdict(Difference(0.5, 0.1, True), "recall") == "better"
    assert verdict(Difference(0.15, 0.1, True), "fid") == "within noise"  # 1.5 standard errors
    # over 3 training seeds the 95 % interval is Student t's (4.3 errors wide), not 1.96
    assert verdict(Difference(-0.3, 0.1, True, dof=2), "fid") == "within noise"
    assert verdict(Difference(-0.5, 0.1, True, dof=2), "fid") == "better"


def test_seed_difference_is_the_mean_with_its_standard_error():
    d = seed_difference([1.0, 2.0, 3.0])
    assert (d.delta, d.se, d.dof) == (2.0, pytest.approx(1 / np.sqrt(3)), 2)
    with pytest.raises(IGError, match="at least two seeds"):
        seed_difference([1.0])


def test_resampling_depends_only_on_size_blocks_and_seed():
    a, b = Bootstrap(1000, 20, seed=7), Bootstrap(1000, 20, seed=7)
    np.testing.assert_array_equal(a.counts(64), b.counts(64))
    assert not np.array_equal(a.counts(64), Bootstrap(1000, 20, seed=8).counts(64))
    assert a.counts(64).sum(axis=1).tolist() == [64] * 20
    with pytest.raises(IGError, match="at least 2 resamples"):
        Bootstrap(10, 1)
