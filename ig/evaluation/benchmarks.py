"""Evaluation figures for ``python -m ig.bench``: Fréchet distance time (ours vs ADM's
``scipy.linalg.sqrtm``, side by side) and feature extraction throughput on the CPU."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg

from ig.errors import IGError
from ig.evaluation.classifier import ClassifierExtractor, SmallCNN, save_classifier
from ig.evaluation.features import FeatureExtractor
from ig.evaluation.inception import InceptionExtractor, convert_fid_helper, fid_helper_weights
from ig.evaluation.metrics import frechet_distance


def _adm_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """ADM's formula: ``scipy.linalg.sqrtm`` of the non-symmetric product."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _seconds(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_frechet_distance(quick: bool = False) -> dict:
    """Both implementations on covariances of Gaussian features, 2048-d as pool3 (quick: 256-d)."""
    d = 256 if quick else 2048
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2 * d, d)), rng.standard_normal((2 * d, d))
    stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0) + 0.1, np.cov(b + 0.3 * a, rowvar=False))
    ours_s, ours = _seconds(lambda: frechet_distance(*stats))
    scipy_s, theirs = _seconds(lambda: _adm_frechet_distance(*stats))
    return {
        "dim": d,
        "ours_s": ours_s,
        "scipy_sqrtm_s": scipy_s,
        "speedup": scipy_s / ours_s,
        "rel_diff": abs(ours - theirs) / theirs,
    }


def _images_per_second(extractor: FeatureExtractor, batch: int, size: int, repeats: int) -> float:
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    extractor(images)  # warm-up
    seconds, _ = _seconds(lambda: [extractor(images) for _ in range(repeats)])
    return batch * repeats / seconds


def bench_inception_features(quick: bool = False) -> dict:
    """Inception (converted fid-helper weights) on 256² images, batch 8, CPU."""
    try:
        source = fid_helper_weights()
    except IGError as exc:
        return {"skipped": str(exc)}
    with tempfile.TemporaryDirectory() as tmp:
        extractor = InceptionExtractor(convert_fid_helper(source, Path(tmp) / "inception.pth"))
    batch = 2 if quick else 8
    return {
        "batch": batch,
        "resolution": 256,
        "images_per_s": _images_per_second(extractor, batch, 256, 1 if quick else 3),
    }


def bench_classifier_features(quick: bool = False) -> dict:
    """The default in-domain classifier (untrained weights: same cost) on 32² images, CPU."""
    batch = 64 if quick else 256
    with tempfile.TemporaryDirectory() as tmp:
        save_classifier(SmallCNN(), Path(tmp) / "classifier.pt", dataset="benchmark", resolution=32)
        extractor = ClassifierExtractor(Path(tmp) / "classifier.pt")
    images_per_s = _images_per_second(extractor, batch, 32, 2 if quick else 10)
    return {"batch": batch, "resolution": 32, "images_per_s": images_per_s}
