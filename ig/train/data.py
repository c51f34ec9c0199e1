"""Training data: latent shards (format in ``ig/data/latents.py``) and the order they are seen in.

Order. Epoch ``e`` visits the images in a permutation drawn from ``(seed, e)``; step ``s`` of the
epoch takes the ``s``-th block of ``global_batch`` images of it (the last partial block is
dropped). Each rank takes its contiguous share of that block, in ``accum_steps`` micro-batches, so
every world size trains on the same global batches and the position in the data is just the step.

Randomness. Each micro-batch draws everything random (posterior noise or flip choice, training
times, noise, label dropout) from a seed of ``(seed, step, offset of the micro-batch in the global
batch)``. Resuming needs no RNG state, and runs with the same micro-batch size draw the same
numbers on any number of devices (results then differ only by reduction order).

Storage. Shards are memory-mapped, not loaded: ImageNet latents are tens of GB, and ranks on one
node then share the page cache instead of holding a copy each.
"""

from __future__ import annotations

import functools
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ig.data.latents import Normalization, read_manifest
from ig.errors import IGError
from ig.utils.io import load_npz
from ig.utils.seeding import derive_seed

ARRAYS = {"sit": ("mean", "std", "labels"), "lightningdit": ("latents", "latents_flip", "labels")}


def map_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, memory-mapped when stored uncompressed (as ``ig encode`` writes them)."""
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    arrays = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
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
    """Random access to a latent folder, and the batches training feeds the network."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.format = self.manifest["format"]
        self.normalization = Normalization.from_dict(self.manifest["normalization"])
        self.latent_shape = tuple(self.manifest["latent_shape"])
        self.shards = [self._open(entry) for entry in self.manifest["shards"]]
        counts = [len(shard["labels"]) for shard in self.shards]
        self.starts = np.cumsum([0, *counts])
        self.num_images = int(self.starts[-1])

    def _open(self, entry: dict[str, Any]) -> dict[str, np.ndarray]:
        path = self.folder / entry["file"]
        arrays = map_npz(path)
        missing = [k for k in ARRAYS[self.format] if k not in arrays]
        if missing:
            raise IGError(f"latent shard {path} lacks {missing} for format {self.format!r}; rerun `ig encode`")
        n = len(arrays["labels"])
        if n != entry["count"] or any(arrays[k].shape != (n, *self.latent_shape) for k in ARRAYS[self.format][:2]):
            raise IGError(f"latent shard {path} does not match its manifest entry (count/shape); rerun `ig encode`")
        return arrays

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


@dataclass(frozen=True)
class BatchPlan:
    """How a global batch is split over ranks and gradient-accumulation micro-batches."""

    global_batch: int
    world_size: int
    rank: int
    accum_steps: int
    micro_batch: int

    @classmethod
    def build(cls, global_batch: int, world_size: int, rank: int, max_device_batch: int | None) -> BatchPlan:
        """Per-rank batch ``global_batch / world_size``, in the fewest equal micro-batches of at
        most ``max_device_batch``."""
        if global_batch % world_size:
            raise IGError(f"global_batch {global_batch} is not divisible by the {world_size} processes")
        per_rank = global_batch // world_size
        accum = math.ceil(per_rank / (max_device_batch or per_rank))
        while per_rank % accum:
            accum += 1
        return cls(global_batch, world_size, rank, accum, per_rank // accum)

    def steps_per_epoch(self, num_images: int) -> int:
        if num_images < self.global_batch:
            raise IGError(f"the latent folder has {num_images} images, fewer than global_batch {self.global_batch}")
        return num_images // self.global_batch

    def micro_batches(self, seed: int, step: int, num_images: int) -> list[tuple[int, np.ndarray]]:
        """This rank's micro-batches of global step ``step``: ``(offset in the global batch, indices)``."""
        spe = self.steps_per_epoch(num_images)
        order = epoch_permutation(seed, step // spe, num_images)
        start = (step % spe) * self.global_batch
        per_rank = self.micro_batch * self.accum_steps
        offsets = [self.rank * per_rank + k * self.micro_batch for k in range(self.accum_steps)]
        return [(off, order[start + off : start + off + self.micro_batch]) for off in offsets]


@functools.lru_cache(maxsize=1)  # every step of an epoch asks for the same permutation
def epoch_permutation(seed: int, epoch: int, num_images: int) -> np.ndarray:
    """The image order of one epoch; read-only, shared between calls."""
    g = torch.Generator().manual_seed(derive_seed(seed, "data-order", epoch))
    order = torch.randperm(num_images, generator=g).numpy()
    order.flags.writeable = False
    return order


def micro_batch_seed(seed: int, step: int, offset: int) -> int:
    """The seed of everything random in one micro-batch (see the module docstring)."""
    return derive_seed(seed, "micro-batch", step, offset)
