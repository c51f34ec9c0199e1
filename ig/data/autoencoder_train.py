"""``ig train-autoencoder``: the embedded default's tiny AutoencoderKL, trained in minutes on CPU.

Why train one: no pretrained autoencoder can be fetched offline, and the pipeline should still
run the real latent-diffusion path (encode → train on latents → sample → decode) on a laptop.
The model is a real ``diffusers.AutoencoderKL`` (:func:`ig.data.autoencoders.tiny_config`,
32×32×3 → 8×8×4). Loss: mean squared reconstruction error of a posterior sample plus a small
KL term (per latent element, weight ``--kl-weight``) that keeps the posterior a Gaussian with
non-trivial noise, as in SD-VAE. AdamW at a constant learning rate, batches drawn by a seeded
generator, so a run is reproducible on CPU.

The output folder (``save_pretrained`` layout plus ``metrics.json``) appears atomically. The
metrics compare the reconstruction error (MSE in [-1, 1] units, and PSNR) on held-out images
with a trivial baseline: predicting the mean training image.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ig.errors import IGError
from ig.utils.io import write_json

# torch, diffusers and the modules that import them are imported where used: `ig train-autoencoder
# --help` needs none of them
if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL
    from torch.utils.data import Dataset

    from ig.data.autoencoders import Autoencoder

log = logging.getLogger(__name__)


def _batch(dataset: Dataset, indices) -> torch.Tensor:
    from ig.data.autoencoders import images_to_tensor

    return images_to_tensor(np.stack([dataset[int(i)][0] for i in indices]))


def train_tiny_autoencoder(
    dataset: Dataset,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    kl_weight: float = 1e-3,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> AutoencoderKL:
    """Train a fresh ``AutoencoderKL`` of ``config`` (default: :func:`tiny_config`) on ``dataset``."""
    import torch
    from diffusers import AutoencoderKL
    from tqdm import tqdm

    from ig.data.autoencoders import tiny_config
    from ig.utils.seeding import generator

    torch.manual_seed(seed)  # initial weights
    vae = AutoencoderKL(**(config or tiny_config())).to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    gen = generator("train-autoencoder", seed)
    with tqdm(range(steps), desc="train-autoencoder", unit="step", disable=not progress) as bar:
        for _ in bar:
            x = _batch(dataset, torch.randint(0, len(dataset), (batch_size,), generator=gen)).to(device)
            posterior = vae.encode(x).latent_dist
            noise = torch.randn(posterior.mean.shape, generator=gen).to(device)
            reconstruction = vae.decode(posterior.mean + posterior.std * noise).sample
            mse = torch.mean((reconstruction - x) ** 2)
            kl = posterior.kl().mean() / posterior.mean[0].numel()
            loss = mse + kl_weight * kl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.set_postfix(mse=f"{mse.item():.4f}", kl=f"{kl.item():.2f}")
    return vae.eval()


def reconstruction_metrics(
    autoencoder: Autoencoder, held_out: Dataset, train: Dataset, images: int = 1000, batch_size: int = 250
) -> dict[str, float]:
    """Reconstruction error of the posterior mean on the first ``images`` held-out images, and
    the error of the trivial baseline (the mean of as many training images)."""
    import torch

    with torch.no_grad():
        x = _batch(held_out, range(min(images, len(held_out))))
        device = next(autoencoder.parameters()).device
        reconstruction = torch.cat(
            [autoencoder.decode(autoencoder.encode(b.to(device))[0]).clamp(-1, 1).cpu() for b in x.split(batch_size)]
        )
        mean_image = _batch(train, range(min(images, len(train)))).mean(0)
        mse = torch.mean((reconstruction - x) ** 2).item()
        baseline_mse = torch.mean((x - mean_image) ** 2).item()
    return {
        "images": len(x),
        "mse": mse,
        "psnr_db": 10 * math.log10(4.0 / mse),  # peak-to-peak 2 in [-1, 1] units
        "baseline_mse": baseline_mse,
        "baseline_psnr_db": 10 * math.log10(4.0 / baseline_mse),
    }


def save_autoencoder(vae: AutoencoderKL, out: Path, metrics: dict[str, Any]) -> None:
    """Write the ``save_pretrained`` folder plus ``metrics.json``, replacing ``out`` atomically."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        vae.save_pretrained(tmp, safe_serialization=True)
        write_json(tmp / "metrics.json", metrics)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (diffusers save_pretrained layout + metrics.json)")
    p.add_argument("--dataset", default="fashion-mnist", choices=("fashion-mnist",))
    p.add_argument("--data-root", help="folder with the Fashion-MNIST IDX files (default: Debian's, else download)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--kl-weight", type=float, default=1e-3, help="weight of the KL term per latent element")
    p.add_argument("--latent-channels", type=int, default=4)
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 32], help="channels per level (3 levels: /4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-images", type=int, default=1000, help="held-out images for the reported error")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the job's GPU if it was given one, else cpu)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> None:
    from ig.data.autoencoders import Autoencoder, tiny_config
    from ig.data.datasets import build_dataset
    from ig.distributed import select_device

    if args.steps < 1 or args.batch_size < 1:
        raise IGError("--steps and --batch-size must be positive")
    if len(args.channels) != 3 or any(c % 8 for c in args.channels):
        raise IGError(f"--channels needs 3 multiples of 8 (8 groups per GroupNorm), got {args.channels}")
    train = build_dataset(args.dataset, args.data_root, 32, "train")
    held_out = build_dataset(args.dataset, args.data_root, 32, "test")
    config = tiny_config(args.latent_channels, tuple(args.channels))
    start = time.perf_counter()
    vae = train_tiny_autoencoder(
        train,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_weight=args.kl_weight,
        config=config,
        seed=args.seed,
        device=select_device(args.device),
        progress=not args.no_progress,
    )
    seconds = time.perf_counter() - start
    autoencoder = Autoencoder(vae, {"kind": "tiny", "path": args.out})
    metrics = reconstruction_metrics(autoencoder, held_out, train, args.eval_images)
    metrics |= {"train_seconds": seconds, "steps": args.steps, "batch_size": args.batch_size, "seed": args.seed}
    save_autoencoder(vae, Path(args.out), metrics)
    log.info(
        "trained in %.0f s; held-out MSE %.4f (PSNR %.1f dB) vs mean-image baseline %.4f (%.1f dB); wrote %s",
        seconds,
        metrics["mse"],
        metrics["psnr_db"],
        metrics["baseline_mse"],
        metrics["baseline_psnr_db"],
        args.out,
    )
