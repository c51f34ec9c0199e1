"""The 2D toy: exact mixture maths, metrics on constructed cases, training/sampling plumbing, CLI."""

import csv
import json
import math
from dataclasses import replace

import pytest
import torch

from ig.cli import main
from ig.errors import IGError
from ig.evaluation.uncertainty import outcome, seed_difference, verdict
from ig.guidance import Guidance, GuidedVelocity
from ig.sampling.integrators import sample
from ig.sampling.settings import SamplerSettings
from ig.toy2d.claims import Claim, check, write_claims
from ig.toy2d.experiment import QUICK, Settings, load_guidance, paper_claims, table_rows
from ig.toy2d.metrics import LOWER_IS_BETTER, METRICS, confusion, evaluate, leaf_coverage, sliced_wasserstein
from ig.toy2d.mixture import TreeMixture
from ig.toy2d.model import NullLabel, ToyDenoiser
from ig.toy2d.plot import Background
from ig.toy2d.train import ToyTraining, train


@pytest.fixture(scope="module")
def tree():
    return TreeMixture()


@pytest.fixture(scope="module")
def levels(tree):
    return tree.outline_levels()


def _near_tree(tree, n, seed=0, jitter=0.02):
    g = torch.Generator().manual_seed(seed)
    return tree.classes[0].sample(n, g).double() + jitter * torch.randn(n, 2, generator=g, dtype=torch.float64)


class ExactVelocity(torch.nn.Module):
    """The exact conditional/unconditional velocity behind the model interface."""

    num_classes = 2
    ig_layer = 0

    def __init__(self, tree):
        super().__init__()
        self.tree = tree

    def forward(self, x, t, y):
        return self.tree.velocity(x, t, y), None


# --- the mixture --------------------------------------------------------------------------


def test_tree_matches_edm2_layout(tree):
    """Same component count, branch count and (pinned, checked once against EDM2's gt()) means."""
    assert [len(m.log_weights) for m in tree.classes] == [1016, 1016]
    assert len(tree.branches) == 2 * 127
    assert [len(tree.leaves(c)) for c in (0, 1)] == [64, 64]
    assert torch.allclose(tree.classes[0].means[0], torch.tensor([0.0213441091, 0.0633343071], dtype=torch.float64))
    assert torch.allclose(tree.classes[1].means[-1], torch.tensor([-0.4932547952, 0.5585266677], dtype=torch.float64))
    assert len(tree.union.log_weights) == 2032
    assert math.isclose(tree.union.log_weights.exp().sum().item(), 1.0)


