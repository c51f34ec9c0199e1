"""IG losses on hand-computed cases, the Section-6 stop-gradient, and time sampling."""

import math

import pytest
import torch

from ig.errors import IGError
from ig.losses import ig_losses, interpolate, sample_time


class Linear2Head(torch.nn.Module):
    """final = a * x_t, intermediate = b * x_t, with learnable scalars."""

    def __init__(self, a=0.5, b=-0.25, head=True):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))
        self.b = torch.nn.Parameter(torch.tensor(b))
        self.head = head

    def forward(self, x, t, y):
        return self.a * x, (self.b * x if self.head else None)


def _draws(n, shape, seed, schedule="uniform"):
    """Replay the generator exactly as ig_losses consumes it: t first, then noise."""
    g = torch.Generator().manual_seed(seed)
    t = sample_time(n, schedule, generator=g)
    noise = torch.randn((n, *shape), generator=g)
    return t, noise


def test_interpolation_endpoints():
    x0, eps = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.equal(interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(interpolate(x0, eps, torch.ones(3)), eps)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_loss_matches_hand_computation(lam):
    x0 = torch.randn(6, 2, 3)
    model = Linear2Head()
    terms = ig_losses(model, x0, None, lam=lam, generator=torch.Generator().manual_seed(7))
    t, eps = _draws(6, (2, 3), 7)
    xt = (1 - t.view(-1, 1, 1)) * x0 + t.view(-1, 1, 1) * eps
    target = eps - x0
    final = ((0.5 * xt - target) ** 2).mean()
    inter = ((-0.25 * xt - target) ** 2).mean()
    assert torch.allclose(terms.final, final)
    assert torch.allclose(terms.inter, inter)
    assert torch.allclose(terms.total, final + lam * inter)


def test_section6_target_shifts_only_the_final_head_with_stop_gradient():
    x0 = torch.randn(5, 4)
    omega = 0.8
    model = Linear2Head()
    terms = ig_losses(model, x0, None, lam=0.5, omega=omega, generator=torch.Generator().manual_seed(3))
    t, eps = _draws(5, (4,), 3)
    xt = (1 - t.view(-1, 1)) * x0 + t.view(-1, 1) * eps
    target = eps - x0
    v_f, v_i = 0.5 * xt, -0.25 * xt
    final = ((v_f - (target + omega * (v_f - v_i))) ** 2).mean()
    inter = ((v_i - target) ** 2).mean()
    assert torch.allclose(terms.final, final) and torch.allclose(terms.inter, inter)

    terms.total.backward()
    # d total / d b comes from the intermediate term alone: sg() blocks the final term's path.
    grad_b = (0.5 * 2 * (v_i - target) * xt).mean()
    assert torch.allclose(model.b.grad, grad_b)
    # and d/da treats the shifted target as a constant
    grad_a = (2 * (v_f - (target + omega * (v_f - v_i))) * xt).mean()
    assert torch.allclose(model.a.grad, grad_a)


def test_cosine_loss_is_one_minus_channel_cosine_on_the_final_head():
    x0 = torch.randn(4, 3, 2, 2)
    model = Linear2Head()
    terms = ig_losses(model, x0, None, lam=0.0, cosine=True, generator=torch.Generator().manual_seed(1))
    t, eps = _draws(4, (3, 2, 2), 1)
    xt = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps
    v, target = 0.5 * xt, eps - x0
    cos = (v * target).sum(1) / (v.norm(dim=1) * target.norm(dim=1))
    assert torch.allclose(terms.cosine, (1 - cos).mean(), atol=1e-6)
    assert torch.allclose(terms.total, terms.final + terms.cosine)


def test_head_less_model_with_lambda_is_an_error():
    with pytest.raises(IGError, match="intermediate head"):
        ig_losses(Linear2Head(head=False), torch.randn(2, 3), None, lam=0.5)
    terms = ig_losses(Linear2Head(head=False), torch.randn(2, 3), None, lam=0.0)
    assert terms.inter == 0


def test_time_schedules():
    g = torch.Generator().manual_seed(0)
    u = sample_time(100_000, "uniform", generator=g)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    ln = sample_time(100_000, "lognormal", generator=g)
    logit = torch.log(ln / (1 - ln))
    assert abs(logit.mean()) < 0.02 and abs(logit.std() - 1) < 0.02
    assert abs((ln < 0.5).float().mean() - 0.5) < 0.01 and not math.isclose(ln.std(), u.std(), rel_tol=0.05)
    shifted = sample_time(100_000, "lognormal", mean=-1.5, std=1.5, generator=g)
    logit = torch.log(shifted / (1 - shifted))
    assert abs(logit.mean() + 1.5) < 0.02 and abs(logit.std() - 1.5) < 0.02
    with pytest.raises(IGError, match="time schedule"):
        sample_time(3, "cosine")
