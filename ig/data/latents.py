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
``Normalization.denormalize(x)`` with the manifest's autoencoder. :class:`LatentDataset` is the
reader: shards are memory-mapped, not loaded (ImageNet latents are tens of GB, and ranks on one
node then share the page cache instead of holding a copy each).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ig.data.names import LATENT_FORMATS as FORMATS
from ig.errors import IGError
from ig.utils.io import file_digest, load_npz, read_json, write_json


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


ARRAYS = {"sit": ("mean", "std", "labels"), "lightningdit": ("latents", "latents_flip", "labels")}
VERIFIED = "verified.json"


def map_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, memory-mapped when stored uncompressed (as ``ig encode`` writes them)."""
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    arrays = {}
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IGError(
            f"latent shard {path} is unreadable or truncated ({type(exc).__name__}); rerun `ig encode`"
        ) from exc
    with archive, open(path, "rb") as f:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                return load_npz(path, what="latent shard")
            f.seek(info.header_offset + 26)  # local file header: name and extra-field lengths
            name_len, extra_len = np.frombuffer(f.read(4), dtype="<u2")
            f.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
            version = np.lib.format.read_magic(f)
            if version not in read_header:
                return load_npz(path, what="latent shard")
            shape, fortran, dtype = read_header[version](f)
            order = "F" if fortran else "C"
            arrays[info.filename[:-4]] = np.memmap(path, dtype, "r", offset=f.tell(), shape=shape, order=order)
    return arrays


class LatentDataset:
    """Random access to a latent folder, and the batches training feeds the network.

    Each shard is verified the first time a training reads it: its checksum against the manifest,
    its labels inside ``[0, num_classes)``, its latents finite. A shard that passed is recorded in
    ``verified.json`` (by size and modification time), so later segments do not read it again.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.format = self.manifest["format"]
        self.normalization = Normalization.from_dict(self.manifest["normalization"])
        self.latent_shape = tuple(self.manifest["latent_shape"])
        verified = self._verified()
        self.shards = [self._open(entry, verified) for entry in self.manifest["shards"]]
        write_json(self.folder / VERIFIED, verified)
        counts = [len(shard["labels"]) for shard in self.shards]
        self.starts = np.cumsum([0, *counts])
        self.num_images = int(self.starts[-1])

    def _verified(self) -> dict[str, Any]:
        path = self.folder / VERIFIED
        return read_json(path, what="verified shards") if path.is_file() else {}

    def _open(self, entry: dict[str, Any], verified: dict[str, Any]) -> dict[str, np.ndarray]:
        path = self.folder / entry["file"]
        stat = path.stat()
        seen = {"sha256": entry["sha256"], "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        first_use = verified.get(entry["file"]) != seen
        if first_use and file_digest(path) != entry["sha256"]:
            raise IGError(f"latent shard {path} does not match its checksum in manifest.json; rerun `ig encode`")
        arrays = map_npz(path)
        missing = [k for k in ARRAYS[self.format] if k not in arrays]
        if missing:
            raise IGError(f"latent shard {path} lacks {missing} for format {self.format!r}; rerun `ig encode`")
        n = len(arrays["labels"])
        if n != entry["count"] or any(arrays[k].shape != (n, *self.latent_shape) for k in ARRAYS[self.format][:2]):
            raise IGError(f"latent shard {path} does not match its manifest entry (count/shape); rerun `ig encode`")
        if first_use:
            self._check_values(path, arrays)
            verified[entry["file"]] = seen
        return arrays

    def _check_values(self, path: Path, arrays: dict[str, np.ndarray]) -> None:
        """Labels are classes of the dataset (one equal to ``num_classes`` would silently train as
        CFG's null class) and latents are finite (read in blocks: shards are memory-mapped)."""
        labels, classes = np.asarray(arrays["labels"]), self.manifest["num_classes"]
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            bad = labels[(labels < 0) | (labels >= classes)][0]
            raise IGError(
                f"latent shard {path} has label {bad}, outside 0..{classes - 1}; fix the dataset and rerun `ig encode`"
            )
        for key in ARRAYS[self.format][:2]:
            for start in range(0, len(arrays[key]), 4096):
                if not np.isfinite(arrays[key][start : start + 4096]).all():
                    raise IGError(f"latent shard {path} holds non-finite {key} values; rerun `ig encode` for it")

    def meta(self) -> dict[str, Any]:
        """What sampling needs to know about the latent space (stored in every checkpoint)."""
        return {
            "format": self.format,
            "normalization": self.normalization.to_dict(),
            "autoencoder": self.manifest.get("autoencoder"),
            "latent_shape": list(self.latent_shape),
            "num_classes": self.manifest["num_classes"],
        }

    def _gather(self, key: str, indices: np.ndarray) -> np.ndarray:
        shard_of = np.searchsorted(self.starts, indices, side="right") - 1
        out = np.empty((len(indices), *self.shards[0][key].shape[1:]), dtype=self.shards[0][key].dtype)
        for s in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == s)
            out[rows] = self.shards[s][key][indices[rows] - self.starts[s]]
        return out

    def batch(
        self, indices: np.ndarray, generator: torch.Generator, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latents ``x0`` and labels ``y`` of the images at ``indices``."""

        def load(key: str) -> torch.Tensor:
            return torch.from_numpy(self._gather(key, indices)).to(device, torch.float32)

        if self.format == "sit":  # a fresh posterior sample each time the image is seen
            mean, std = load("mean"), load("std")
            z = mean + std * torch.randn(mean.shape, generator=generator, device=device)
        else:  # a stored sample of the image or of its mirror image, 50/50
            flip = torch.rand(len(indices), generator=generator, device=device) < 0.5
            z = torch.where(flip.view(-1, 1, 1, 1), load("latents_flip"), load("latents"))
        labels = torch.from_numpy(self._gather("labels", indices).astype(np.int64)).to(device)
        return self.normalization.normalize(z), labels
