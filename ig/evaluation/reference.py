"""``ig reference``: the reference side of every evaluation, computed once per feature network.

The output ``.npz`` (a contract with ``ig evaluate``) holds:

- ``mu``, ``sigma``: statistics of the pool features (FID); ``mu_s``, ``sigma_s``: of the spatial
  features (sFID); float64;
- ``pool``: pool features (float32) of up to ``--pr-images`` (10K) reference images (precision/recall);
- ``extractor``: the identity of the feature network; ``ig evaluate`` refuses any other;
- ``source``: what the images were; ``num_images``: how many made the statistics (0: precomputed).

Sources:

- an ADM reference batch (e.g. ``VIRTUAL_imagenet256_labeled.npz``: ``mu, sigma, mu_s, sigma_s`` of
  the ImageNet train set and 10K images in ``arr_0``), recognised by its ``mu`` key: its statistics
  are kept as they are (TF Inception; ours agree to ~1e-6) and only the P/R features of its images
  are computed. This needs the ``inception`` extractor;
- images: ``.npz`` files with ``arr_0`` or folders of ``shard-*.npz``;
- a dataset of ``ig.data.datasets`` (the embedded default).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ig.assets import refuse_stand_in
from ig.errors import IGError
from ig.utils.io import save_npz

# the feature networks, images and metrics import torch and scipy: imported where used, so that
# `ig reference --help` needs neither
if TYPE_CHECKING:
    from ig.evaluation.features import FeatureExtractor
    from ig.evaluation.imagesets import ImageSet

log = logging.getLogger(__name__)
STATISTICS = ("mu", "sigma", "mu_s", "sigma_s")
REFERENCE_KEYS = (*STATISTICS, "pool", "extractor", "source", "num_images")


def precomputed_statistics(path: str | Path) -> dict[str, np.ndarray] | None:
    """``mu, sigma, mu_s, sigma_s`` of an ADM reference batch; None for a plain images npz."""
    with np.load(path, allow_pickle=False) as z:
        present = [key for key in STATISTICS if key in z.files]
        if not present:
            return None
        if len(present) < len(STATISTICS):
            raise IGError(f"{path} has {present} but not all of {list(STATISTICS)}; use a complete ADM reference batch")
        return {key: z[key].astype(np.float64) for key in STATISTICS}


def compute_reference(
    images: ImageSet,
    extractor: FeatureExtractor,
    *,
    precomputed: dict[str, np.ndarray] | None = None,
    max_images: int | None = None,
    pr_images: int = 10_000,
    batch_size: int = 64,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """The arrays of a reference ``.npz`` (see the module docstring)."""
    from ig.evaluation.features import extract_features
    from ig.evaluation.metrics import feature_statistics

    if precomputed is not None and extractor.kind != "inception":
        raise IGError("ADM reference statistics are Inception statistics: use an inception:<weights> extractor")
    # with precomputed statistics, only the P/R images need features
    limit = pr_images if precomputed is not None else max_images
    count = images.num_images if limit is None else min(limit, images.num_images)
    features = extract_features(extractor, images.batches(batch_size, count), count, "reference features", progress)
    if precomputed is None:
        mu, sigma = feature_statistics(features["pool"])
        mu_s, sigma_s = feature_statistics(features["spatial"])
        stats = {"mu": mu, "sigma": sigma, "mu_s": mu_s, "sigma_s": sigma_s}
    else:
        stats = precomputed
        for key, name in (("mu", "pool"), ("mu_s", "spatial")):
            if stats[key].shape != features[name].shape[1:]:
                raise IGError(
                    f"the reference {key} has shape {stats[key].shape} but the extractor's {name} features have "
                    f"{features[name].shape[1]} dimensions; the reference batch does not belong to this network"
                )
    return {
        **stats,
        "pool": features["pool"][:pr_images].astype(np.float32),
        "extractor": np.array(extractor.identity),
        "source": np.array(" ".join(images.sources)),
        "num_images": np.array(0 if precomputed is not None else count),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", nargs="+", metavar="NPZ", help="ADM reference batch, images .npz or shard folders")
    source.add_argument("--dataset", help="dataset name of ig.data.datasets (e.g. fashion-mnist)")
    p.add_argument("--data-root", help="dataset folder (with --dataset)")
    p.add_argument("--split", default="train", choices=("train", "test"), help="dataset split (with --dataset)")
    p.add_argument("--resolution", type=int, default=32, help="dataset resolution (with --dataset)")
    p.add_argument("--extractor", required=True, help="inception:<weights.pth> or classifier:<checkpoint.pt>")
    p.add_argument("--out", required=True, help="reference .npz to write")
    p.add_argument("--max-images", type=int, help="use only the first N images for the statistics")
    p.add_argument("--pr-images", type=int, default=10_000, help="reference images for precision/recall")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the job's GPU if any, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> None:
    from ig.distributed import select_device
    from ig.evaluation.extractors import load_extractor
    from ig.evaluation.imagesets import DatasetImages, NpzImages

    device = select_device(args.device)  # first: a job that cannot use its GPU stops before any work
    if args.images:
        for path in args.images:
            refuse_stand_in(path)
        images: ImageSet = NpzImages(args.images)
        precomputed = precomputed_statistics(images.sources[0]) if len(images.sources) == 1 else None
    else:
        images, precomputed = DatasetImages(args.dataset, args.data_root, args.resolution, args.split), None
    extractor = load_extractor(args.extractor, device)
    arrays = compute_reference(
        images,
        extractor,
        precomputed=precomputed,
        max_images=args.max_images,
        pr_images=args.pr_images,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    save_npz(args.out, **arrays)
    log.info("wrote %s (%s, %d P/R images)", args.out, extractor.identity, len(arrays["pool"]))
