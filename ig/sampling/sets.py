"""``ig sample``: a checkpoint and a guidance setting → a verified set of ADM-format sample shards.

**Pairing.** Sample *i* is computed from the checkpoint, the guidance and the sampler settings, and
from randomness that depends only on the sampling seed, *i* and the label mode: its class label,
its initial noise and its SDE noise each come from a generator of ``(seed, i, stream)`` (balanced
labels: of the block of ``num_classes`` samples that *i* belongs to). So two guidance settings or
two checkpoints are compared on the same noise and labels, as in the official generation scripts;
the first *N* samples of a larger set are the set of *N*; and batches, shards and processes only
decide where the work runs, never what it computes.

**Shards.** Samples ``[k·S, (k+1)·S)`` form shard *k*, ``shard-0000k.npz`` (``arr_0``: uint8
N×H×W×3, ``labels``, ``indices``, ``provenance``). The provenance names what made the shard: the
checkpoint's sha256 (and the weak model's), the guidance, the sampler settings, the seed, the label
mode and the sample range. A rerun keeps a shard only when its provenance matches and the file
verifies; any other shard is redone, and the log says why. Ranks of a torchrun/srun launch take the
shards with ``k % world == rank``.

**Manifest.** Once every shard is there and matches, ``samples.json`` lists the shards with their
checksums and the provenance: what ``ig evaluate`` reads.
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ig.errors import IGError
from ig.guidance import Guidance, GuidedVelocity
from ig.sampling.settings import LABEL_MODES, SamplingSettings, add_sampling_arguments, sampling_from_args
from ig.utils.io import (
    file_digest,
    npz_problem,
    provenance_array,
    read_yaml_mapping,
    save_npz,
    shard_path,
    write_json,
)

# torch and the modules that import it are imported where used: `ig sample --help` needs none of them
if TYPE_CHECKING:
    import torch
    from tqdm import tqdm

log = logging.getLogger(__name__)
SHARD_FORMAT = "ig-sample-shard/2"
MANIFEST_FORMAT = "ig-samples/2"
NOISE_CHUNK = 32  # SDE steps of noise drawn per sample at once


# --- the randomness of sample i ------------------------------------------------------------------
def sample_labels(indices: range, num_classes: int, mode: str, seed: int) -> torch.Tensor:
    """Class labels of samples ``indices``: i.i.d. uniform (``random``, as the releases), or
    ``balanced``: each block of ``num_classes`` consecutive samples holds every class once, in an
    order drawn per block, so any multiple of ``num_classes`` samples is exactly balanced."""
    import torch

    from ig.utils.seeding import generator

    if mode not in LABEL_MODES:
        raise IGError(f"label mode must be one of {list(LABEL_MODES)}, got {mode!r}")
    if mode == "random":
        draws = [torch.randint(num_classes, (1,), generator=generator("sample", seed, i, "label")) for i in indices]
        return torch.cat(draws) if draws else torch.zeros(0, dtype=torch.long)
    return torch.tensor([_balanced_block(seed, i // num_classes, num_classes)[i % num_classes] for i in indices])


@functools.lru_cache(maxsize=64)
def _balanced_block(seed: int, block: int, num_classes: int) -> tuple[int, ...]:
    import torch

    from ig.utils.seeding import generator

    return tuple(torch.randperm(num_classes, generator=generator("sample", seed, block, "balanced")).tolist())


def initial_noise(indices: range, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """The initial noise (t = 1) of samples ``indices``, shape (len, *shape)."""
    import torch

    from ig.utils.seeding import generator

    return torch.stack([torch.randn(shape, generator=generator("sample", seed, i, "noise")) for i in indices])


class StepNoise:
    """The SDE noise of samples ``indices``: ``self(k)`` is stochastic step ``k``'s, one row per
    sample from that sample's own stream, drawn ``NOISE_CHUNK`` steps at a time."""

    def __init__(self, indices: range, shape: tuple[int, ...], seed: int, device: torch.device) -> None:
        import torch

        from ig.utils.seeding import generator

        self.generators = [generator("sample", seed, i, "sde") for i in indices]
        self.shape, self.device = shape, device
        self.start, self.chunk = 0, torch.empty(0)

    def __call__(self, step: int) -> torch.Tensor:
        import torch

        if not self.start <= step < self.start + len(self.chunk):
            if step != self.start + len(self.chunk):
                raise RuntimeError(f"SDE noise is drawn in step order; asked for step {step}")
            self.start = step
            draws = [torch.randn((NOISE_CHUNK, *self.shape), generator=g) for g in self.generators]
            self.chunk = torch.stack(draws, dim=1).to(self.device)
        return self.chunk[step - self.start]


