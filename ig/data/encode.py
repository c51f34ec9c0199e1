"""``ig encode``: a dataset → latent shards and a manifest (format: ``ig/data/latents.py``).

Shard ``k`` of ``n`` holds dataset images ``[⌊k·N/n⌋, ⌊(k+1)·N/n⌋)`` in dataset order, and its
contents depend only on (dataset, autoencoder, format, seed, k): the posterior noise of image
``i`` comes from a generator seeded by ``(seed, i)``, drawn on the CPU, so neither the batch
size nor the device's random stream matters. So shards can be made by separate
invocations (``--shard k``), by any number of torchrun/srun ranks (rank ``r`` makes the shards
with ``k % world == r``), or again after a kill, and the files are the same. Each shard is
written atomically with its provenance (the settings, the autoencoder's weights digest, the
shard); a run keeps a shard only when its provenance matches and the file verifies, redoes the
others (the log says why: a retrained autoencoder redoes them all), and whichever run finds every
shard in place writes ``manifest.json``.

Besides the contract's arrays, every shard holds (a compatible extension):

- ``indices`` (n,) int64: the dataset index of each row (corrupt images skipped with
  ``--skip-corrupt`` leave gaps);
- ``provenance``: what made the shard (JSON text);
- ``stats_sum``, ``stats_sumsq`` (C,) float64 and ``stats_images`` (1,) int64: per-channel sums
  over the rows that belong to the statistics sample (≤ ``--stats-images`` images drawn once
  from the whole dataset), so the manifest's normalisation needs no second pass over latents.

Normalisation: SD-VAE keeps its config's scalar factor (0.18215); the tiny autoencoder gets
``scale = 1/std``, ``shift = mean`` over the sample; VA-VAE gets channel-wise mean/std over the
sample (LightningDiT's recipe, ≤ 10K latents). Statistics are of posterior samples (what
training sees), of the un-flipped images.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ig.data.names import AUTOENCODER_KINDS, DATASETS, LATENT_FORMATS
from ig.errors import IGError
from ig.utils.io import (
    file_digest,
    npz_problem,
    provenance_array,
    read_json,
    save_npz,
    shard_path,
    state_digest,
    write_json,
)

# torch and the modules that import it are imported where used: `ig encode --help` needs none of them
if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset
    from tqdm import tqdm

    from ig.data.autoencoders import Autoencoder
    from ig.data.latents import Normalization

log = logging.getLogger(__name__)
LATENT_SHARD_FORMAT = "ig-latent-shard/2"


def shard_bounds(num_images: int, num_shards: int, k: int) -> tuple[int, int]:
    """Dataset index range ``[start, stop)`` of shard ``k``."""
    return k * num_images // num_shards, (k + 1) * num_images // num_shards


def stats_sample(num_images: int, max_images: int, seed: int) -> np.ndarray:
    """Boolean mask of the images whose latents the statistics are computed from."""
    from ig.utils.seeding import derive_seed

    rng = np.random.default_rng(derive_seed("latent-stats", seed))
    mask = np.zeros(num_images, dtype=bool)
    mask[rng.choice(num_images, min(max_images, num_images), replace=False)] = True
    return mask


class _Items:
    """``(index, image, label, error)`` of dataset image ``index``: a corrupt image yields its error
    message rather than raising inside a DataLoader worker (where it would lose its one line). A
    map-style dataset (``__len__`` and ``__getitem__``: all a DataLoader asks of one)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, int, str | None]:
        from ig.data.datasets import CorruptImageError

        try:
            image, label = self.dataset[index]
        except CorruptImageError as exc:
            return index, None, -1, str(exc)
        return index, image, label, None


def _collate(items: list) -> list:
    return items


def posterior_noise(shape: tuple[int, ...], seed: int, indices: np.ndarray, draws: int = 1) -> torch.Tensor:
    """``draws`` standard normal tensors of ``shape`` per image, from the image's own generator;
    returned as (draws·len(indices), *shape), draw-major (all first draws, then all second)."""
    import torch

    from ig.utils.seeding import generator

    noise = [torch.randn((draws, *shape), generator=generator("encode", seed, int(i))) for i in indices]
    return torch.stack(noise, dim=1).flatten(0, 1)


