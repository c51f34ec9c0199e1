"""Training throughput benchmarks (``python -m ig.bench`` calls every ``bench_*``).

Each times the real training step (``Trainer``: data from memory-mapped shards, forward, IG loss,
backward, clipping, AdamW, EMA) on random latents, after one warm-up step.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ig.data.latents import LatentDataset
from ig.distributed import DistContext
from ig.models.sizes import model_options
from ig.train.config import RunConfig
from ig.train.engine import Trainer
from ig.utils.io import save_npz, write_json


def bench_engine_tiny(device: torch.device, quick: bool = False) -> dict[str, Any]:
    """The whole engine (``Trainer``: data from memory-mapped shards, forward, IG loss, backward,
    clipping, AdamW, EMA) on the embedded default's SiT-T/2, global batch 32: its own overhead shows."""
    model = {"name": "SiT-T/2", "input_size": 8, "num_classes": 10}
    return train_throughput(model, batch=32, steps=3 if quick else 20, device=device)


def train_throughput(model: dict[str, Any], batch: int, steps: int, device: torch.device) -> dict[str, Any]:
    cfg = RunConfig.from_dict({"model": model, "global_batch": batch})
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=device)
    options = model_options(**model)
    shape = (options["in_channels"], options["input_size"], options["input_size"])
    with tempfile.TemporaryDirectory() as tmp:
        data = LatentDataset(write_random_latents(Path(tmp), 2 * batch, shape, options["num_classes"]))
        trainer = Trainer(cfg, data, ctx)
        trainer.compute_gradients()
        trainer.apply_gradients()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.compute_gradients()
            trainer.apply_gradients()
        seconds = (time.perf_counter() - start) / steps
    return {
        "model": model["name"],
        "global_batch": batch,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seconds_per_step": seconds,
        "images_per_s": batch / seconds,
    }


def write_random_latents(
    folder: Path,
    n: int,
    shape: tuple[int, ...],
    num_classes: int,
    fmt: str = "sit",
    shard_size: int = 1000,
    seed: int = 0,
) -> Path:
    """A latent folder in the ``ig encode`` format (ig/data/latents.py) holding random latents."""
    rng = np.random.default_rng(seed)
    keys = ("mean", "std") if fmt == "sit" else ("latents", "latents_flip")
    shards = []
    for i, start in enumerate(range(0, n, shard_size)):
        m = min(shard_size, n - start)
        first = rng.normal(size=(m, *shape))
        second = np.abs(rng.normal(size=(m, *shape))) * 0.1 if fmt == "sit" else -first
        name = f"shard-{i:05d}.npz"
        labels = rng.integers(0, num_classes, m).astype(np.int64)
        save_npz(
            folder / name, **{keys[0]: first.astype(np.float16), keys[1]: second.astype(np.float16)}, labels=labels
        )
        shards.append({"file": name, "count": m, "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()})
    manifest = {
        "format": fmt,
        "num_images": n,
        "num_classes": num_classes,
        "latent_shape": list(shape),
        "autoencoder": None,
        "normalization": {"kind": "scalar", "scale": 0.5, "shift": 0.1},
        "source": {"random": True, "seed": seed},
        "shards": shards,
    }
    write_json(folder / "manifest.json", manifest)
    return folder
