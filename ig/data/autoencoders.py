"""Autoencoders behind one small interface: images in [-1, 1] ⇄ latent posteriors.

Every autoencoder here is a ``diffusers.AutoencoderKL``; what differs is where its weights
come from, named by a spec dict ``{"kind": ..., "path": ...}`` that manifests and checkpoints
store and :func:`load_autoencoder` rebuilds the model from:

- ``tiny``: the embedded default's 32×32×3 → 8×8×4 model trained by ``ig train-autoencoder``;
  ``path`` is the folder it wrote (``save_pretrained`` layout).
- ``sd-vae``: SD-VAE (``stabilityai/sd-vae-ft-ema``) for SiT; ``path`` is a diffusers folder,
  or a hub id or asset name, which resolves inside the assets folder (``ig fetch-assets``), never
  online.
- ``va-vae``: VA-VAE f16d32 for LightningDiT; ``path`` is its released LDM-format checkpoint
  (or a folder, hub id or asset name holding it), converted on load by :func:`ldm_to_diffusers`.

A rehearsal stand-in (random weights, ``ig.rehearsal``) loads only in a rehearsal (``ig.assets``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL

from ig.assets import REGISTRY, asset_for_hub_id, default_assets_dir, refuse_stand_in, require
from ig.data.latents import Normalization
from ig.data.names import AUTOENCODER_KINDS as KINDS
from ig.errors import IGError
from ig.utils.io import load_torch

VAVAE_WEIGHTS = "vavae-imagenet256-f16d32-dinov2.pt"
VAVAE_STATS = "latents_stats.pt"


class Autoencoder(torch.nn.Module):
    """A frozen ``AutoencoderKL`` plus the spec that rebuilds it."""

    def __init__(self, vae: AutoencoderKL, spec: dict[str, str]) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        self.spec = dict(spec)
        self.latent_channels = int(vae.config.latent_channels)
        self.downsample = 2 ** (len(vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] → posterior mean and std, each (B, C, H/f, W/f)."""
        posterior = self.vae.encode(images).latent_dist
        return posterior.mean, posterior.std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw (un-normalised) latents → images in [-1, 1] (not clamped)."""
        return self.vae.decode(latents).sample


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 images (B, H, W, 3) → float (B, 3, H, W) in [-1, 1], the autoencoders' input."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def tiny_config(latent_channels: int = 4, block_out_channels: tuple[int, ...] = (16, 32, 32)) -> dict[str, Any]:
    """The embedded default's AutoencoderKL: three levels, so 32×32×3 → 8×8×latent_channels.

    Narrow (242K parameters) so that it trains in minutes on a CPU; 8 groups per GroupNorm."""
    levels = len(block_out_channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": list(block_out_channels),
        "layers_per_block": 1,
        "latent_channels": latent_channels,
        "norm_num_groups": 8,
        "sample_size": 32,
    }


def load_autoencoder(
    spec: dict[str, str], assets_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu"
) -> Autoencoder:
    """Rebuild the autoencoder a spec names, from local files only."""
    kind, path = spec.get("kind"), spec.get("path")
    if kind not in KINDS or not path:
        raise IGError(f"autoencoder spec needs kind in {KINDS} and a path, got {spec!r}")
    location = _resolve(path, assets_dir if assets_dir is not None else default_assets_dir())
    if kind == "va-vae":
        weights = location / VAVAE_WEIGHTS if location.is_dir() else location
        vae = vae_from_ldm(load_torch(weights, what="VA-VAE checkpoint"), source=weights)
    else:
        vae = _from_pretrained(location)
    return Autoencoder(vae, {"kind": kind, "path": path}).to(device)


def portable_spec(kind: str, path: str) -> dict[str, str]:
    """The spec that manifests and checkpoints record: a local path made absolute (so that any
    working directory can rebuild the autoencoder), a hub id kept as it is."""
    return {"kind": kind, "path": str(Path(path).resolve()) if Path(path).exists() else path}


def _resolve(path: str, assets_dir: str | os.PathLike) -> Path:
    """A local path as is; an asset name or hub id of the asset registry inside the assets folder."""
    if Path(path).exists():
        refuse_stand_in(path)
        return Path(path)
    asset = REGISTRY.get(path) or asset_for_hub_id(path)
    if asset is None:
        raise IGError(
            f"autoencoder {path} not found: give a local path, or an asset name or hub id of `ig fetch-assets --list`"
        )
    return require(asset.name, assets_dir)


def _from_pretrained(folder: Path) -> AutoencoderKL:
    try:
        # plain loading: without `accelerate` installed, the default would print advice to install it
        return AutoencoderKL.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, ValueError) as exc:
        raise IGError(f"{folder} is not a diffusers AutoencoderKL folder ({str(exc).splitlines()[0]})") from exc


def released_vavae_normalization(assets_dir: str | os.PathLike | None = None) -> Normalization:
    """Channel-wise statistics released with VA-VAE (what the released LightningDiT+IG expects)."""
    folder = require("va-vae", assets_dir if assets_dir is not None else default_assets_dir())
    stats = load_torch(folder / VAVAE_STATS, what="VA-VAE latent statistics")
    return Normalization(
        "channelwise", mean=tuple(stats["mean"].flatten().tolist()), std=tuple(stats["std"].flatten().tolist())
    )


# --------------------------------------------------------------------------- LDM → diffusers

LDM_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


def ldm_to_diffusers(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Convert an LDM (``ldm.models.autoencoder.AutoencoderKL``) state dict to diffusers.

    The architecture is read off the keys: levels, channels, residual blocks per level and
    which levels have attention (VA-VAE has it at its 16×16 level, SD-VAE nowhere). Keys of
    other parts (the training loss, VA-VAE's foundation-model projection) are dropped.
    """
    sd = {k: v for k, v in state_dict.items() if k.startswith(LDM_PARTS)}
    try:
        levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.down."))
        layers = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith("encoder.down.0.block."))
        channels = [int(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0]) for i in range(levels)]
        config = {
            "in_channels": int(sd["encoder.conv_in.weight"].shape[1]),
            "out_channels": int(sd["decoder.conv_out.weight"].shape[0]),
            "down_block_types": [
                "AttnDownEncoderBlock2D" if f"encoder.down.{i}.attn.0.q.weight" in sd else "DownEncoderBlock2D"
                for i in range(levels)
            ],
            "up_block_types": [
                "AttnUpDecoderBlock2D" if f"decoder.up.{i}.attn.0.q.weight" in sd else "UpDecoderBlock2D"
                for i in reversed(range(levels))
            ],
            "block_out_channels": channels,
            "layers_per_block": layers,
            "latent_channels": int(sd["post_quant_conv.weight"].shape[0]),
            "norm_num_groups": 32,
            "scaling_factor": 1.0,
        }
    except (KeyError, ValueError, IndexError) as exc:
        raise IGError(f"not an LDM AutoencoderKL state dict (missing {exc})") from exc
    if sd["encoder.conv_in.weight"].shape[0] != channels[0]:
        raise IGError("LDM autoencoders whose ch_mult does not start with 1 have no diffusers equivalent")
    converted = {}
    for key, value in sd.items():
        new = _rename(key, levels)
        if re.search(r"attentions\.\d+\.to_(q|k|v|out\.0)\.weight$", new):
            value = value[:, :, 0, 0]  # 1×1 conv → linear
        converted[new] = value
    return config, converted


