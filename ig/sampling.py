"""``ig sample``: a checkpoint and a guidance setting → ADM-format ``.npz`` sample shards.

Samples ``[k·S, (k+1)·S)`` form shard ``k``; each shard is written atomically as
``shard-{k:05d}.npz`` (``arr_0``: uint8 N×H×W×3, ``labels``) and is fully determined by
``(seed key, k)``: its initial noise, labels and SDE noise come from a generator seeded by that
pair. So a rerun redoes only missing shards, and 1 or 64 processes (torchrun: rank ``r`` takes
the shards with ``k % world == r``) produce identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ig.errors import IGError
from ig.guidance import Guidance, GuidedVelocity
from ig.samplers import METHODS, sample
from ig.utils.io import load_npz, save_npz, write_json
from ig.utils.seeding import generator

log = logging.getLogger(__name__)
LABEL_MODES = ("random", "balanced")


def shard_path(out_dir: str | Path, shard: int) -> Path:
    return Path(out_dir) / f"shard-{shard:05d}.npz"


def shard_labels(
    shard: int, shard_size: int, num_samples: int, num_classes: int, mode: str, seed_key: str, gen: torch.Generator
) -> torch.Tensor:
    """Class labels of one shard: i.i.d. uniform (``random``, as the releases) or an exactly
    balanced, globally shuffled assignment (``balanced``: N/K per class when K divides N)."""
    start, stop = shard * shard_size, min((shard + 1) * shard_size, num_samples)
    if mode == "random":
        return torch.randint(0, num_classes, (stop - start,), generator=gen)
    perm = torch.randperm(num_samples, generator=generator(seed_key, "balanced-labels"))
    return perm[start:stop] % num_classes


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW floats → uint8 NHWC, as the official generate.py (clamp, then truncate)."""
    images = torch.clamp(255.0 * (images + 1) / 2, 0, 255)
    return images.permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8).numpy()


def latents_to_images(latents: torch.Tensor, meta: dict, autoencoder) -> np.ndarray:
    """Denormalise latents and decode them; without an autoencoder the latents are images."""
    from ig.data.latents import Normalization

    z = Normalization.from_dict(meta["latent"]["normalization"]).denormalize(latents)
    images = autoencoder.decode(z) if autoencoder is not None else z
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return to_uint8(images)


def sample_shard(
    model: torch.nn.Module,
    meta: dict,
    guidance: Guidance,
    shard: int,
    *,
    num_samples: int,
    shard_size: int,
    seed_key: str,
    labels: str = "random",
    method: str = "sde",
    steps: int = 250,
    t_last: float = 0.04,
    shift: float = 1.0,
    batch_size: int = 64,
    weak_model: torch.nn.Module | None = None,
    autoencoder=None,
    device: torch.device | str = "cpu",
    progress: tqdm | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sample one shard; returns (uint8 images, labels, network evaluations per sample)."""
    gen = generator(seed_key, shard, device="cpu")
    count = min(shard_size, num_samples - shard * shard_size)
    shape = (count, model.in_channels, model.input_size, model.input_size)
    noise = torch.randn(shape, generator=gen)
    ys = shard_labels(shard, shard_size, num_samples, model.num_classes, labels, seed_key, gen)
    velocity = GuidedVelocity(model, guidance, weak_model)
    images = []
    for lo in range(0, count, batch_size):
        x = sample(
            velocity,
            noise[lo : lo + batch_size].to(device),
            ys[lo : lo + batch_size].to(device),
            method=method,
            steps=steps,
            t_last=t_last,
            shift=shift,
            generator=gen if str(device) == "cpu" else _device_generator(gen, device),
        )
        with torch.no_grad():
            images.append(latents_to_images(x, meta, autoencoder))
        if progress is not None:
            progress.update(x.shape[0])
    nfe_per_sample = velocity.nfe // max(1, math.ceil(count / batch_size))
    return np.concatenate(images), ys.numpy().astype(np.int64), nfe_per_sample


def _device_generator(cpu_gen: torch.Generator, device) -> torch.Generator:
    """A device generator seeded from the shard's CPU stream (SDE noise drawn on the device)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=cpu_gen))
    return torch.Generator(device=device).manual_seed(seed)


def _dist_info() -> tuple[int, int, int]:
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", 0)))
    world = int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", 1)))
    local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
    return rank, world, local


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="training checkpoint (EMA weights are sampled)")
    p.add_argument("--out-dir", required=True, help="folder for shard-XXXXX.npz files")
    p.add_argument("--num-samples", type=int, required=True)
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--shard", type=int, nargs="*", help="shard indices to produce (default: all missing)")
    p.add_argument("--seed-key", required=True, help="names the sample set, e.g. RUN/MILESTONE/GUIDANCE")
    p.add_argument("--labels", choices=LABEL_MODES, default="random")
    p.add_argument("--method", choices=METHODS, default="sde")
    p.add_argument("--steps", type=int, default=250)
    p.add_argument("--t-last", type=float, default=0.04, help="SDE: time of the final deterministic step")
    p.add_argument("--shift", type=float, default=1.0, help="ODE: LightningDiT time shift (0.3 in its release)")
    p.add_argument("--ig-scale", type=float, default=1.0)
    p.add_argument("--ig-interval", type=float, nargs=2, default=(0.0, 1.0), metavar=("LOW", "HIGH"))
    p.add_argument("--cfg-scale", type=float, default=1.0)
    p.add_argument("--cfg-interval", type=float, nargs=2, default=(0.0, 1.0), metavar=("LOW", "HIGH"))
    p.add_argument("--ag-scale", type=float, default=1.0)
    p.add_argument("--ag-interval", type=float, nargs=2, default=(0.0, 1.0), metavar=("LOW", "HIGH"))
    p.add_argument("--ag-checkpoint", help="weak model checkpoint for autoguidance")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--assets-dir", default=os.environ.get("IG_ASSETS", "assets"))
    p.add_argument("--manifest", help="write this JSON (shards, counts, settings) once every shard exists")
    p.add_argument("--grid", help="also write a PNG grid of the first samples here")
    p.add_argument("--grid-size", type=int, default=64)


