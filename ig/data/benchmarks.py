"""Data-stage figures for ``python -m ig.bench``: encoding throughput (the tiny autoencoder and SD-VAE's
architecture at 256², random weights: the same cost) and the tiny autoencoder's training time and
reconstruction error on real Fashion-MNIST."""

from __future__ import annotations

import tempfile
import time
from typing import Any

import torch
from diffusers import AutoencoderKL

from ig.data.autoencoder_train import reconstruction_metrics, train_tiny_autoencoder
from ig.data.autoencoders import Autoencoder, tiny_config
from ig.data.datasets import build_dataset
from ig.data.encode import encode

SD_VAE_CONFIG = {  # stabilityai/sd-vae-ft-ema's architecture (84M parameters), random weights here
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 256,
}


class _Repeat(torch.utils.data.Dataset):
    """One image repeated (throughput does not depend on the pixels)."""

    def __init__(self, image, count: int, resolution: int) -> None:
        self.image, self.count, self.resolution = image, count, resolution
        self.num_classes, self.source = 1, {"dataset": "repeat"}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        return self.image, 0


def encode_throughput(
    dataset, config: dict[str, Any], images: int, batch_size: int, fmt: str, device: torch.device
) -> dict[str, Any]:
    """Images per second of ``encode`` (reading, encoding, writing shards) with random weights."""
    torch.manual_seed(0)
    autoencoder = Autoencoder(AutoencoderKL(**config), {"kind": "tiny", "path": "random"}).to(device)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        encode(
            dataset, autoencoder, tmp, fmt=fmt, num_images=images, num_shards=1, batch_size=batch_size,
            device=device, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    return {
        "images": images,
        "format": fmt,
        "batch_size": batch_size,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "images_per_s": images / seconds,
    }


def bench_encode_tiny(device: torch.device, quick: bool = False) -> dict[str, Any]:
    """The embedded default: Fashion-MNIST 32×32 → 4×8×8 (SiT format)."""
    return encode_throughput(build_dataset("fashion-mnist"), tiny_config(), 256 if quick else 2048, 64, "sit", device)


def bench_encode_sd_vae_256(device: torch.device, quick: bool = False) -> dict[str, Any]:
    """SD-VAE's architecture at 256×256 (the cluster path)."""
    images, batch = (2, 2) if quick else (4, 2) if device.type == "cpu" else (256, 64)
    image = build_dataset("fashion-mnist", resolution=256)[0][0]
    return encode_throughput(_Repeat(image, images, 256), SD_VAE_CONFIG, images, batch, "sit", device)


def bench_autoencoder_tiny(device: torch.device, quick: bool = False) -> dict[str, Any]:
    """Training time per step and held-out reconstruction error after 100 steps (batch 32; quick: 10);
    ``ig train-autoencoder`` defaults to 500 steps. On the CPU: it is the embedded default's."""
    steps = 10 if quick else 100
    train, held_out = build_dataset("fashion-mnist"), build_dataset("fashion-mnist", split="test")
    start = time.perf_counter()
    vae = train_tiny_autoencoder(train, steps=steps, progress=False)
    seconds = time.perf_counter() - start
    metrics = reconstruction_metrics(Autoencoder(vae, {"kind": "tiny", "path": "bench"}), held_out, train)
    return {"steps": steps, "seconds_per_step": seconds / steps, "threads": torch.get_num_threads(), **metrics}