def encode_batch(
    autoencoder: Autoencoder,
    images: np.ndarray,
    indices: np.ndarray,
    *,
    fmt: str,
    seed: int,
    device: torch.device | str,
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The two arrays a shard stores for these images (float16, on the CPU), and the posterior
    samples the statistics see (the un-flipped ones)."""
    import torch

    from ig.data.autoencoders import images_to_tensor

    x = images_to_tensor(images).to(device)
    if fmt == "sit":
        mean, std = (t.cpu().half() for t in autoencoder.encode(x))
        shape = tuple(mean.shape[1:])
        return (mean, std), mean.float() + std.float() * posterior_noise(shape, seed, indices)
    mean, std = (t.cpu().float() for t in autoencoder.encode(torch.cat([x, torch.flip(x, dims=[3])])))
    z = (mean + std * posterior_noise(tuple(mean.shape[1:]), seed, indices, draws=2)).half()
    return (z[: len(x)], z[len(x) :]), z[: len(x)].float()


class ShardBuilder:
    """Collects the batches of one shard, and per-channel sums over its statistics sample."""

    def __init__(self, fmt: str, latent_shape: tuple[int, int, int]) -> None:
        self.keys = ("mean", "std") if fmt == "sit" else ("latents", "latents_flip")
        self.latent_shape = latent_shape
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in (*self.keys, "labels", "indices")}
        self.sums, self.sumsqs, self.sampled = np.zeros(latent_shape[0]), np.zeros(latent_shape[0]), 0

    def add(self, stored, seen: torch.Tensor, labels: np.ndarray, indices: np.ndarray, in_sample: np.ndarray) -> None:
        import torch

        for key, value in zip(self.keys, stored, strict=True):
            self.parts[key].append(value.numpy())
        self.parts["labels"].append(labels)
        self.parts["indices"].append(indices)
        chosen = seen[torch.from_numpy(in_sample[indices])].double()
        self.sums += chosen.sum(dim=(0, 2, 3)).numpy()
        self.sumsqs += (chosen**2).sum(dim=(0, 2, 3)).numpy()
        self.sampled += len(chosen)

    def arrays(self) -> dict[str, np.ndarray]:
        empty = {k: np.zeros((0, *self.latent_shape), np.float16) for k in self.keys}  # every image was corrupt
        arrays = {k: np.concatenate(v) if v else empty.get(k, np.zeros(0, np.int64)) for k, v in self.parts.items()}
        stats = {"stats_sum": self.sums, "stats_sumsq": self.sumsqs, "stats_images": np.array([self.sampled])}
        return arrays | stats


def _good_items(items: list, skip_corrupt: bool) -> list:
    """The readable items of a batch; a corrupt one is an error unless skipping was asked for."""
    for index, _, _, error in items:
        if error is not None and not skip_corrupt:
            raise IGError(f"{error}; replace or delete the file, or rerun with --skip-corrupt")
        if error is not None:
            log.warning("skipping image %d: %s", index, error)
    return [item for item in items if item[3] is None]


def _batches(shards: list[int], num_images: int, num_shards: int, batch_size: int) -> list[tuple[int, list[int]]]:
    """``(shard, dataset indices)`` of every batch, in order; no batch spans two shards."""
    batches = []
    for k in shards:
        start, stop = shard_bounds(num_images, num_shards, k)
        batches += [(k, list(range(lo, min(lo + batch_size, stop)))) for lo in range(start, stop, batch_size)]
    return batches


def encode(
    dataset: Dataset,
    autoencoder: Autoencoder,
    out_dir: str | Path,
    *,
    fmt: str = "sit",
    num_images: int | None = None,
    num_shards: int | None = None,
    shards: list[int] | None = None,
    seed: int = 0,
    stats_images: int = 10_000,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    skip_corrupt: bool = False,
    num_workers: int = 0,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Encode the missing shards among ``shards`` (default: all) that belong to ``rank``.

    Returns the manifest once every shard exists (written by this call if needed), else None.
    """
    from tqdm import tqdm

    if fmt not in LATENT_FORMATS:
        raise IGError(f"latent format must be one of {LATENT_FORMATS}, got {fmt!r}")
    num_images = len(dataset) if num_images is None else min(num_images, len(dataset))
    num_shards = math.ceil(num_images / 1000) if num_shards is None else num_shards
    if num_images < 1 or not 1 <= num_shards <= num_images:
        raise IGError(f"cannot split {num_images} image(s) into {num_shards} shard(s); use 1 ≤ --num-shards ≤ images")
    wanted = list(range(num_shards)) if shards is None else shards
    bad = [k for k in wanted if not 0 <= k < num_shards]
    if bad:
        raise IGError(f"shard {bad[0]} out of range: there are {num_shards} shards (0…{num_shards - 1})")
    size = dataset.resolution // autoencoder.downsample
    plan = {
        "format": fmt,
        "num_images": num_images,
        "num_shards": num_shards,
        "num_classes": int(dataset.num_classes),
        "latent_shape": [autoencoder.latent_channels, size, size],
        "autoencoder": autoencoder.spec,
        "source": dataset.source,
        "seed": seed,
        "stats_images": stats_images,
        "scaling_factor": float(autoencoder.vae.config.scaling_factor),
        "autoencoder_weights": state_digest(autoencoder.vae.state_dict()),
    }
    out_dir = Path(out_dir)
    todo = []
    for k in (k for k in wanted if k % world == rank):
        problem = npz_problem(shard_path(out_dir, k), shard_provenance(plan, k))
        if problem is not None:
            if problem != "missing":
                log.info("latent shard %d is redone: %s", k, problem)
            todo.append(k)
    manifest_path = out_dir / "manifest.json"
    if todo:
        manifest_path.unlink(missing_ok=True)  # it would describe shards that are missing now
        total = sum(stop - start for start, stop in (shard_bounds(num_images, num_shards, k) for k in todo))
        log.info("encoding %d shard(s), %d image(s) into %s", len(todo), total, out_dir)
        begin = time.perf_counter()
        with tqdm(total=total, unit="img", desc="encode", disable=not progress or rank != 0) as bar:
            write_shards(
                dataset,
                autoencoder,
                out_dir,
                _batches(todo, num_images, num_shards, batch_size),
                plan=plan,
                seed=seed,
                in_sample=stats_sample(num_images, stats_images, seed),
                device=device,
                skip_corrupt=skip_corrupt,
                num_workers=num_workers,
                progress=bar,
            )
        elapsed = time.perf_counter() - begin
        log.info("encoded %d image(s) in %.1f s (%.1f img/s)", total, elapsed, total / elapsed)
    if any(npz_problem(shard_path(out_dir, k), shard_provenance(plan, k), full=False) for k in range(num_shards)):
        return None
    if not todo and manifest_path.exists():
        return read_json(manifest_path, what="latent manifest")
    return write_manifest(out_dir, plan)


def write_shards(
    dataset: Dataset,
    autoencoder: Autoencoder,
    out_dir: Path,
    batches: list[tuple[int, list[int]]],
    *,
    plan: dict[str, Any],
    seed: int,
    in_sample: np.ndarray,
    device: torch.device | str,
    skip_corrupt: bool,
    num_workers: int,
    progress: tqdm,
) -> None:
    """Encode ``batches`` (shard by shard, see :func:`_batches`) and write each shard when done.

    One DataLoader serves all shards, so its workers start once, not once per shard."""
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _Items(dataset), batch_sampler=[b for _, b in batches], num_workers=num_workers, collate_fn=_collate
    )
    builder, current = None, None
    fmt, latent_shape = plan["format"], tuple(plan["latent_shape"])
    for (k, _), items in zip(batches, loader, strict=True):
        if k != current:
            if builder is not None:
                save_npz(
                    shard_path(out_dir, current),
                    **builder.arrays(),
                    provenance=provenance_array(shard_provenance(plan, current)),
                )
            builder, current = ShardBuilder(fmt, latent_shape), k
        good = _good_items(items, skip_corrupt)
        progress.update(len(items))
        if good:
            indices = np.array([item[0] for item in good], dtype=np.int64)
            images = np.stack([item[1] for item in good])
            stored, seen = encode_batch(autoencoder, images, indices, fmt=fmt, seed=seed, device=device)
            labels = np.array([item[2] for item in good], dtype=np.int64)
            builder.add(stored, seen, labels, indices, in_sample)
    save_npz(
        shard_path(out_dir, current), **builder.arrays(), provenance=provenance_array(shard_provenance(plan, current))
    )


