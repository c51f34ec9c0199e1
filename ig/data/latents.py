"""The latent shard format that ``ig encode`` writes and training reads (a contract).

A latent folder holds ``shard-00000.npz`` … and ``manifest.json``::

    {
      "format": "sit" | "lightningdit",
      "num_images": 1281167, "num_classes": 1000, "latent_shape": [4, 32, 32],
      "autoencoder": {"kind": "sd-vae", "path": "stabilityai/sd-vae-ft-ema"},
      "normalization": {"kind": "scalar", "scale": 0.18215, "shift": 0.0}
                     | {"kind": "channelwise", "mean": [...], "std": [...]},
      "source": {...free-form: dataset, resolution, crop...},
      "shards": [{"file": "shard-00000.npz", "count": 1000, "sha256": "..."}, ...]
    }

Shard arrays (raw, un-normalised latents; ``n`` images):

- ``format == "sit"``: ``mean`` and ``std`` (n, C, H, W) float16 (the posterior; training draws
  ``mean + std·ε`` each time it sees the image), ``labels`` (n,) int64.
- ``format == "lightningdit"``: ``latents`` and ``latents_flip`` (n, C, H, W) float16 (posterior
  samples of the image and of its horizontal flip; training picks one at random), ``labels``.

Training feeds the network ``Normalization.normalize(z)``; sampling decodes
``Normalization.denormalize(x)`` with the manifest's autoencoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ig.errors import IGError
from ig.utils.io import read_json

FORMATS = ("sit", "lightningdit")


@dataclass(frozen=True)
class Normalization:
    """Maps raw autoencoder latents to the unit-scale space the diffusion model works in."""

    kind: str  # "scalar" or "channelwise"
    scale: float = 1.0
    shift: float = 0.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("scalar", "channelwise"):
            raise IGError(f"latent normalization kind must be 'scalar' or 'channelwise', got {self.kind!r}")
        if self.kind == "channelwise" and (not self.mean or len(self.mean) != len(self.std)):
            raise IGError("channelwise latent normalization needs 'mean' and 'std' lists of equal length")

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=z.dtype, device=z.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=z.dtype, device=z.device).view(1, -1, 1, 1)
        return mean, std

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "scalar":
            return (z - self.shift) * self.scale
        mean, std = self._stats(z)
        return (z - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "scalar":
            return x / self.scale + self.shift
        mean, std = self._stats(x)
        return x * std + mean

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "scalar":
            return {"kind": "scalar", "scale": self.scale, "shift": self.shift}
        return {"kind": "channelwise", "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        if d.get("kind") == "channelwise":
            return cls("channelwise", mean=tuple(d["mean"]), std=tuple(d["std"]))
        return cls("scalar", scale=float(d.get("scale", 1.0)), shift=float(d.get("shift", 0.0)))


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``manifest.json`` of a latent folder."""
    folder = Path(folder)
    manifest = read_json(folder / "manifest.json", what="latent manifest (run `ig encode` first)")
    if manifest.get("format") not in FORMATS:
        raise IGError(f"{folder}/manifest.json: format must be one of {FORMATS}, got {manifest.get('format')!r}")
    missing = [s["file"] for s in manifest["shards"] if not (folder / s["file"]).is_file()]
    if missing:
        raise IGError(f"{folder}: {len(missing)} latent shard(s) missing (first: {missing[0]}); rerun `ig encode`")
    return manifest
