"""Integrators against exact truths (Gaussian data has a closed-form velocity field), against a
transcription of the official IG SDE sampler, and the guidance they apply on the releases' grids."""

import math

import pytest
import torch

from ig.errors import IGError
from ig.guidance import Guidance, GuidedVelocity, in_interval
from ig.sampling.integrators import sample, score_from_velocity
from ig.sampling.settings import SamplerSettings, SamplingSettings, linspace
from tests.analytic import GaussianVelocity

MU = torch.tensor([1.5, -0.5])
COV = torch.tensor([[0.30, 0.12], [0.12, 0.20]])
N = 20_000


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.double()
    return x.mean(0), torch.cov(x.T)


def _run(settings: SamplerSettings, seed: int = 0) -> tuple[torch.Tensor, GuidedVelocity]:
    torch.manual_seed(seed)
    velocity = GuidedVelocity(GaussianVelocity(MU, COV))
    noise = torch.randn(N, 2)
    return sample(velocity, noise, torch.zeros(N, dtype=torch.long), settings), velocity


# Monte-Carlo error of the mean is ~ sqrt(0.3 / 2e4) = 0.004; the tolerances add the
# discretisation error expected at each step count.
@pytest.mark.parametrize(
    "settings,tol",
    [
        (SamplerSettings(method="heun", steps=20), 0.02),
        (SamplerSettings(method="heun", steps=30, shift=0.3), 0.02),
        (SamplerSettings(method="euler", steps=200), 0.03),
        (SamplerSettings(method="sde", steps=250), 0.03),
    ],
)
def test_samplers_reproduce_gaussian_moments(settings, tol):
    x, velocity = _run(settings)
    mean, cov = _moments(x)
    assert torch.allclose(mean, MU.double(), atol=tol), mean
    assert torch.allclose(cov, COV.double(), atol=tol), cov
    assert velocity.nfe == len(settings.evaluation_times()) == (2 if settings.method == "heun" else 1) * settings.steps


def test_coarse_sampler_is_measurably_wrong():
    """The moment test has teeth: too few Euler steps miss the covariance."""
    x, _ = _run(SamplerSettings(method="euler", steps=3))
    _, cov = _moments(x)
    assert not torch.allclose(cov, COV.double(), atol=0.03)


def test_grids_match_torch_linspace_and_the_lightningdit_warp():
    for start, stop, count in ((1.0, 0.04, 250), (0.0, 1.0, 125), (1.0, 0.04, 7)):
        ours = torch.tensor(linspace(start, stop, count), dtype=torch.float64)
        # equal up to the last bit, which torch's vectorised kernel rounds by its SIMD width
        assert torch.allclose(ours, torch.linspace(start, stop, count, dtype=torch.float64), rtol=0, atol=2e-16)
    grid = SamplerSettings(method="heun", steps=4, shift=0.3).grid()
    s = torch.linspace(0, 1, 5, dtype=torch.float64)
    assert torch.allclose(torch.tensor(grid, dtype=torch.float64), 1 - 0.3 * s / (1 - 0.7 * s))
    assert grid[0] == 1 and grid[-1] == 0
    uniform = SamplerSettings(method="heun", steps=4).grid()
    assert sum(t > 0.5 for t in grid) > sum(t > 0.5 for t in uniform)  # shift < 1: more steps near noise


def test_score_from_velocity_is_the_gaussian_score():
    t = 0.37
    model = GaussianVelocity(MU, COV)
    x = torch.randn(5, 2, dtype=torch.float64)
    v = model(x, torch.full((5,), t, dtype=torch.float64), None)[0]
    c = (1 - t) ** 2 * COV.double() + t**2 * torch.eye(2, dtype=torch.float64)
    exact = -torch.linalg.solve(c, (x - (1 - t) * MU.double()).T).T
    assert torch.allclose(score_from_velocity(v, x, t), exact, atol=1e-10)


