"""From the diffusion model's latents to images on disk: denormalise, decode, quantise, tile.

One path for every picture the pipeline makes: the ADM-format samples that are evaluated, the
grid beside each sample set, and the grid a training segment writes at its milestone.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ig.data.latents import Normalization
from ig.errors import IGError
from ig.utils.io import atomic_path

log = logging.getLogger(__name__)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] N×C×H×W floats → uint8 N×H×W×3, as the official generate.py (clamp, then truncate);
    one-channel images are repeated to RGB."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    images = torch.clamp(255.0 * (images + 1) / 2, 0, 255)
    return images.permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8).numpy()


def decode_latents(latents: torch.Tensor, latent: dict[str, Any], autoencoder: Any | None) -> np.ndarray:
    """The model's (normalised) latents → uint8 images: denormalised with the latent folder's
    normalisation (``latent``: a checkpoint's ``latent`` entry), then decoded; without an
    autoencoder the latents are the images."""
    z = Normalization.from_dict(latent["normalization"]).denormalize(latents)
    with torch.no_grad():
        return to_uint8(autoencoder.decode(z) if autoencoder is not None else z)


def latent_preview(latents: torch.Tensor, latent: dict[str, Any]) -> np.ndarray:
    """uint8 images of a training milestone's samples: decoded when the autoencoder's weights are
    here, else the raw latents themselves (first three channels as RGB, each image scaled to its
    own range), so that a preview never fails a finished segment."""
    spec = latent.get("autoencoder")
    if spec is not None:
        from ig.data.autoencoders import load_autoencoder  # imports diffusers: seconds, only needed here

        try:
            return decode_latents(latents, latent, load_autoencoder(spec, device=latents.device))
        except IGError as exc:
            log.warning("milestone grid shows latent channels: cannot load the autoencoder (%s)", exc)
    z = Normalization.from_dict(latent["normalization"]).denormalize(latents)
    rgb = z[:, :3] if z.shape[1] >= 3 else z[:, :1]
    low, high = rgb.amin(dim=(1, 2, 3), keepdim=True), rgb.amax(dim=(1, 2, 3), keepdim=True)
    return to_uint8(2 * (rgb - low) / (high - low).clamp_min(1e-8) - 1)


def save_grid(images: np.ndarray, path: str | Path, min_tile: int = 64) -> None:
    """uint8 N×H×W×3 images as one square PNG, white borders between tiles, each tile enlarged
    (nearest neighbour) to at least ``min_tile`` pixels so that tiny images stay visible."""
    from PIL import Image

    if len(images) == 0:
        raise IGError(f"no images to put in the grid {path}")
    scale = max(1, math.ceil(min_tile / images.shape[1]))
    tiles = np.pad(
        images.repeat(scale, axis=1).repeat(scale, axis=2), ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=255
    )
    side = math.ceil(math.sqrt(len(tiles)))
    blank = np.full((side * side - len(tiles), *tiles.shape[1:]), 255, dtype=np.uint8)
    tiles = np.concatenate([tiles, blank])
    h, w = tiles.shape[1:3]
    canvas = tiles.reshape(side, side, h, w, 3).transpose(0, 2, 1, 3, 4).reshape(side * h, side * w, 3)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")
