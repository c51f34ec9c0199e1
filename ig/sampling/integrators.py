"""Integrators that carry a (guided) velocity field from noise (t = 1) to data (t = 0).

- ``sde``: Euler–Maruyama as the official IG SiT code (and REPA): on the grid of
  :meth:`SamplerSettings.grid`, each stochastic step is ``x + (v − ½·g·s)·dt + sqrt(g·|dt|)·ε``
  with diffusion ``g(t) = 2t`` and the score ``s`` of the linear path; the last step, from
  ``t_last`` to 0, is the deterministic "mean" step (no noise). ``steps`` network evaluations.
- ``euler`` / ``heun``: the probability-flow ODE ``dx = v·dt`` (Heun: the trapezoidal correction,
  as torchdiffeq's ``heun2`` that LightningDiT uses, including on the last step).

A velocity field is any callable ``(x, t: float, y) -> v``, e.g. :class:`ig.guidance.GuidedVelocity`,
so every integrator works with every guidance. The state is kept in float64, as in the official
sampler, and cast to float32 for the network (which runs under bf16 autocast when the settings
ask for it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ig.sampling.settings import SamplerSettings

Velocity = Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor]
DEFAULT = SamplerSettings()
# The SDE's Gaussian noise for stochastic step k (0-based), shaped like the state.
StepNoise = Callable[[int], torch.Tensor]


def score_from_velocity(v: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
    """Score of the linear path: ``ε̂ = x + (1 − t) v`` and ``∇ log p_t = −ε̂ / t``."""
    return -(x + (1.0 - t) * v) / t


def _sde(velocity: Velocity, x: torch.Tensor, y: torch.Tensor, grid: list[float], noise: StepNoise) -> torch.Tensor:
    last = len(grid) - 2
    for k, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
        dt = t_next - t_cur
        v = velocity(x.float(), t_cur, y).to(x.dtype)
        diffusion = 2.0 * t_cur
        x = x + (v - 0.5 * diffusion * score_from_velocity(v, x, t_cur)) * dt
        if k < last:  # the last step is the deterministic mean step
            x = x + (diffusion * abs(dt)) ** 0.5 * noise(k).to(x)
    return x


def _ode(velocity: Velocity, x: torch.Tensor, y: torch.Tensor, grid: list[float], heun: bool) -> torch.Tensor:
    for t_cur, t_next in zip(grid[:-1], grid[1:], strict=True):
        dt = t_next - t_cur
        d_cur = velocity(x.float(), t_cur, y).to(x.dtype)
        x_euler = x + dt * d_cur
        if heun:
            d_next = velocity(x_euler.float(), t_next, y).to(x.dtype)
            x = x + dt * 0.5 * (d_cur + d_next)
        else:
            x = x_euler
    return x


@torch.no_grad()
def sample(
    velocity: Velocity,
    noise: torch.Tensor,
    y: torch.Tensor,
    settings: SamplerSettings = DEFAULT,
    step_noise: StepNoise | None = None,
) -> torch.Tensor:
    """Integrate ``velocity`` from ``noise`` at t = 1 down to t = 0; returns float32 samples.

    ``step_noise(k)`` gives the SDE's noise for stochastic step ``k`` (default: fresh
    ``torch.randn``); ``ig.sampling.sets`` passes per-sample streams so that sample *i*'s noise
    does not depend on its batch.
    """
    x = noise.to(torch.float64)
    grid = settings.grid()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
        if settings.method == "sde":
            x = _sde(velocity, x, y, grid, step_noise or (lambda k: torch.randn_like(x)))
        else:
            x = _ode(velocity, x, y, grid, heun=settings.method == "heun")
    return x.float()