class _Model(torch.nn.Module):
    """A deterministic two-head 'network': both heads linear in x with time-dependent coefficients."""

    num_classes, ig_layer = 3, 1

    def forward(self, x, t, y):
        t = t.view(-1, *[1] * (x.dim() - 1))
        cls = y.view_as(t).to(x.dtype)
        v_final = (0.7 + 0.2 * t) * x - 0.3 * t + 0.05 * cls
        v_inter = (0.5 + 0.4 * t) * x + 0.1 - 0.02 * cls
        return v_final, v_inter


def _official_euler_maruyama_ig(model, latents, y, num_steps, cfg_scale, sg_scale, guidance_high, noises):
    """The official IG SiT sampler (CVL-UESTC/Internal-Guidance SiT/samplers.py,
    euler_maruyama_ig_sampler, linear path), transcribed step by step: inclusive intervals, IG on
    the velocity of both CFG halves, CFG on the drift, g = 2t, noise sqrt(g)·sqrt(|dt|)·ε, and a
    deterministic last step. ``noises`` replaces its torch.randn_like calls, in order."""
    y_null = torch.full_like(y, 3)
    t_steps = torch.cat(
        [torch.linspace(1.0, 0.04, num_steps, dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)]
    )
    x_next = latents.to(torch.float64)
    pairs = list(zip(t_steps[:-1], t_steps[1:], strict=True))
    for i, (t_cur, t_next) in enumerate(pairs):
        dt, x_cur = t_next - t_cur, x_next
        cfg = cfg_scale > 1.0 and 0.0 <= t_cur <= guidance_high
        model_input = torch.cat([x_cur] * 2) if cfg else x_cur
        y_cur = torch.cat([y, y_null]) if cfg else y
        time_input = torch.ones(model_input.size(0), dtype=torch.float64) * t_cur
        diffusion = 2 * t_cur
        v_cur, v_cur_s = model(model_input.float(), time_input.float(), y_cur)
        if sg_scale > 1.0 and 0.0 <= t_cur <= 1.0:
            v_cur = v_cur_s.double() + sg_scale * (v_cur.double() - v_cur_s.double())
        else:
            v_cur = v_cur.double()
        t4 = time_input.view(-1, 1)
        alpha_ratio = (1 - t4) / -1.0  # alpha_t / d_alpha_t
        score = (alpha_ratio * v_cur - model_input) / (t4**2 - alpha_ratio * 1.0 * t4)
        d_cur = v_cur - 0.5 * diffusion * score
        if cfg:
            d_cond, d_uncond = d_cur.chunk(2)
            d_cur = d_uncond + cfg_scale * (d_cond - d_uncond)
        x_next = x_cur + d_cur * dt
        if i < len(pairs) - 1:  # the last step is the mean step
            x_next = x_next + torch.sqrt(diffusion) * noises[i] * torch.sqrt(torch.abs(dt))
    return x_next


