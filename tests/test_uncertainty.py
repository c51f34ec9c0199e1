"""Bootstrap errors against the spread of independent sample sets (Gaussian features, where that
spread can be simulated), replicates against direct recomputation, paired differences, verdicts."""

import numpy as np
import pytest
from scipy import stats

from ig.errors import IGError
from ig.evaluation import uncertainty
from ig.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    manifolds,
)
from ig.evaluation.speedup import steps_to_reach
from ig.evaluation.uncertainty import (
    OUTCOMES,
    Bootstrap,
    Difference,
    claim_alternative,
    claim_outcome,
    claim_p_value,
    equivalence,
    frechet_replicates,
    holm,
    inception_score_replicates,
    independent_difference,
    kid_replicates,
    mixed_difference,
    paired_difference,
    precision_recall_replicates,
    seed_difference,
    seed_mean,
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


# --- KID: every sample its own bootstrap unit; the reference's features held fixed ----------------
M = 600  # reference features


def _kid_file(x, reference, boot, seed=0):
    """The fields of an `ig evaluate` file that paired_difference reads, for KID."""
    replicates = kid_replicates(x, reference, boot)
    return {
        "kid": kernel_inception_distance(reference, x),
        "kid_se": replicates.std(ddof=1),
        "num_samples": len(x),
        "samples": {"seed": seed, "labels": "random"},
        "bootstrap": {**boot.to_dict(), "blocks": {"fid": boot.blocks(x.shape[1])}, "replicates": {"kid": replicates}},
    }


def test_kid_bootstrap_error_matches_the_spread_of_independent_sample_sets():
    rng, a, _, _ = _gaussian(5)
    reference = rng.standard_normal((M, D))

    def draw():
        return 0.3 + rng.standard_normal((N, D)) @ (np.eye(D) + 0.5 * a)

    truth = np.std([kernel_inception_distance(reference, draw()) for _ in range(200)], ddof=1)
    estimates = [kid_replicates(draw(), reference, Bootstrap(N, 100, seed)).std(ddof=1) for seed in range(4)]
    assert 0.75 < np.mean(estimates) / truth < 1.33, (np.mean(estimates), truth)


def test_each_kid_replicate_is_the_kid_of_its_resample_without_pairs_of_copies():
    """A replicate is the KID of the resampled set, where two copies of one sample are not a pair
    (they would add k(x, x), a bias of the resampling, not of the data)."""
    rng, a, _, _ = _gaussian(6)
    x, reference = 0.2 + rng.standard_normal((120, D)) @ (np.eye(D) + a), rng.standard_normal((90, D))
    boot = Bootstrap(120, 4, seed=2)
    replicates = kid_replicates(x, reference, boot)

    def k(u, v):
        return (u @ v.T / D + 1) ** 3

    for r in range(boot.resamples):
        idx = uncertainty._resample_indices(boot, 120, r)
        distinct = idx[:, None] != idx[None, :]
        kyy = k(reference, reference)
        direct = (
            k(x[idx], x[idx])[distinct].mean()
            - 2 * k(x[idx], reference).mean()
            + (kyy.sum() - np.trace(kyy)) / (90 * 89)
        )
        assert replicates[r] == pytest.approx(direct, rel=1e-9)


def test_paired_kid_difference_cancels_shared_noise_and_matches_its_true_spread():
    """As for FID: B's samples are A's, slightly shrunk; the paired error of KID_A − KID_B matches
    the difference's own spread and is far below the unpaired one."""
    rng, a, _, _ = _gaussian(7)
    reference = rng.standard_normal((M, D))

    def pair():
        z = rng.standard_normal((N, D)) @ (np.eye(D) + 0.5 * a) + 0.3
        return z, 0.97 * z

    truth = np.std(
        [kernel_inception_distance(reference, xa) - kernel_inception_distance(reference, xb) for xa, xb in
         (pair() for _ in range(200))],
        ddof=1,
    )  # fmt: skip
    xa, xb = pair()
    boot = Bootstrap(N, 200)
    fa, fb = _kid_file(xa, reference, boot), _kid_file(xb, reference, boot)
    paired = paired_difference(fa, fb, "kid")
    assert paired.paired and paired.delta == pytest.approx(fa["kid"] - fb["kid"])
    assert 0.7 < paired.se / truth < 1.4, (paired.se, truth)
    assert paired.se < 0.3 * np.hypot(fa["kid_se"], fb["kid_se"])
    assert verdict(paired, "kid") == "worse"  # A's samples lie further from the reference


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


# --- over training seeds, claims as tests, the speed-up claim ---------------------------------------
def test_seed_mean_is_the_seeds_spread_over_several_and_the_sampling_error_for_one():
    d = seed_mean([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    assert (d.delta, d.se, d.dof) == (2.0, pytest.approx(1 / np.sqrt(3)), 2)  # the sampling errors are in the spread
    assert seed_mean([4.0], [0.3]) == Difference(4.0, 0.3, False)
    with pytest.raises(IGError, match="one sampling error per value"):
        seed_mean([1.0, 2.0], [0.1])


def test_mixed_difference_by_hand():
    """Seeds 1, 2, 3 (sampling errors 0.1); b has error 0.1 and lies 0.5 below seed 0 (paired error
    0.05). mean − b = 2 − 0.5 = 1.5; the seeds' variance 1, so Var = 1/3 + 0.01 − 2·c/3 with
    c = (0.01 + 0.01 − 0.0025)/2."""
    d = mixed_difference([1.0, 2.0, 3.0], [0.1] * 3, 0.1, 0, Difference(0.5, 0.05, True))
    known = 0.01 - 2 * 0.00875 / 3
    assert d.delta == pytest.approx(1.5)
    assert d.se == pytest.approx(np.sqrt(1 / 3 + known))
    bound = 2 / stats.chi2.ppf(uncertainty.SEED_DOF_QUANTILE, 2)
    assert d.dof == pytest.approx(2 * (1 + 3 * known / bound) ** 2)
    assert d.paired
    # seeds that agree better than their sampling errors allow: the variance is held at the sampling part
    tight = mixed_difference([1.0, 1.0 + 1e-3], [0.1, 0.1], 0.1, 1, Difference(0.2, 0.05, True))
    assert tight.se == pytest.approx(np.sqrt(0.01 / 2 + 0.01 - (0.02 - 0.0025) / 2))
    with pytest.raises(IGError, match="≥ 2 seeds"):
        mixed_difference([1.0], [0.1], 0.1, 0, Difference(0.5, 0.05, True))


def test_independent_difference_has_welch_degrees_of_freedom():
    d = independent_difference(Difference(3.0, 0.3, False, 2), Difference(1.0, 0.4, False, 4))
    assert (d.delta, d.se) == (2.0, pytest.approx(0.5))
    assert d.dof == pytest.approx(0.25**2 / (0.09**2 / 2 + 0.16**2 / 4))
    assert independent_difference(Difference(1.0, 0.3, False), Difference(0.0, 0.4, False)).dof is None
    assert independent_difference(Difference(1.0, 0.3, False, 2), Difference(0.0, 0.4, False)).dof == pytest.approx(
        0.25**2 / (0.09**2 / 2)
    )


def test_p_values_one_and_two_sided():
    d = Difference(-0.196, 0.1, True)
    assert d.p_value("less") == pytest.approx(0.025, abs=1e-4)
    assert d.p_value("greater") == pytest.approx(0.975, abs=1e-4)
    assert d.p_value() == pytest.approx(0.05, abs=2e-4)
    assert Difference(-0.43, 0.1, True, dof=2).p_value() == pytest.approx(0.05, abs=1e-3)
    assert Difference(0.5, 0.0, False).p_value("greater") == 0.0  # an exact number
    assert Difference(0.0, 0.0, False).p_value() == 1.0
    assert -Difference(0.5, 0.1, True, 2) == Difference(-0.5, 0.1, True, 2)
    with pytest.raises(IGError, match="unknown alternative"):
        d.p_value("smaller")


def test_claims_are_tested_in_their_direction_or_for_equivalence():
    better_fid = Difference(-0.3, 0.1, True)  # a's FID 0.3 lower
    assert claim_alternative("better", "fid") == "less" and claim_alternative("better", "is") == "greater"
    assert claim_alternative("worse", "fid") == "greater"
    assert claim_p_value(better_fid, "better", "fid") == pytest.approx(better_fid.p_value("less"))
    assert claim_p_value(better_fid, "worse", "fid") > 0.99
    assert claim_p_value(Difference(0.01, 0.05, True), "matches", "fid", margin=0.2) < 0.001
    with pytest.raises(IGError, match="needs an equivalence margin"):
        claim_p_value(better_fid, "matches", "fid")


def test_equivalence_verdicts():
    assert equivalence(Difference(0.02, 0.05, True), 0.2) == "equivalent"
    assert equivalence(Difference(0.02, 0.5, True), 0.2) == "inconclusive"  # within noise is not a match
    assert equivalence(Difference(0.6, 0.1, True), 0.2) == "not equivalent"
    assert equivalence(Difference(0.25, 0.1, True), 0.2) == "inconclusive"
    with pytest.raises(IGError, match="must be positive"):
        equivalence(Difference(0.0, 0.1, True), 0.0)


def test_holm_adjusts_by_rank():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])
    assert holm([]) == []


def test_claim_outcome_from_the_adjusted_p_value():
    reproduced, not_reproduced, inconclusive = OUTCOMES
    d = Difference(-0.3, 0.1, True)
    assert claim_outcome(d, "better", "fid", p_adjusted=0.01) == reproduced
    assert claim_outcome(d, "better", "fid", p_adjusted=0.08) == inconclusive  # real, but not after Holm
    assert claim_outcome(d, "worse", "fid", p_adjusted=1.0) == not_reproduced
    assert claim_outcome(Difference(0.6, 0.1, True), "matches", "fid", 1.0, margin=0.2) == not_reproduced
    assert claim_outcome(Difference(0.0, 0.5, True), "matches", "fid", 0.4, margin=0.2) == inconclusive


STEPS = [200, 400, 600, 800, 1000]
SEEDS = [[9.0, 7.0, 6.0, 5.0, 4.5], [9.2, 7.1, 6.1, 5.2, 4.4], [8.8, 6.9, 5.9, 4.9, 4.6]]


def test_steps_to_reach_decides_sooner_or_cannot():
    ses = [[0.1] * 5] * 3
    sooner = steps_to_reach(STEPS, SEEDS, ses, seed_mean([5.5, 5.6, 5.4], [0.1] * 3), lower_is_better=True)
    assert sooner.step == pytest.approx(600 + 200 * (6.0 - 5.5) / (6.0 - 15.1 / 3))  # the mean curve 6 → 5.03
    assert sooner.low < sooner.step < sooner.high < 1000
    assert sooner.verdict(1000) == "better" and sooner.p_sooner(1000) < 0.025
    assert sooner.speedup(1000)[0] == pytest.approx(1000 / sooner.step)
    # b's final value is a's own: a reaches it at its last milestone, or later, or never
    same = steps_to_reach(STEPS, SEEDS, ses, seed_mean([4.6, 4.5, 4.4], [0.1] * 3), lower_is_better=True)
    assert same.high == np.inf and same.verdict(1000) == "within noise" and same.p_sooner(1000) > 0.05
    never = steps_to_reach(STEPS, SEEDS, ses, seed_mean([2.0, 2.1, 1.9], [0.1] * 3), lower_is_better=True)
    assert never.step == never.low == np.inf and never.verdict(1000) == "worse"
    assert never.verdict(2000) == "within noise"  # a was not trained that far
    assert never.speedup(1000) == (0.0, 0.0, 0.0)


def test_steps_to_reach_higher_is_better_and_a_single_noisy_seed():
    rising = [[1.0, 3.0, 2.6, 5.0]]  # one seed (sampling errors only); the dip at 300 is noise
    reach = steps_to_reach([100, 200, 300, 400], rising, [[0.05] * 4], Difference(4.0, 0.05, False), False)
    assert reach.step == pytest.approx(300 + 100 * (4.0 - 2.8) / (5.0 - 2.8))  # isotonic: 3.0, 2.6 → 2.8, 2.8
    with pytest.raises(IGError, match="must increase"):
        steps_to_reach([100, 100], [[1.0, 2.0]], [[0.1, 0.1]], Difference(1.5, 0.1, False), False)