@pytest.mark.parametrize("which,t,spacing", [("A", 0.05, 0.02), ("union", 0.5, 0.08)])
def test_density_integrates_to_one(tree, which, t, spacing):
    """Riemann sum over a box holding every diffused component to 6 std; the spacing resolves
    the narrowest diffused component (std ≥ t), where a Riemann sum of a Gaussian is accurate."""
    mix = tree.classes[0] if which == "A" else tree.union
    centres = (1 - t) * mix.means
    margin = 6 * math.sqrt((1 - t) ** 2 * mix.eigvals.max().item() + t**2)
    axes = [
        torch.arange(centres[:, d].min() - margin, centres[:, d].max() + margin, spacing, dtype=torch.float64)
        for d in (0, 1)
    ]
    gx, gy = torch.meshgrid(*axes, indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    total = mix.log_prob(grid, t).exp().sum().item() * spacing**2
    assert total == pytest.approx(1.0, abs=2e-3)


def test_log_prob_is_finite_far_away(tree):
    x = torch.tensor([[1e3, -1e3], [50.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    for t in (0.0, 0.5):
        lp = tree.classes[0].log_prob(x, t)
        assert torch.isfinite(lp).all()
        assert lp[0] < lp[1] < lp[2]
    assert torch.isfinite(tree.classes[0].log_prob(x.float())).all()


@pytest.mark.parametrize("t", [0.0, 0.01, 0.3, 0.9])
def test_score_is_gradient_of_log_density(tree, t):
    x = _near_tree(tree, 64)
    h = 1e-6 if t < 0.05 else 1e-5
    mix = tree.classes[0]
    fd = torch.stack([(mix.log_prob(x + h * e, t) - mix.log_prob(x - h * e, t)) / (2 * h) for e in torch.eye(2)], 1)
    score = mix.score(x, t)
    assert torch.allclose(score, fd, rtol=1e-4, atol=1e-4 * score.abs().max().item())


@pytest.mark.parametrize("t", [0.0, 0.02, 0.5, 0.99])
def test_velocity_is_consistent_with_score(tree, t):
    """``v = −(x + t ∇log p_t) / (1 − t)``: the linear path's velocity–score identity."""
    x = _near_tree(tree, 64, seed=1, jitter=0.1)
    for mix in (tree.classes[1], tree.union):
        expected = -(x + t * mix.score(x, t)) / (1 - t)
        assert torch.allclose(mix.velocity(x, t), expected, rtol=1e-6, atol=1e-8)


def test_velocity_endpoints(tree):
    x = _near_tree(tree, 16, seed=2)
    mix = tree.classes[0]
    assert torch.allclose(mix.velocity(x, 0.0), -x)  # x_0 is the data: E[ε | x0] = 0
    mean = mix.log_weights.exp() @ mix.means
    assert torch.allclose(mix.velocity(x, 1.0), x - mean)  # x_1 is the noise: E[x0 | x1] = E[x0]


def test_per_row_times_and_labels(tree):
    x = _near_tree(tree, 6, seed=3).float()
    t = torch.tensor([0.0, 0.1, 0.5, 0.9, 0.3, 0.7])
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    v = tree.velocity(x, t, y)
    for i in range(6):
        assert torch.allclose(v[i], tree.mixture(int(y[i])).velocity(x[i : i + 1], float(t[i]))[0], atol=1e-5)


def test_samples_match_mixture_moments(tree):
    mix = tree.classes[1]
    x = mix.sample(200_000, torch.Generator().manual_seed(0)).double()
    w = mix.log_weights.exp()
    mean = w @ mix.means
    second = torch.einsum("k,kde->de", w, mix.covs + torch.einsum("kd,ke->kde", mix.means, mix.means))
    cov = second - torch.outer(mean, mean)
    assert torch.allclose(x.mean(0), mean, atol=4e-3)
    assert torch.allclose(torch.cov(x.T), cov, atol=4e-3)


def test_samples_fall_on_components_in_proportion(tree):
    """A histogram over the tree's depth levels: sample fractions match the mixture's masses."""
    mix = tree.classes[0]
    x = mix.sample(20_000, torch.Generator().manual_seed(1))
    _, comp = mix.classify(x)
    depth_of = torch.tensor([tree.branches[b].depth for b in tree.component_branch[0].tolist()])
    observed = torch.bincount(depth_of[comp], minlength=7).double() / len(x)
    expected = torch.zeros(7, dtype=torch.float64).index_add_(0, depth_of, mix.log_weights.exp())
    assert torch.allclose(observed, expected, atol=0.015)


def test_exact_velocity_through_the_sampler_reproduces_the_data(tree, levels):
    """Our sampler settings (Heun, 32 steps, shift 8) on the exact velocity land on the tree."""
    n = 128
    y = torch.arange(2).repeat_interleave(n)
    g = torch.Generator().manual_seed(0)
    x = sample(
        GuidedVelocity(ExactVelocity(tree)),
        torch.randn(2 * n, 2, generator=g),
        y,
        SamplerSettings(method="heun", steps=32, shift=8.0),
    )
    m = evaluate(tree, x, y, levels, g)
    assert m["outside"] < 0.06
    assert m["loglik"] > 0.5


# --- metrics ---------------------------------------------------------------------------------


def test_ground_truth_samples_score_perfectly(tree, levels):
    n = 8192
    y = torch.arange(2).repeat_interleave(n)
    x = tree.sample(y, torch.Generator().manual_seed(0))
    m = evaluate(tree, x, y, levels, torch.Generator().manual_seed(1))
    assert m["outside"] < 0.03
    assert m["coverage"] > 0.97
    assert m["loglik"] == pytest.approx(1.34, abs=0.05)
    assert m["swd"] < 0.02


def test_collapsed_and_displaced_samples_score_badly(tree, levels):
    mix = tree.classes[0]
    leaf = tree.leaves(0)[0]
    on_leaf = torch.nonzero(tree.component_branch[0] == leaf).flatten()
    comp = on_leaf[torch.randint(len(on_leaf), (4096,), generator=torch.Generator().manual_seed(0))]
    collapsed = mix.means[comp].float()
    assert leaf_coverage(tree, 0, mix.classify(collapsed)[1]) == pytest.approx(1 / 64)
    trunk = mix.means[tree.component_branch[0] == 0].float().repeat(512, 1)
    assert leaf_coverage(tree, 0, mix.classify(trunk)[1]) == 0.0

    y = torch.zeros(4096, dtype=torch.long)
    far = tree.sample(y, torch.Generator().manual_seed(2)) + torch.tensor([3.0, -3.0])
    m = evaluate(tree, torch.cat([far, far]), torch.cat([y, y + 1]), levels, torch.Generator().manual_seed(3))
    assert m["outside"] == 1.0
    assert math.isfinite(m["loglik"]) and m["loglik"] < -100


def test_confusion_counts_samples_inside_the_other_outline(tree, levels):
    """Truth from the data, not the metric: a class's own samples sit in the other outline only
    where the two trees share their root (a few %); the other class's samples, given this class's
    label, nearly all do; a point checked to lie inside both outlines counts, a far one does not."""
    g = torch.Generator().manual_seed(0)
    for cls in (0, 1):
        own = tree.classes[cls].sample(4096, g)
        other = tree.classes[1 - cls].sample(4096, g)
        assert confusion(tree, cls, own, levels) < 0.04
        assert confusion(tree, cls, other, levels) > 0.95
    root = (tree.classes[0].means[:1] + tree.classes[1].means[:1]) / 2
    assert all(tree.classes[c].log_prob(root) >= levels[c] for c in (0, 1))
    far = torch.tensor([[3.0, -3.0]], dtype=torch.float64)
    assert confusion(tree, 0, root, levels) == confusion(tree, 1, root, levels) == 1.0
    assert confusion(tree, 0, far, levels) == 0.0

    a, b = (tree.classes[c].sample(4096, g) for c in (0, 1))
    y = torch.zeros(4096, dtype=torch.long)
    swapped = evaluate(tree, torch.cat([b, a]), torch.cat([y, y + 1]), levels, g)
    assert swapped["confusion"] > 0.95 and swapped["outside"] > 0.95


def test_sliced_wasserstein_of_a_translation():
    """Projections of a shift δ have W2² = (θ·δ)², whose mean over directions is |δ|²/2."""
    a = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    assert sliced_wasserstein(a, a, 64, g) == 0.0
    delta = torch.tensor([0.3, -0.4])
    assert sliced_wasserstein(a, a + delta, 1024, g) == pytest.approx(0.5 / math.sqrt(2), rel=0.04)


def test_background_union_is_the_equal_prior_mixture(tree, levels):
    """The figure's A∪B density, built from the two class densities, is the union mixture's."""
    bg = Background(tree, 24, (0.0, 0.0))
    axis = torch.tensor(bg.axis, dtype=torch.float64)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    for ours, exact in ((bg.union, tree.union), (bg.class_a, tree.classes[0])):
        assert torch.allclose(torch.from_numpy(ours).double().flatten(), exact.log_prob(grid), atol=1e-2)


# --- claims ----------------------------------------------------------------------------------


def _per_seed(deltas, metric="outside", base=0.1):
    return [{"a": {metric: base + d}, "b": {metric: base}} for d in deltas]


@pytest.mark.parametrize("metric", METRICS)
def test_claim_verdicts_follow_the_shared_rule(metric):
    """Every toy verdict is ``ig.evaluation.uncertainty.verdict`` for the image metric of the same
    direction, on the per-seed differences; random differences hit all three verdicts."""
    same_direction = "fid" if LOWER_IS_BETTER[metric] else "recall"
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(60):
        deltas = (0.02 * torch.randn(1, generator=g) + 0.01 * torch.randn(4, generator=g)).tolist()
        result = check(Claim("x", "a beats b", "a", "b", metric), _per_seed(deltas, metric))
        expected = verdict(seed_difference(deltas), same_direction)
        assert result["verdict"] == expected
        assert result["delta"] == pytest.approx(sum(deltas) / 4)
        seen.add(expected)
    assert seen == {"better", "worse", "within noise"}


def test_metric_directions_favour_the_ground_truth(tree, levels):
    """On every metric, ground truth beats samples given the other class's label (over two seeds)."""
    y = torch.arange(2).repeat_interleave(2048)
    per_seed = []
    for seed in (0, 1):
        g = torch.Generator().manual_seed(seed)
        x = tree.sample(y, g)
        per_seed.append({"a": evaluate(tree, x, y, levels, g), "b": evaluate(tree, x, 1 - y, levels, g)})
    for metric in METRICS:
        assert check(Claim("x", "truth beats swapped labels", "a", "b", metric), per_seed)["verdict"] == "better"


def test_claim_outcomes():
    lower = check(Claim("x", "a beats b", "a", "b", "outside"), _per_seed([-0.05, -0.04, -0.06, -0.05]))
    higher = check(Claim("x", "a beats b", "a", "b", "coverage"), _per_seed([-0.05, -0.04, -0.06, -0.05], "coverage"))
    assert (lower["result"], higher["result"]) == ("reproduced", "not reproduced")
    noisy = _per_seed([-0.05, 0.04, -0.06, 0.05])
    assert check(Claim("x", "a matches b", "a", "b", "outside", matches=True), noisy)["result"] == "reproduced"
    assert check(Claim("x", "a beats b", "a", "b", "outside"), noisy)["result"] == "inconclusive"


def test_paper_claims_compare_rows_of_the_table():
    for settings in (QUICK, Settings()):
        keys = {r.key for r in table_rows(settings, load_guidance(None))}
        claims = paper_claims(settings)
        assert all(c.a in keys and c.b in keys and c.a != c.b and c.metric in METRICS for c in claims)
    assert [c.label for c in claims] == ["a", "b", "b", "c", "c", "d", "d", "e", "f"]
    assert {(c.a, c.b, c.metric) for c in claims} >= {
        ("IG @4096", "no guidance @4096", "outside"),
        ("CFG @4096", "no guidance @4096", "confusion"),
        ("CFG @4096", "no guidance @4096", "outside"),
        ("IG+CFG @4096", "IG @4096", "outside"),
        ("IG+CFG @4096", "IG @4096", "confusion"),
        ("IG @512", "no guidance @4096", "outside"),
        ("IG interval @4096", "IG @4096", "outside"),
    }
    assert [c.matches for c in claims] == [c.label == "e" for c in claims]
    interval = next(r for r in table_rows(Settings(), load_guidance(None)) if r.name == "IG interval")
    assert interval.guidance == Guidance(ig_scale=2.0, ig_interval=(0.3, 1.0))


def test_claims_files(tmp_path):
    claims = [
        Claim("a", "a beats b", "a", "b", "outside"),
        Claim("e", "a matches b", "a", "b", "outside", matches=True),
    ]
    results = [check(c, _per_seed([0.05, 0.04, 0.06, 0.05])) for c in claims]
    markdown = write_claims(tmp_path, results)
    assert (tmp_path / "claims.md").read_text() == markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(claims)  # header, rule, one row per claim
    assert "| a | a beats b | a | b | outside | 15.0 | 10.0 | 5.0 ± 0.4 |" in markdown
    assert all(line.endswith("| worse | **not reproduced** |") for line in table[2:])
    saved = json.loads((tmp_path / "claims.json").read_text())
    assert saved["seeds"] == 4 and [r["label"] for r in saved["claims"]] == ["a", "e"]
    assert saved["claims"][0]["deltas"] == pytest.approx([0.05, 0.04, 0.06, 0.05])
    assert saved["claims"][0]["lower_is_better"] is True


# --- model, training, sampling ---------------------------------------------------------------


def test_model_interface_and_zero_init():
    model = ToyDenoiser(width=16, ig_layer=2)
    x, t, y = torch.randn(5, 2), torch.rand(5), torch.tensor([0, 1, 2, 0, 1])
    v_final, v_inter = model(x, t, y)
    assert v_final.shape == v_inter.shape == (5, 2)
    tt = t.view(-1, 1)
    gaussian = (tt - (1 - tt) * 0.25) / ((1 - tt) ** 2 * 0.25 + tt**2) * x
    assert torch.allclose(v_final, gaussian) and torch.allclose(v_inter, gaussian)
    assert (model.num_classes, model.ig_layer) == (2, 2)
    assert ToyDenoiser(width=16, ig_layer=0)(x, t, y)[1] is None
    with pytest.raises(IGError):
        ToyDenoiser(depth=4, ig_layer=4)


def test_null_label_guide_ignores_labels():
    torch.manual_seed(0)
    net = ToyDenoiser(width=16, ig_layer=0)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    x, t = torch.randn(4, 2), torch.rand(4)
    v = NullLabel(net)(x, t, torch.tensor([0, 1, 0, 1]))[0]
    assert torch.equal(v, net(x, t, torch.full((4,), 2))[0])
    assert not torch.allclose(v, net(x, t, torch.tensor([0, 1, 0, 1]))[0])


def test_training_plumbing(tree):
    """A few iterations: snapshots are EMA copies, runs are reproducible, ω and λ = 0 work."""
    cfg = ToyTraining(batch=128)

    def run(**kw):
        torch.manual_seed(0)
        model = ToyDenoiser(width=16)
        steps = []
        snaps = train(
            model, tree, replace(cfg, **kw), [4, 12], torch.Generator().manual_seed(0), lambda: steps.append(1)
        )
        return model, snaps, len(steps)

    model, snaps, steps = run()
    assert sorted(snaps) == [4, 12] and steps == 12
    assert not snaps[12].training and not any(p.requires_grad for p in snaps[12].parameters())
    w = lambda m: m.head[1].weight  # noqa: E731 - zero-initialised, so any change is training
    assert w(model).abs().sum() > 0 and not torch.equal(w(snaps[4]), w(snaps[12]))
    assert torch.equal(w(run()[1][12]), w(snaps[12]))
    assert not torch.equal(w(run(omega=0.5)[1][12]), w(snaps[12]))
    assert not torch.equal(w(run(lam=0.0)[1][12]), w(snaps[12]))


def test_every_method_samples_through_the_shared_guidance(tree):
    torch.manual_seed(0)
    model, weak = ToyDenoiser(width=16), ToyDenoiser(width=8, ig_layer=0)
    for p in (*model.parameters(), *weak.parameters()):
        p.data.normal_(0, 0.1)
    y = torch.tensor([0, 1, 0, 1])
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    outs = {}
    for name, g in load_guidance(None).items():
        velocity = GuidedVelocity(model, g, weak_model=weak)
        outs[name] = sample(velocity, noise, y, SamplerSettings(method="heun", steps=4, shift=8.0))
        assert velocity.nfe == 8
        assert (velocity.forward_passes > velocity.nfe) == (g.ag_scale != 1.0)  # only AG calls a second net
        assert torch.isfinite(outs[name]).all()
    assert len({tuple(o.flatten().tolist()) for o in outs.values()}) == len(outs)


def test_guidance_yaml(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("IG: {ig_scale: 4, ig_interval: [0.3, 1.0]}\n")
    g = load_guidance(str(path))
    assert g["IG"] == Guidance(ig_scale=4.0, ig_interval=(0.3, 1.0))
    assert g["CFG"] == Guidance(cfg_scale=3.0)
    rows = table_rows(QUICK, g)
    assert [r.name for r in rows].count("IG") == 2 and rows[0].model == "ground truth"
    path.write_text("PAG: {ig_scale: 2}\n")
    with pytest.raises(IGError, match="must map"):
        load_guidance(str(path))
    path.write_text("IG: {ig_scale: 2, ag_scale: 2}\n")
    with pytest.raises(IGError):
        load_guidance(str(path))


# --- the command -----------------------------------------------------------------------------


def test_cli_quick_end_to_end(tmp_path):
    out = tmp_path / "toy"
    main(["toy2d", "--out-dir", str(out), "--quick"])
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "claims.json",
        "claims.md",
        "metrics.csv",
        "metrics.json",
        "metrics.md",
        "toy2d_guidance.png",
        "toy2d_training.png",
    ]
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(table_rows(QUICK, load_guidance(None)))
    assert rows[0]["method"] == "ground truth" and float(rows[0]["outside_mean"]) < 0.1
    assert all(math.isfinite(float(r[k])) for r in rows for k in r if k.endswith(("_mean", "_std")))
    meta = json.loads((out / "metrics.json").read_text())
    assert len(meta["per_seed"]) == QUICK.seeds
    assert (out / "toy2d_guidance.png").read_bytes()[:4] == b"\x89PNG"
    assert "| IG+CFG |" in (out / "metrics.md").read_text()
    claims = json.loads((out / "claims.json").read_text())
    assert claims["seeds"] == QUICK.seeds
    assert [(r["a"], r["b"], r["metric"]) for r in claims["claims"]] == [
        (c.a, c.b, c.metric) for c in paper_claims(QUICK)
    ]
    for r in claims["claims"]:
        per_seed_delta = [m[r["a"]][r["metric"]] - m[r["b"]][r["metric"]] for m in meta["per_seed"]]
        assert r["deltas"] == pytest.approx(per_seed_delta)
        assert r["result"] == outcome("matches" if r["matches"] else "better", r["verdict"])
    assert (out / "claims.md").read_text().count("\n| ") == 2 + len(claims["claims"])


@pytest.mark.parametrize("option,value", [("--omega", "1.5"), ("--seeds", "1")])
def test_cli_reports_bad_options(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        main(["toy2d", "--out-dir", str(tmp_path), "--quick", option, value])
    assert exc.value.code == 2
    assert option in capsys.readouterr().err
