"""The order training sees the latents in (read by ``ig.data.latents.LatentDataset``), and its randomness.

Order. Epoch ``e`` visits the images in a permutation drawn from ``(seed, e)``; step ``s`` of the
epoch takes the ``s``-th block of ``global_batch`` images of it (the last partial block is
dropped). Each rank takes its contiguous share of that block, in ``accum_steps`` micro-batches, so
every world size trains on the same global batches and the position in the data is just the step.

Randomness. Each micro-batch draws everything random (posterior noise or flip choice, training
times, noise, label dropout) from a seed of ``(seed, step, offset of the micro-batch in the global
batch)``. Resuming needs no RNG state, and runs with the same micro-batch size draw the same
numbers on any number of devices (results then differ only by reduction order).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from ig.errors import IGError
from ig.utils.seeding import derive_seed


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