def _rename(key: str, levels: int) -> str:
    """One LDM key → its diffusers name (decoder levels are stored in reverse order there)."""
    key = re.sub(r"^encoder\.down\.(\d+)\.block\.", r"encoder.down_blocks.\1.resnets.", key)
    key = re.sub(r"^encoder\.down\.(\d+)\.attn\.", r"encoder.down_blocks.\1.attentions.", key)
    key = re.sub(r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0.", key)
    key = re.sub(
        r"^decoder\.up\.(\d+)\.(block|attn|upsample)\.",
        lambda m: (
            f"decoder.up_blocks.{levels - 1 - int(m[1])}."
            + {"block": "resnets.", "attn": "attentions.", "upsample": "upsamplers.0."}[m[2]]
        ),
        key,
    )
    key = re.sub(r"\.mid\.block_(\d)\.", lambda m: f".mid_block.resnets.{int(m[1]) - 1}.", key)
    key = key.replace(".mid.attn_1.", ".mid_block.attentions.0.")
    key = key.replace(".norm_out.", ".conv_norm_out.").replace(".nin_shortcut.", ".conv_shortcut.")
    if ".attentions." in key:
        key = re.sub(r"\.norm\.", ".group_norm.", key)
        key = re.sub(r"\.(q|k|v)\.", lambda m: f".to_{m[1]}.", key)
        key = key.replace(".proj_out.", ".to_out.0.")
    return key


def vae_from_ldm(checkpoint: dict[str, Any], source: str | os.PathLike = "checkpoint") -> AutoencoderKL:
    """A diffusers ``AutoencoderKL`` with the weights of an LDM-format checkpoint."""
    state_dict = checkpoint.get("state_dict", checkpoint)
    config, converted = ldm_to_diffusers(state_dict)
    vae = AutoencoderKL(**config)
    missing, unexpected = vae.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise IGError(
            f"{source}: LDM autoencoder does not convert cleanly ({len(missing)} missing, e.g. "
            f"{missing[:1]}; {len(unexpected)} unexpected, e.g. {unexpected[:1]})"
        )
    return vae