@pytest.mark.parametrize("steps", [2, 3, 8])
def test_sde_steps_equal_the_official_ig_sampler_including_the_last_mean_step(steps):
    torch.manual_seed(1)
    x1, y = torch.randn(4, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    noises = [torch.randn(4, 2, dtype=torch.float64) for _ in range(steps - 1)]
    guidance = Guidance(ig_scale=1.4, cfg_scale=1.35, cfg_interval=(-1.0, 0.7))
    ours = sample(GuidedVelocity(_Model(), guidance), x1, y, SamplerSettings(steps=steps), noises.__getitem__)
    theirs = _official_euler_maruyama_ig(_Model(), x1, y, steps, 1.35, 1.4, 0.7, noises)
    assert torch.allclose(ours.double(), theirs, atol=1e-6, rtol=1e-6)
    # the test can fail: a wrong diffusion coefficient, or noise on the last step, is seen
    wrong = _official_euler_maruyama_ig(_Model(), x1, y, steps, 1.35, 1.4, 0.7, [1.01 * n for n in noises])
    assert not torch.allclose(ours.double(), wrong, atol=1e-6)


def _guided_steps(settings: SamplerSettings, guidance: Guidance) -> list[tuple[float, bool, bool]]:
    """(t, IG applied, CFG applied) at every network evaluation of a real sampling run."""
    record = []

    class Probe(torch.nn.Module):
        num_classes, ig_layer = 10, 1

        def forward(self, x, t, y):
            half = len(x) // 2
            cfg = bool((y == 10).any()) and bool((y[:half] != 10).all())
            # the intermediate head is marked: IG then moves the output away from v_final = 0
            record.append([float(t[0]), None, cfg])
            return torch.zeros_like(x), torch.full_like(x, -1.0)

    velocity = GuidedVelocity(Probe(), guidance)

    def probed(x, t, y):
        v = velocity(x, t, y)
        record[-1][1] = bool(v.abs().sum() > 0)
        return v

    sample(probed, torch.zeros(2, 3), torch.tensor([1, 2]), settings)
    times = settings.evaluation_times()  # the float64 times, of which the network sees float32 copies
    assert [r[0] for r in record] == pytest.approx(times, abs=1e-7)
    return [(t, ig, cfg) for t, (_, ig, cfg) in zip(times, record, strict=True)]


def test_lightningdit_release_keeps_ig_at_every_evaluation_and_cfg_from_shifted_time_019():
    """The release's heun2 on 125 time points, shift 0.3: IG at every evaluation (t = 0 included), CFG
    only where its shifted time t' = 1 − t is ≥ 0.19 (forward_with_cfg), as config/paper.yaml's ldit-ig+cfg."""
    from ig.campaign import load

    paper = load("config/paper.yaml", dry_run=True)
    settings = paper.sampling("ldit-xl-ig").sampler
    steps = _guided_steps(settings, paper.guidance("ldit-ig+cfg"))
    assert len(steps) == 2 * 124 and steps[-1][0] == 0.0
    assert all(ig for _, ig, _ in steps)
    assert [cfg for _, _, cfg in steps] == [1 - t >= 0.19 for t, _, _ in steps]


def test_sit_release_applies_ig_everywhere_and_cfg_for_t_up_to_07():
    """gen.sh: SDE 250 steps, IG 1.4 with IG_GUIDANCE_LOW=0 (inclusive [0, 1]), CFG for t ≤ 0.7."""
    from ig.campaign import load

    paper = load("config/paper.yaml", dry_run=True)
    steps = _guided_steps(paper.sampling("sit-xl-ig").sampler, paper.guidance("sit-ig+cfg"))
    assert len(steps) == 250 and math.isclose(steps[-1][0], 0.04)
    assert all(ig for _, ig, _ in steps)
    assert [cfg for _, _, cfg in steps] == [0.0 <= t <= 0.7 for t, _, _ in steps]


def test_the_paper_interval_switches_ig_off_at_low_noise():
    steps = _guided_steps(SamplerSettings(steps=50), Guidance(ig_scale=2.3, ig_interval=(0.3, 1.0)))
    assert [ig for _, ig, _ in steps] == [in_interval(t, (0.3, 1.0)) for t, _, _ in steps]
    assert any(ig for _, ig, _ in steps) and not all(ig for _, ig, _ in steps)


def test_bad_sampler_settings_are_one_line_errors():
    with pytest.raises(IGError, match="method must be one of"):
        SamplerSettings(method="dpm")
    with pytest.raises(IGError, match="steps must be an integer >= 2 for sde"):
        SamplerSettings(steps=1)
    with pytest.raises(IGError, match="t_last"):
        SamplerSettings(t_last=1.5)
    with pytest.raises(IGError, match="batch_size must be a positive integer"):
        SamplingSettings(batch_size=0)
    with pytest.raises(IGError, match=r"unknown sampling key\(s\) \['stepz'\]"):
        SamplingSettings.from_dict({"stepz": 3})
