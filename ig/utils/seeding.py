"""Seeds derived from names, so that results do not depend on how work is split."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on ``parts`` (e.g. run, milestone, guidance, shard)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator seeded by :func:`derive_seed`."""
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))
