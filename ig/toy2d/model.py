"""A small residual MLP denoiser with an intermediate velocity head, shaped like the image models.

``model(x, t, y) -> (v_final, v_inter | None)`` in our convention (``t = 1`` noise, ``v = ε − x0``),
with ``num_classes`` (label ``num_classes`` is the CFG null class) and ``ig_layer`` (the block
after which the intermediate head reads the residual stream; 0 = no head).

Design choices:

- Fixed Fourier features of the normalised input (32 frequencies, 1 to 64): leaf branches are
  ~0.005 wide, too fine for a plain 64-wide MLP (spectral bias), which leaves far more unguided
  samples outside the outline.
- Both heads add a learned correction to the exact velocity of ``N(0, sigma_data² I)``; each head
  is a LayerNorm and a zero-initialised linear layer (DiT's final layer without adaLN). The norm
  bounds the corrections, so far from the data both heads agree and the difference IG amplifies
  stays bounded: without it, IG sampling sent a few points to |x| ~ 1e9.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ig.errors import IGError

FOURIER_FEATURES = 32
MAX_FREQUENCY = 64.0


def fourier_basis(count: int = FOURIER_FEATURES, max_frequency: float = MAX_FREQUENCY) -> torch.Tensor:
    """``(count, 2)`` wave vectors: log-spaced magnitudes 1..max, fixed pseudo-random directions."""
    angles = torch.rand(count, generator=torch.Generator().manual_seed(0)) * math.pi
    magnitudes = torch.logspace(0.0, math.log10(max_frequency), count)
    return torch.stack([angles.cos(), angles.sin()], dim=1) * magnitudes[:, None]


class ToyDenoiser(nn.Module):
    def __init__(
        self, width: int = 64, depth: int = 4, ig_layer: int = 1, num_classes: int = 2, sigma_data: float = 0.5
    ) -> None:
        super().__init__()
        if not 0 <= ig_layer < depth:
            raise IGError(f"toy ig_layer must be in [0, depth) = [0, {depth}), got {ig_layer}")
        self.num_classes = num_classes
        self.ig_layer = ig_layer
        self.sigma_data = sigma_data
        self.register_buffer("waves", fourier_basis())
        # inputs: x / std(x_t), sin and cos of the Fourier projections, logit(t) / 4, 1
        self.embed_in = nn.Linear(2 + 2 * FOURIER_FEATURES + 2, width)
        self.embed_class = nn.Embedding(num_classes + 1, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(width, width)) for _ in range(depth))
        self.head = self._head(width)
        self.inter_head = self._head(width) if ig_layer else None

    @staticmethod
    def _head(width: int) -> nn.Sequential:
        head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2))
        nn.init.zeros_(head[1].weight)
        nn.init.zeros_(head[1].bias)
        return head

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = t.view(-1, 1)
        var = (1 - t) ** 2 * self.sigma_data**2 + t**2
        gaussian_v = (t - (1 - t) * self.sigma_data**2) / var * x  # exact velocity of N(0, σ_d² I)
        x_n = x / var.sqrt()
        phase = x_n @ self.waves.T
        c_noise = torch.logit(t.clamp(1e-4, 1 - 1e-4)) / 4
        features = torch.cat([x_n, phase.sin(), phase.cos(), c_noise, torch.ones_like(t)], dim=1)
        h = self.embed_in(features) + self.embed_class(y)
        v_inter = None
        for i, block in enumerate(self.blocks, start=1):
            h = h + block(h)
            if i == self.ig_layer:
                v_inter = gaussian_v + self.inter_head(h)
        return gaussian_v + self.head(h), v_inter


class NullLabel(nn.Module):
    """``net`` asked with the null label whatever the labels: an unconditional network. As the weak
    network of autoguidance, ``v_uncond + w (v − v_uncond)``, it gives EDM2's toy CFG, whose guide
    is a separate small, short-trained unconditional net rather than the main net's null branch."""

    def __init__(self, net: ToyDenoiser) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.net(x, t, torch.full_like(y, self.net.num_classes))
