"""The linear flow path and the IG training losses.

Our convention (see ``ig/__init__.py``): ``x_t = (1 - t) x0 + t eps`` with ``t = 1`` noise, and
the network predicts ``v = eps - x0``. IG trains a second output head after an early block with
the same target: ``L = L_final + lam * L_inter``. The Section-6 variant moves the guidance into
training by shifting only the final head's target by ``omega * sg(v_f - v_i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ig.errors import IGError
from ig.train.config import TIME_SCHEDULES


def sample_time(
    n: int,
    schedule: str = "uniform",
    *,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training times ``t ∈ (0, 1)``: uniform (the IG releases) or logit-normal,
    ``sigmoid(N(mean, std²))`` (upstream LightningDiT: mean 0, std 1)."""
    if schedule == "uniform":
        return torch.rand(n, generator=generator, device=device)
    if schedule == "lognormal":
        return torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=device))
    raise IGError(f"time schedule must be one of {TIME_SCHEDULES}, got {schedule!r}")


def expand_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample ``(B,)`` tensor to broadcast against ``x``."""
    return t.view(-1, *([1] * (x.dim() - 1)))


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``x_t = (1 - t) x0 + t eps``."""
    t = expand_like(t, x0)
    return (1 - t) * x0 + t * noise


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over all but the batch dimension."""
    return x.flatten(1).mean(dim=1)


@dataclass
class LossTerms:
    """``total`` is what to backpropagate; the rest are detached per-term means for logging."""

    total: torch.Tensor
    final: torch.Tensor
    inter: torch.Tensor
    cosine: torch.Tensor


def ig_losses(
    model: torch.nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    *,
    lam: float = 0.5,
    omega: float = 0.0,
    cosine: bool = False,
    time_schedule: str = "uniform",
    time_mean: float = 0.0,
    time_std: float = 1.0,
    generator: torch.Generator | None = None,
) -> LossTerms:
    """One denoising loss evaluation with the intermediate head.

    - ``lam``: weight of the intermediate head's MSE (0.5 in both releases).
    - ``omega``: Section-6 objective; the final head regresses ``v + omega * sg(v_f - v_i)``
      while the intermediate head keeps the plain target.
    - ``cosine``: LightningDiT's extra ``1 - cos(v_f, target)`` over channels, final head only.
    - ``time_schedule``, ``time_mean``, ``time_std``: see :func:`sample_time`.
    """
    t = sample_time(x0.shape[0], time_schedule, mean=time_mean, std=time_std, generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    target = noise - x0
    v_final, v_inter = model(interpolate(x0, noise, t), t, y)
    if v_inter is None and (lam > 0 or omega != 0):
        raise IGError("the model has no intermediate head (ig_layer=0) but lam/omega ask for one; set ig_layer > 0")

    target_final = target if omega == 0 else target + omega * (v_final - v_inter).detach()
    final = mean_flat((v_final - target_final) ** 2).mean()
    total = final
    zero = torch.zeros((), device=x0.device)
    inter = mean_flat((v_inter - target) ** 2).mean() if v_inter is not None else zero
    if lam > 0:
        total = total + lam * inter
    cos = zero
    if cosine:
        cos = mean_flat(1 - F.cosine_similarity(v_final, target_final, dim=1)).mean()
        total = total + cos
    return LossTerms(total=total, final=final.detach(), inter=inter.detach(), cosine=cos.detach())
