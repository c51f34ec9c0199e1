"""Evaluation figures for ``python -m ig.bench``: the Fréchet distance (ours vs ADM's
``scipy.linalg.sqrtm``, side by side), its bootstrap at 50K × 2048, and feature extraction speed."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from ig.evaluation.classifier import ClassifierExtractor, SmallCNN, save_classifier
from ig.evaluation.features import FeatureExtractor
from ig.evaluation.metrics import feature_statistics, frechet_distance
from ig.evaluation.uncertainty import Bootstrap, frechet_replicates
from ig.utils.io import save_torch


def _adm_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """ADM's formula: ``scipy.linalg.sqrtm`` of the non-symmetric product."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _seconds(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_frechet_distance(device: torch.device, quick: bool = False) -> dict:
    """Both implementations on covariances of Gaussian features, 2048-d as pool3 (quick: 256-d)."""
    d = 256 if quick else 2048
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2 * d, d)), rng.standard_normal((2 * d, d))
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0) + 0.1, np.cov(b + 0.3 * a, rowvar=False))
    ours_s, ours = _seconds(lambda: frechet_distance(*stats))
    scipy_s, theirs = _seconds(lambda: _adm_frechet_distance(*stats))
    return {"dim": d, "ours_s": ours_s, "scipy_sqrtm_s": scipy_s, "speedup": scipy_s / ours_s,
            "rel_diff": abs(ours - theirs) / theirs}  # fmt: skip


def bench_fid_bootstrap(device: torch.device, quick: bool = False) -> dict:
    """The FID's bootstrap error at 50K × 2048 (the paper's evaluation), 20 resamples (quick: 2K × 256),
    beside the point estimate's own time."""
    n, d, resamples = (2000, 256, 20) if quick else (50_000, 2048, 20)
    rng = np.random.default_rng(0)
    features = np.abs(rng.standard_normal((n, d), dtype=np.float32))
    mu, sigma = feature_statistics(features[: n // 2] * 1.1)
    point_s, _ = _seconds(lambda: frechet_distance(*feature_statistics(features), mu, sigma))
    boot = Bootstrap(n, resamples)
    seconds, replicates = _seconds(lambda: frechet_replicates(features, mu, sigma, boot))
    return {
        "samples": n,
        "dim": d,
        "resamples": resamples,
        "blocks": boot.blocks(d),
        "seconds": seconds,
        "point_estimate_s": point_s,
        "se": float(np.std(replicates, ddof=1)),
        "threads": torch.get_num_threads(),
    }


def _images_per_second(extractor: FeatureExtractor, batch: int, size: int, repeats: int) -> float:
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    extractor(images)  # warm-up
    seconds, _ = _seconds(lambda: [extractor(images) for _ in range(repeats)])
    return batch * repeats / seconds


def bench_inception_features(device: torch.device, quick: bool = False) -> dict:
    """torch-fidelity's InceptionV3 (random weights: the same cost) on 256² images."""
    from ig.evaluation.inception import InceptionExtractor, UntrainedInception

    batch = 2 if quick else 8 if device.type == "cpu" else 250
    with tempfile.TemporaryDirectory() as tmp:
        save_torch(UntrainedInception().state_dict(), Path(tmp) / "inception.pth")
        extractor = InceptionExtractor(Path(tmp) / "inception.pth", device=device)
    images_per_s = _images_per_second(extractor, batch, 256, 1 if quick else 3)
    return {"batch": batch, "resolution": 256, "device": str(device), "images_per_s": images_per_s}


def bench_classifier_features(device: torch.device, quick: bool = False) -> dict:
    """The default in-domain classifier (untrained weights: the same cost) on 32² images."""
    batch = 64 if quick else 256
    with tempfile.TemporaryDirectory() as tmp:
        save_classifier(SmallCNN(), Path(tmp) / "classifier.pt", dataset="benchmark", resolution=32)
        extractor = ClassifierExtractor(Path(tmp) / "classifier.pt", device=device)
    images_per_s = _images_per_second(extractor, batch, 32, 2 if quick else 10)
    return {"batch": batch, "resolution": 32, "device": str(device), "images_per_s": images_per_s}
