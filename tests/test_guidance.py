"""Guidance formulas, intervals, the IG-per-branch-then-CFG order, and forward-pass counts."""

import pytest
import torch

from ig.errors import IGError
from ig.guidance import Guidance, GuidedVelocity, in_interval
from tests.analytic import GaussianVelocity

NULL = 10


class Affine(torch.nn.Module):
    """Heads with known outputs: final = a*x + y, intermediate = b*x - y (y = class id, null = 10)."""

    num_classes = NULL
    ig_layer = 2

    def __init__(self, a: float = 2.0, b: float = 0.5):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x, t, y):
        yy = y.to(x.dtype).view(-1, 1)
        return self.a * x + yy, self.b * x - yy


def _call(guidance, x, y, t=0.5, **kw):
    gv = GuidedVelocity(Affine(), guidance, **kw)
    return gv(x, t, y), gv


X = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
Y = torch.tensor([3, 7])


def test_plain_and_ig_scale_one_are_the_final_head():
    plain, gv_plain = _call(Guidance(), X, Y)
    same, gv_one = _call(Guidance(ig_scale=1.0, ig_interval=(0.2, 0.9)), X, Y)
    expected = 2.0 * X + Y.view(-1, 1)
    assert torch.equal(plain, expected) and torch.equal(same, expected)
    assert gv_plain.forward_passes == gv_one.forward_passes == 1


def test_ig_extrapolates_from_the_intermediate_head_without_extra_passes():
    w = 1.7
    v, gv = _call(Guidance(ig_scale=w), X, Y)
    yy = Y.view(-1, 1).float()
    v_f, v_i = 2.0 * X + yy, 0.5 * X - yy
    assert torch.allclose(v, v_i + w * (v_f - v_i))
    assert gv.forward_passes == 1 and gv.rows == 2


@pytest.mark.parametrize("t,inside", [(0.3, False), (0.30001, True), (0.7, True), (0.70001, False)])
def test_intervals_are_half_open_low_exclusive_high_inclusive(t, inside):
    assert in_interval(t, (0.3, 0.7)) is inside
    v, _ = _call(Guidance(ig_scale=3.0, ig_interval=(0.3, 0.7)), X, Y, t=t)
    plain = 2.0 * X + Y.view(-1, 1)
    assert torch.equal(v, plain) is (not inside)


def test_negative_low_includes_t_zero():
    assert in_interval(0.0, (-1.0, 0.5)) and not in_interval(0.0, (0.0, 0.5))


def test_cfg_batches_both_branches_in_one_pass_and_applies_ig_per_branch():
    w, s = 1.5, 4.0
    v, gv = _call(Guidance(ig_scale=w, cfg_scale=s), X, Y)
    assert gv.forward_passes == 1 and gv.rows == 4

    def ig(y):
        yy = torch.full((2, 1), float(y)) if isinstance(y, int) else y.view(-1, 1).float()
        f, i = 2.0 * X + yy, 0.5 * X - yy
        return i + w * (f - i)

    expected = ig(NULL) + s * (ig(Y) - ig(NULL))
    assert torch.allclose(v, expected)
    # IG on the conditional branch only would give something else: the test can tell.
    wrong = (2.0 * X + NULL) + s * (ig(Y) - (2.0 * X + NULL))
    assert not torch.allclose(v, wrong)


def test_outside_the_cfg_interval_only_the_conditional_branch_runs():
    v, gv = _call(Guidance(ig_scale=2.0, cfg_scale=4.0, cfg_interval=(0.0, 0.7)), X, Y, t=0.9)
    assert gv.rows == 2
    yy = Y.view(-1, 1).float()
    f, i = 2.0 * X + yy, 0.5 * X - yy
    assert torch.allclose(v, i + 2.0 * (f - i))


def test_autoguidance_uses_the_weak_models_final_head():
    weak = Affine(a=-1.0)
    v, gv = _call(Guidance(ag_scale=3.0), X, Y, weak_model=weak)
    yy = Y.view(-1, 1).float()
    f, f_weak = 2.0 * X + yy, -1.0 * X + yy
    assert torch.allclose(v, f_weak + 3.0 * (f - f_weak))
    assert gv.forward_passes == 2


def test_ig_on_gaussians_matches_the_closed_form():
    """With exact Gaussian heads, IG is the extrapolation of the two exact velocity fields."""
    model = GaussianVelocity([0.0, 1.0], [[1.0, 0.0], [0.0, 0.5]], weak_mu=[0.0, 0.0], weak_cov=[[2, 0], [0, 2]])
    x = torch.randn(8, 2, dtype=torch.float64)
    t = 0.6
    v = GuidedVelocity(model, Guidance(ig_scale=2.0))(x, t, torch.zeros(8, dtype=torch.long))
    tt = torch.full((8,), t, dtype=torch.float64)
    v_f = GaussianVelocity.velocity(x, tt, model.mu, model.cov)
    v_i = GaussianVelocity.velocity(x, tt, model.weak_mu, model.weak_cov)
    assert torch.allclose(v, 2 * v_f - v_i)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(IGError, match="low < high"):
        Guidance(ig_interval=(0.8, 0.2))
    with pytest.raises(IGError, match="one of ig_scale, ag_scale"):
        Guidance(ig_scale=2.0, ag_scale=2.0)
    with pytest.raises(IGError, match="weak model"):
        GuidedVelocity(Affine(), Guidance(ag_scale=2.0))
    with pytest.raises(IGError, match="unknown guidance key"):
        Guidance.from_dict({"ig_scal": 2.0})
    no_head = Affine()
    no_head.ig_layer = 0
    with pytest.raises(IGError, match="intermediate head"):
        GuidedVelocity(no_head, Guidance(ig_scale=2.0))


def test_from_dict_round_trip():
    g = Guidance(ig_scale=1.4, ig_interval=(0.3, 1.0), cfg_scale=1.35, cfg_interval=(0.0, 0.7))
    assert Guidance.from_dict(g.to_dict()) == g