# --- what a set is ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleSetSpec:
    """Everything that decides the samples of a set (and, with ``out_dir``, where they go)."""

    checkpoint: Path
    guidance: Guidance
    sampling: SamplingSettings
    labels: str = "random"
    weak_checkpoint: Path | None = None

    @property
    def num_shards(self) -> int:
        return math.ceil(self.sampling.num_samples / self.sampling.shard_size)

    def indices(self, shard: int) -> range:
        size = self.sampling.shard_size
        return range(shard * size, min((shard + 1) * size, self.sampling.num_samples))

    @functools.cached_property
    def inputs(self) -> dict[str, Any]:
        """The content of every input, by digest (paths may move; what they hold may not change)."""
        for path, what in ((self.checkpoint, "checkpoint"), (self.weak_checkpoint, "weak (autoguidance) checkpoint")):
            if path is not None and not Path(path).is_file():
                raise IGError(f"{what} {path} not found; train or import it first")
        return {
            "checkpoint_sha256": file_digest(self.checkpoint),
            "weak_checkpoint_sha256": file_digest(self.weak_checkpoint) if self.weak_checkpoint else None,
            "guidance": self.guidance.to_dict(),
            "sampler": self.sampling.sampler.to_dict(),
            "seed": self.sampling.seed,
            "labels": self.labels,
        }

    def provenance(self, shard: int) -> dict[str, Any]:
        r = self.indices(shard)
        return {"format": SHARD_FORMAT, **self.inputs, "indices": [r.start, r.stop]}


