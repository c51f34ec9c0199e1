"""Samplers that integrate a (guided) velocity field from noise (t = 1) to data (t = 0).

- ``sde``: Euler–Maruyama as in the official IG SiT code and REPA: a grid
  ``linspace(1, t_last, steps)`` of ``steps - 1`` stochastic steps with diffusion ``g(t) = 2t``
  (``w_t = σ_t``), then one deterministic "mean" step from ``t_last`` (0.04) to 0:
  ``steps`` network evaluations in all.
- ``euler`` / ``heun``: the probability-flow ODE on ``steps`` intervals (Heun: 2 evaluations
  per step, as torchdiffeq's fixed-grid ``heun2`` that LightningDiT uses), optionally on
  LightningDiT's shifted time grid.

A velocity field is any callable ``(x, t: float, y) -> v``, e.g. :class:`ig.guidance.GuidedVelocity`,
so every sampler works with every guidance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ig.errors import IGError

Velocity = Callable[[torch.Tensor, float, torch.Tensor], torch.Tensor]
METHODS = ("sde", "euler", "heun")


def shifted_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """``steps + 1`` times from 1 (noise) to 0 (data) on LightningDiT's shifted grid.

    LightningDiT counts ``s`` from 0 (noise) to 1 (data) and warps it as
    ``s' = shift·s / (1 + (shift − 1)·s)``; a shift below 1 puts more steps near noise. In our
    convention that is ``t = 1 − s'``. ``shift = 1`` gives a uniform grid.
    """
    s = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    grid = 1.0 - shift * s / (1.0 + (shift - 1.0) * s)
    grid[-1] = 0.0  # exactly data, whatever the rounding
    return grid


def score_from_velocity(v: torch.Tensor, x: torch.Tensor, t: float) -> torch.Tensor:
    """Score of the linear path: ``ε̂ = x + (1 − t) v`` and ``∇ log p_t = −ε̂ / t``."""
    return -(x + (1.0 - t) * v) / t


def _sde(velocity: Velocity, x: torch.Tensor, y: torch.Tensor, steps: int, t_last: float, generator) -> torch.Tensor:
    grid = torch.linspace(1.0, t_last, steps, dtype=torch.float64).tolist() + [0.0]
    for i, (t_cur, t_next) in enumerate(zip(grid[:-1], grid[1:], strict=True)):
        dt = t_next - t_cur
        v = velocity(x.float(), t_cur, y).to(x.dtype)
        diffusion = 2.0 * t_cur
        drift = v - 0.5 * diffusion * score_from_velocity(v, x, t_cur)
        x = x + drift * dt
        if i < len(grid) - 2:  # the last step is the deterministic mean step
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + (diffusion * abs(dt)) ** 0.5 * noise
    return x


def _ode(velocity: Velocity, x: torch.Tensor, y: torch.Tensor, steps: int, shift: float, heun: bool) -> torch.Tensor:
    grid = shifted_grid(steps, shift).tolist()
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
    *,
    method: str = "sde",
    steps: int = 250,
    t_last: float = 0.04,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integrate ``velocity`` from ``noise`` at t = 1 down to t = 0; returns float32 samples.

    The state is kept in float64 (as the official SDE sampler does) and cast to float32 for the
    network. ``generator`` drives the SDE noise, so a seeded generator makes sampling reproducible.
    """
    if method not in METHODS:
        raise IGError(f"sampler method must be one of {METHODS}, got {method!r}")
    if steps < 1 or (method == "sde" and steps < 2):
        raise IGError(f"sampler steps must be >= {2 if method == 'sde' else 1}, got {steps}")
    x = noise.to(torch.float64)
    if method == "sde":
        if not 0.0 < t_last < 1.0:
            raise IGError(f"SDE t_last must lie in (0, 1), got {t_last}")
        x = _sde(velocity, x, y, steps, t_last, generator)
    else:
        if shift <= 0:
            raise IGError(f"time shift must be > 0, got {shift}")
        x = _ode(velocity, x, y, steps, shift, heun=method == "heun")
    return x.float()