def shard_provenance(plan: dict[str, Any], shard: int) -> dict[str, Any]:
    """What makes latent shard ``shard``: the encoding plan and the shard's place in it."""
    return {"format": LATENT_SHARD_FORMAT, **plan, "shard": shard}


def normalization_for(kind: str, statistics: dict[str, Any], scaling_factor: float) -> Normalization:
    """The latent normalisation of an autoencoder kind, given the sample's statistics."""
    from ig.data.latents import Normalization

    if kind == "sd-vae":
        return Normalization("scalar", scale=scaling_factor, shift=0.0)
    if kind == "tiny":
        return Normalization("scalar", scale=1.0 / statistics["overall_std"], shift=statistics["overall_mean"])
    return Normalization("channelwise", mean=tuple(statistics["mean"]), std=tuple(statistics["std"]))


def write_manifest(out_dir: Path, plan: dict[str, Any]) -> dict[str, Any]:
    """Gather counts, hashes and statistics of all shards into ``manifest.json``."""
    entries, sums, sumsqs, sampled = [], 0.0, 0.0, 0
    for k in range(plan["num_shards"]):
        path = shard_path(out_dir, k)
        with np.load(path, allow_pickle=False) as shard:
            count = len(shard["labels"])
            sums = sums + shard["stats_sum"]
            sumsqs = sumsqs + shard["stats_sumsq"]
            sampled += int(shard["stats_images"][0])
        entries.append({"file": path.name, "count": count, "sha256": file_digest(path, "sha256")})
    if sampled < 2:
        raise IGError(f"{out_dir}: latent statistics need at least 2 sampled images, got {sampled}")
    _, height, width = plan["latent_shape"]
    statistics = {"images": sampled, **_moments(sums, sumsqs, sampled * height * width)}
    kind = plan["autoencoder"]["kind"]
    normalization = normalization_for(kind, statistics, plan["scaling_factor"])
    stored = sum(e["count"] for e in entries)
    manifest = {
        "format": plan["format"],
        "num_images": stored,
        "num_classes": plan["num_classes"],
        "latent_shape": plan["latent_shape"],
        "autoencoder": plan["autoencoder"],
        "normalization": normalization.to_dict(),
        "source": {**plan["source"], "encoded": plan["num_images"], "skipped_corrupt": plan["num_images"] - stored},
        "statistics": statistics,
        "seed": plan["seed"],
        "shards": entries,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest


def _moments(sums: np.ndarray, sumsqs: np.ndarray, n: int) -> dict[str, Any]:
    """Per-channel and overall mean and (unbiased) std from sums over ``n`` elements per channel."""
    mean = sums / n
    std = np.sqrt((sumsqs - sums**2 / n) / (n - 1))
    total, count = float(sums.sum()), n * len(sums)
    overall_std = math.sqrt((sumsqs.sum() - total**2 / count) / (count - 1))
    return {"mean": mean.tolist(), "std": std.tolist(), "overall_mean": total / count, "overall_std": overall_std}


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ig.assets import default_assets_dir

    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--data-root", help="dataset folder (ImageNet: holds train/<synset>/; Fashion-MNIST: IDX files)")
    p.add_argument("--split", default="train")
    p.add_argument("--resolution", type=int, default=32, help="image side in pixels (256 for ImageNet)")
    p.add_argument("--limit", type=int, help="encode only the first LIMIT images")
    p.add_argument("--autoencoder-kind", choices=AUTOENCODER_KINDS, required=True)
    p.add_argument("--autoencoder", required=True, help="folder, checkpoint file or registered hub id")
    p.add_argument("--assets-dir", default=default_assets_dir(), help="where hub ids resolve (`ig fetch-assets`)")
    p.add_argument(
        "--format", choices=LATENT_FORMATS, default="sit", help="sit: posterior mean/std; lightningdit: samples"
    )
    p.add_argument("--out-dir", required=True)
    p.add_argument("--num-shards", type=int, help="default: about 1000 images per shard")
    p.add_argument("--shard", type=int, nargs="+", help="make only these shards (default: all missing ones)")
    p.add_argument("--seed", type=int, default=0, help="seeds posterior samples and the statistics sample")
    p.add_argument("--stats-images", type=int, default=10_000, help="images the latent statistics are computed from")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers decoding images")
    p.add_argument("--device", help="cpu, cuda (this rank's GPU) or cuda:N (default: the job's GPU if any, else cpu)")
    p.add_argument("--skip-corrupt", action="store_true", help="skip (and count) unreadable images instead of failing")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> None:
    from ig.data.autoencoders import load_autoencoder, portable_spec
    from ig.data.datasets import build_dataset
    from ig.distributed import process_context

    ctx = process_context(args.device)
    dataset = build_dataset(args.dataset, args.data_root, args.resolution, args.split)
    spec = portable_spec(args.autoencoder_kind, args.autoencoder)
    autoencoder = load_autoencoder(spec, args.assets_dir, device=ctx.device)
    manifest = encode(
        dataset,
        autoencoder,
        args.out_dir,
        fmt=args.format,
        num_images=args.limit,
        num_shards=args.num_shards,
        shards=args.shard,
        seed=args.seed,
        stats_images=args.stats_images,
        batch_size=args.batch_size,
        device=ctx.device,
        skip_corrupt=args.skip_corrupt,
        num_workers=args.num_workers,
        rank=ctx.rank,
        world=ctx.world_size,
        progress=not args.no_progress,
    )
    if manifest is not None:
        skipped = manifest["source"]["skipped_corrupt"]
        log.info("%s complete: %d images, %d skipped as corrupt", args.out_dir, manifest["num_images"], skipped)