# --- sampling ------------------------------------------------------------------------------------
def sample_shard(
    model: torch.nn.Module,
    spec: SampleSetSpec,
    shard: int,
    latent: dict[str, Any],
    *,
    weak_model: torch.nn.Module | None = None,
    autoencoder: Any | None = None,
    device: torch.device | str = "cpu",
    progress: tqdm | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of shard ``shard``: uint8 images, labels, sample indices and provenance."""
    import torch

    from ig.images import decode_latents
    from ig.sampling.integrators import sample

    device = torch.device(device)
    indices = spec.indices(shard)
    shape = (model.in_channels, model.input_size, model.input_size)
    seed, batch_size = spec.sampling.seed, spec.sampling.batch_size
    labels = sample_labels(indices, model.num_classes, spec.labels, seed)
    noise = initial_noise(indices, shape, seed)
    velocity = GuidedVelocity(model, spec.guidance, weak_model)
    images = []
    for lo in range(0, len(indices), batch_size):
        batch = indices[lo : lo + batch_size]
        step_noise = StepNoise(batch, shape, seed, device)
        y = labels[lo : lo + batch_size].to(device)
        x = sample(velocity, noise[lo : lo + batch_size].to(device), y, spec.sampling.sampler, step_noise)
        images.append(decode_latents(x, latent, autoencoder))
        if progress is not None:
            progress.update(len(batch))
    return {
        "arr_0": np.concatenate(images),
        "labels": labels.numpy().astype(np.int64),
        "indices": np.arange(indices.start, indices.stop, dtype=np.int64),
        "provenance": provenance_array(spec.provenance(shard)),
    }


def write_manifest(spec: SampleSetSpec, out_dir: Path, path: Path, spec_hash: str | None = None) -> None:
    """Describe a complete sample set: what made it (with the workflow's spec hash), and a checksum per shard."""
    shards = []
    for k in range(spec.num_shards):
        file = shard_path(out_dir, k)
        shards.append({"file": file.name, "count": len(spec.indices(k)), "sha256": file_digest(file)})
    write_json(
        path,
        {
            "format": MANIFEST_FORMAT,
            "spec": spec_hash,
            "num_samples": spec.sampling.num_samples,
            "shard_size": spec.sampling.shard_size,
            **spec.inputs,
            "checkpoint": str(spec.checkpoint.resolve()),
            "weak_checkpoint": str(spec.weak_checkpoint.resolve()) if spec.weak_checkpoint else None,
            "nfe": len(spec.sampling.sampler.evaluation_times()),
            "shards": shards,
        },
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="training checkpoint (its EMA weights are sampled)")
    p.add_argument("--out-dir", type=Path, required=True, help="folder for the shard-XXXXX.npz files")
    p.add_argument("--labels", choices=LABEL_MODES, default="random", help="class labels: random or balanced")
    add_sampling_arguments(p)
    p.add_argument("--shard", type=int, nargs="*", help="shard indices to produce (default: every one)")
    g = p.add_argument_group("guidance (scales of 1 switch a guidance off; intervals are (low, high] in t)")
    for name in ("ig", "cfg", "ag"):
        g.add_argument(f"--{name}-scale", type=float, default=1.0)
        g.add_argument(f"--{name}-interval", type=float, nargs=2, default=(0.0, 1.0), metavar=("LOW", "HIGH"))
    g.add_argument("--ag-checkpoint", type=Path, help="weak model checkpoint for autoguidance")
    g.add_argument(
        "--guidance-file",
        type=Path,
        help="a guidance entry (JSON/YAML, e.g. chosen.json of `ig tune`) instead of the flags",
    )
    p.add_argument(
        "--spec",
        type=Path,
        help="the workflow's sample-set spec (ig.campaign.specs): guidance, sampling settings and labels "
        "come from it instead of the flags (a tuned guidance from --guidance-file)",
    )
    p.add_argument("--device", help="cpu, cuda (this rank's GPU) or cuda:N (default: the job's GPU if any, else cpu)")
    p.add_argument("--assets-dir", help="where autoencoder weights resolve (default: $IG_ASSETS or assets)")
    p.add_argument(
        "--manifest", type=Path, help="write this JSON (shards, checksums, provenance) once every shard exists"
    )


@dataclass
class Sampler:
    """What sampling needs in memory: the checkpoint's EMA model and latent space, the weak model
    (autoguidance) and the autoencoder, on one device. Loaded once, used for many shards or sets."""

    model: torch.nn.Module
    latent: dict[str, Any]
    weak_model: torch.nn.Module | None
    autoencoder: Any | None
    device: torch.device

    @classmethod
    def load(
        cls, checkpoint: Path, device: torch.device, weak_checkpoint: Path | None = None, assets_dir: str | None = None
    ) -> Sampler:
        from ig.checkpoints import load_for_sampling
        from ig.data.autoencoders import load_autoencoder

        model, meta = load_for_sampling(checkpoint, device)
        weak = load_for_sampling(weak_checkpoint, device)[0] if weak_checkpoint else None
        spec = meta["latent"].get("autoencoder")
        autoencoder = load_autoencoder(spec, assets_dir, device=device) if spec else None
        return cls(model, meta["latent"], weak, autoencoder, device)


def shards_to_make(spec: SampleSetSpec, out_dir: Path, shards: Iterable[int]) -> list[int]:
    """The shards among ``shards`` that are missing or cannot be kept (the log says why)."""
    todo = []
    for k in shards:
        problem = npz_problem(shard_path(out_dir, k), spec.provenance(k))
        if problem is not None:
            if problem != "missing":
                log.info("shard %d is redone: %s", k, problem)
            todo.append(k)
    return todo


def make_shards(spec: SampleSetSpec, out_dir: Path, shards: list[int], sampler: Sampler, progress: bool = True) -> None:
    """Sample and write ``shards`` of the set (each atomically), with a progress bar."""
    from tqdm import tqdm

    total = sum(len(spec.indices(k)) for k in shards)
    log.info("sampling %d shard(s), %d images, guidance %s", len(shards), total, spec.guidance.to_dict())
    start = time.perf_counter()
    with tqdm(total=total, unit="img", desc="sample", disable=not progress) as bar:
        for k in shards:
            arrays = sample_shard(
                sampler.model, spec, k, sampler.latent, weak_model=sampler.weak_model,
                autoencoder=sampler.autoencoder, device=sampler.device, progress=bar,
            )  # fmt: skip
            save_npz(shard_path(out_dir, k), **arrays)
    elapsed = time.perf_counter() - start
    log.info("%d images in %.1f s (%.2f img/s)", total, elapsed, total / max(elapsed, 1e-9))


def is_complete(spec: SampleSetSpec, out_dir: Path) -> bool:
    """Every shard of the set is there and was made from these inputs (a light check: the files'
    CRCs are verified when they are reused or read)."""
    return all(
        npz_problem(shard_path(out_dir, k), spec.provenance(k), full=False) is None for k in range(spec.num_shards)
    )


def guidance_from_args(args: argparse.Namespace) -> Guidance:
    if args.guidance_file is not None:
        return Guidance.from_dict(read_yaml_mapping(args.guidance_file, what="guidance file"))
    return Guidance.from_dict(
        {f"{n}_{k}": getattr(args, f"{n}_{k}") for n in ("ig", "cfg", "ag") for k in ("scale", "interval")}
    )


def spec_from_args(args: argparse.Namespace) -> tuple[SampleSetSpec, str | None]:
    """The sample set the arguments describe, and the hash of the workflow spec it came from (if any)."""
    if args.spec is None:
        spec = SampleSetSpec(
            args.checkpoint, guidance_from_args(args), sampling_from_args(args), args.labels, args.ag_checkpoint
        )
        return spec, None
    from ig.campaign.specs import read_spec

    job = read_spec(args.spec, "sample")
    if "tuned" in job["guidance"]:
        if args.guidance_file is None:
            raise IGError(f"{args.spec} samples a tuned guidance: give its chosen.json as --guidance-file")
        guidance = guidance_from_args(args)
    else:
        guidance = Guidance.from_dict(job["guidance"])
    sampling = SamplingSettings.from_dict(job["sampling"])
    return SampleSetSpec(args.checkpoint, guidance, sampling, job["labels"], args.ag_checkpoint), args.spec.stem


def run(args: argparse.Namespace) -> None:
    from ig.distributed import process_context

    spec, spec_hash = spec_from_args(args)
    wanted = args.shard if args.shard else range(spec.num_shards)
    bad = [k for k in wanted if not 0 <= k < spec.num_shards]
    if bad:
        raise IGError(f"shard index {bad[0]} out of range: {spec.num_shards} shards of {spec.sampling.shard_size}")
    ctx = process_context(args.device)
    mine = [k for k in wanted if k % ctx.world_size == ctx.rank]
    for k in mine:  # what a kill during this rank's saves left behind
        for stale in args.out_dir.glob(f".{shard_path(args.out_dir, k).name}.*.tmp"):
            stale.unlink(missing_ok=True)
    todo = shards_to_make(spec, args.out_dir, mine)
    if todo:
        sampler = Sampler.load(spec.checkpoint, ctx.device, spec.weak_checkpoint, args.assets_dir)
        make_shards(spec, args.out_dir, todo, sampler, progress=ctx.rank == 0)
    # Whichever process finds every shard in place finishes the set (the last one to finish).
    if args.manifest and is_complete(spec, args.out_dir):
        write_manifest(spec, args.out_dir, args.manifest, spec_hash)
