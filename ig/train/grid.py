"""A small grid of EMA samples per milestone: a glance at whether training is on track."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ig.data.latents import Normalization
from ig.errors import IGError
from ig.guidance import GuidedVelocity
from ig.samplers import sample
from ig.utils.io import atomic_path
from ig.utils.seeding import generator

log = logging.getLogger(__name__)


@torch.no_grad()
def save_grid(model: torch.nn.Module, latent: dict[str, Any], path: Path, *, seed: int, n: int = 16) -> None:
    """Sample ``n`` images (classes spread over the label range, fixed noise, 32 Heun steps,
    unguided) and save them as one PNG, decoded by the latent folder's autoencoder."""
    device = next(model.parameters()).device
    g = generator(seed, "grid", device=device)
    num_classes = latent["num_classes"]
    y = torch.arange(n, device=device) * num_classes // n
    noise = torch.randn((n, *latent["latent_shape"]), generator=g, device=device)
    x = sample(GuidedVelocity(model), noise, y, method="heun", steps=32, generator=g)
    images = to_images(Normalization.from_dict(latent["normalization"]).denormalize(x), latent.get("autoencoder"))
    rows = math.ceil(math.sqrt(n))
    tiles = torch.nn.functional.pad(images.float().cpu(), (1, 1, 1, 1), value=1.0)  # white borders
    tiles = torch.cat([tiles, torch.ones((rows * rows - n, *tiles.shape[1:]))])
    _, c, h, w = tiles.shape
    grid = tiles.view(rows, rows, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, rows * w, c)
    with atomic_path(path) as tmp:
        Image.fromarray((grid * 255).round().to(torch.uint8).numpy()).save(tmp, format="PNG")


def to_images(z: torch.Tensor, autoencoder: dict[str, str] | None) -> torch.Tensor:
    """Raw latents to images in [0, 1]: decoded when the autoencoder's weights are here, else
    the latents themselves (first three channels as RGB, each image scaled to its own range,
    enlarged to at least 64 pixels), so a grid never fails a finished segment."""
    if autoencoder is not None:
        from ig.data.autoencoders import load_autoencoder  # imports diffusers: seconds, only needed here

        try:
            decoded = load_autoencoder(autoencoder, device=z.device).decode(z)
            return ((decoded + 1) / 2).clamp(0, 1)
        except IGError as exc:
            log.warning("sample grid shows latent channels: cannot load the autoencoder (%s)", exc)
    rgb = z[:, :3] if z.shape[1] >= 3 else z[:, :1].expand(-1, 3, -1, -1)
    low = rgb.amin(dim=(1, 2, 3), keepdim=True)
    high = rgb.amax(dim=(1, 2, 3), keepdim=True)
    rgb = (rgb - low) / (high - low).clamp_min(1e-8)
    return torch.nn.functional.interpolate(rgb, scale_factor=max(1, math.ceil(64 / rgb.shape[-1])), mode="nearest")
