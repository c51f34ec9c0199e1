"""Samplers against an exact truth: Gaussian data has a closed-form velocity field."""

import pytest
import torch

from ig.errors import IGError
from ig.guidance import Guidance, GuidedVelocity
from ig.samplers import sample, score_from_velocity, shifted_grid
from tests.analytic import GaussianVelocity

MU = torch.tensor([1.5, -0.5])
COV = torch.tensor([[0.30, 0.12], [0.12, 0.20]])
N = 20_000


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.double()
    return x.mean(0), torch.cov(x.T)


def _run(method: str, steps: int, **kw) -> tuple[torch.Tensor, GuidedVelocity]:
    g = torch.Generator().manual_seed(0)
    velocity = GuidedVelocity(GaussianVelocity(MU, COV))
    noise = torch.randn(N, 2, generator=g)
    y = torch.zeros(N, dtype=torch.long)
    return sample(velocity, noise, y, method=method, steps=steps, generator=g, **kw), velocity


# Monte-Carlo error of the mean is ~ sqrt(0.3 / 2e4) = 0.004; the tolerances add the
# discretisation error expected at each step count.
@pytest.mark.parametrize(
    "method,steps,kw,tol",
    [
        ("heun", 20, {}, 0.02),
        ("heun", 30, {"shift": 0.3}, 0.02),
        ("euler", 200, {}, 0.03),
        ("sde", 250, {}, 0.03),
    ],
)
def test_samplers_reproduce_gaussian_moments(method, steps, kw, tol):
    x, velocity = _run(method, steps, **kw)
    mean, cov = _moments(x)
    assert torch.allclose(mean, MU.double(), atol=tol), mean
    assert torch.allclose(cov, COV.double(), atol=tol), cov
    assert velocity.nfe == (2 * steps if method == "heun" else steps)


def test_coarse_sampler_is_measurably_wrong():
    """The moment test has teeth: too few Euler steps miss the covariance."""
    x, _ = _run("euler", 3)
    _, cov = _moments(x)
    assert not torch.allclose(cov, COV.double(), atol=0.03)


def test_sde_is_reproducible_with_a_generator_and_noisy_without():
    a, _ = _run("sde", 20)
    b, _ = _run("sde", 20)
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(0)
    c = sample(
        GuidedVelocity(GaussianVelocity(MU, COV)),
        torch.randn(N, 2, generator=g),
        torch.zeros(N, dtype=torch.long),
        method="sde",
        steps=20,
        generator=torch.Generator().manual_seed(1),
    )
    assert not torch.equal(a, c)


def test_shifted_grid_matches_lightningdit_warp():
    grid = shifted_grid(4, shift=0.3)
    s = torch.linspace(0, 1, 5, dtype=torch.float64)
    expected = 1 - 0.3 * s / (1 - 0.7 * s)
    assert torch.allclose(grid, expected)
    assert grid[0] == 1 and grid[-1] == 0
    # a shift below one spends more of the grid near noise (t close to 1)
    assert (grid > 0.5).sum() > (shifted_grid(4) > 0.5).sum()


def test_score_from_velocity_is_the_gaussian_score():
    t = 0.37
    model = GaussianVelocity(MU, COV)
    x = torch.randn(5, 2, dtype=torch.float64)
    v = model(x, torch.full((5,), t, dtype=torch.float64), None)[0]
    c = (1 - t) ** 2 * COV.double() + t**2 * torch.eye(2, dtype=torch.float64)
    exact = -torch.linalg.solve(c, (x - (1 - t) * MU.double()).T).T
    assert torch.allclose(score_from_velocity(v, x, t), exact, atol=1e-10)


def test_sde_grid_and_guidance_intervals_follow_the_release():
    """250 SDE steps: 249 stochastic steps on linspace(1, 0.04, 250) then the mean step at 0.04."""
    seen = []

    def velocity(x, t, y):
        seen.append(t)
        return torch.zeros_like(x)

    sample(velocity, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), method="sde", steps=250)
    assert len(seen) == 250
    assert seen[0] == 1.0 and abs(seen[-1] - 0.04) < 1e-12
    assert all(a > b for a, b in zip(seen, seen[1:], strict=False))


def test_bad_sampler_arguments():
    v = GuidedVelocity(GaussianVelocity(MU, COV), Guidance())
    with pytest.raises(IGError, match="method"):
        sample(v, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), method="dpm")
    with pytest.raises(IGError, match="steps"):
        sample(v, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), method="sde", steps=1)