def run(args: argparse.Namespace) -> None:
    from ig.data.autoencoders import load_autoencoder
    from ig.train.checkpoint import load_for_sampling

    if args.num_samples < 1 or args.shard_size < 1:
        raise IGError("--num-samples and --shard-size must be positive")
    num_shards = math.ceil(args.num_samples / args.shard_size)
    rank, world, local = _dist_info()
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)

    guidance = Guidance(
        ig_scale=args.ig_scale,
        ig_interval=tuple(args.ig_interval),
        cfg_scale=args.cfg_scale,
        cfg_interval=tuple(args.cfg_interval),
        ag_scale=args.ag_scale,
        ag_interval=tuple(args.ag_interval),
    )
    wanted = args.shard if args.shard else range(num_shards)
    bad = [k for k in wanted if not 0 <= k < num_shards]
    if bad:
        raise IGError(f"shard index {bad[0]} out of range: {num_shards} shards of {args.shard_size}")
    todo = [k for k in wanted if k % world == rank and not shard_path(args.out_dir, k).exists()]

    if todo:
        model, meta = load_for_sampling(args.checkpoint)
        model = model.to(device)
        weak = load_for_sampling(args.ag_checkpoint)[0].to(device) if args.ag_checkpoint else None
        ae_spec = meta["latent"].get("autoencoder")
        autoencoder = load_autoencoder(ae_spec, args.assets_dir, device=device) if ae_spec else None
        total = sum(min(args.shard_size, args.num_samples - k * args.shard_size) for k in todo)
        log.info("sampling %d shard(s), %d images, guidance %s", len(todo), total, guidance.to_dict())
        start = time.perf_counter()
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
        with tqdm(total=total, unit="img", desc="sample", disable=rank != 0) as bar, autocast:
            for k in todo:
                images, labels, nfe = sample_shard(
                    model,
                    meta,
                    guidance,
                    k,
                    num_samples=args.num_samples,
                    shard_size=args.shard_size,
                    seed_key=args.seed_key,
                    labels=args.labels,
                    method=args.method,
                    steps=args.steps,
                    t_last=args.t_last,
                    shift=args.shift,
                    batch_size=args.batch_size,
                    weak_model=weak,
                    autoencoder=autoencoder,
                    device=device,
                    progress=bar,
                )
                save_npz(shard_path(args.out_dir, k), arr_0=images, labels=labels)
        elapsed = time.perf_counter() - start
        log.info("%d images in %.1f s (%.2f img/s), %d NFE per sample", total, elapsed, total / elapsed, nfe)
    # Whichever process finds every shard present finishes the set (the last one to finish).
    if all(shard_path(args.out_dir, k).exists() for k in range(num_shards)):
        if args.grid:
            write_grid(args.out_dir, args.grid, args.grid_size)
        if args.manifest:
            write_manifest(args, num_shards, guidance)


def write_manifest(args: argparse.Namespace, num_shards: int, guidance: Guidance) -> None:
    """Describe a complete sample set: what was sampled, how, and a checksum per shard."""
    shards = []
    for k in range(num_shards):
        path = shard_path(args.out_dir, k)
        shards.append({"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
    write_json(
        args.manifest,
        {
            "num_samples": args.num_samples,
            "shard_size": args.shard_size,
            "checkpoint": str(args.checkpoint),
            "seed_key": args.seed_key,
            "labels": args.labels,
            "sampler": {"method": args.method, "steps": args.steps, "t_last": args.t_last, "shift": args.shift},
            "guidance": guidance.to_dict(),
            "ag_checkpoint": args.ag_checkpoint,
            "shards": shards,
        },
    )


def write_grid(out_dir: str | Path, path: str | Path, count: int = 64) -> None:
    """A square PNG grid of the first ``count`` samples found in the shards."""
    from PIL import Image

    from ig.utils.io import atomic_path

    images, k = [], 0
    while sum(len(a) for a in images) < count and shard_path(out_dir, k).exists():
        images.append(load_npz(shard_path(out_dir, k), "sample shard")["arr_0"])
        k += 1
    if not images:
        raise IGError(f"no sample shards in {out_dir} to make a grid from; run `ig sample` first")
    batch = np.concatenate(images)[:count]
    side = math.ceil(math.sqrt(len(batch)))
    h, w = batch.shape[1:3]
    canvas = np.zeros((side * h, side * w, 3), dtype=np.uint8)
    for i, img in enumerate(batch):
        r, c = divmod(i, side)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")
