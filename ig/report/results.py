"""A campaign's metrics, checked and aggregated: what tables and plots show.

Every metrics file is checked against the files it was computed from before it is shown: its
``samples.json`` must be the one on disk, and that sample set's checkpoint must be the current
one (by content digest). A table cell therefore never comes from samples of another checkpoint.

A table cell stands for a setting of a run; when the run has several training seeds the cell
aggregates them: the mean over seeds, the standard deviation over seeds, and the sampling error.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ig.campaign import Campaign, SampleSet
from ig.errors import IGError
from ig.evaluation.uncertainty import Difference, paired_difference, seed_difference
from ig.utils.io import file_digest, read_json

METRICS = ("fid", "sfid", "is", "precision", "recall")
METRIC_NAMES = {"fid": "FID", "sfid": "sFID", "is": "IS", "precision": "Prec.", "recall": "Rec."}


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def current_digest(path: str | Path) -> str:
    """sha256 of a file, computed once per process and file state."""
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def read_metrics(campaign: Campaign, s: SampleSet) -> dict[str, Any]:
    """The metrics file of a sample set, after checking that it describes the current samples of the
    current checkpoint (else a one-line error saying what to rerun)."""
    path = Path(campaign.metrics(s))
    if not path.is_file():
        raise IGError(f"metrics missing: {path}; run the workflow (snakemake) to produce it")
    metrics = read_json(path, "metrics JSON")
    samples = metrics.get("samples", {})
    manifest = Path(campaign.path("sample_manifest", **s.wildcards))
    stale = None
    if not manifest.is_file() or samples.get("manifest_sha256") != current_digest(manifest):
        stale = f"its samples ({manifest}) have changed since"
    elif samples.get("checkpoint_sha256") != current_digest(campaign.checkpoint(s.run, s.milestone)):
        stale = "its samples come from an earlier version of the checkpoint"
    if stale:
        raise IGError(f"{path} is stale: {stale}; rerun the workflow (or delete {path})")
    return metrics


def load_metrics(campaign: Campaign, missing_ok: bool = False) -> dict[SampleSet, dict[str, Any]]:
    """The checked metrics of every sample set of the campaign (``missing_ok``: skip absent files)."""
    out = {}
    for s in campaign.sample_sets():
        if missing_ok and not Path(campaign.metrics(s)).is_file():
            continue
        out[s] = read_metrics(campaign, s)
    return out


@dataclass(frozen=True)
class Cell:
    """One metric of one table setting: over ``n`` training seeds, ``value`` (their mean), ``seed_std``
    (their standard deviation; None for one seed) and ``sampling_se`` (the sampling error: of the
    one set, or the mean over seeds)."""

    value: float
    sampling_se: float | None
    seed_std: float | None
    n: int
    replicates: tuple[dict[str, Any], ...]

    @property
    def error(self) -> Difference:
        """The cell as a difference from 0: its error for judging it against another number (the
        sampling error for one seed; the seeds' spread / √n, Student t, for several)."""
        if self.n > 1:
            return Difference(self.value, self.seed_std / math.sqrt(self.n), False, self.n - 1)
        return Difference(self.value, self.sampling_se or 0.0, False)


def cell(sets: list[SampleSet], metrics: dict[SampleSet, dict[str, Any]], metric: str) -> Cell | None:
    """The aggregate of ``metric`` over the seed runs ``sets`` of one setting (None if not computed)."""
    found = [metrics[s] for s in sets if s in metrics and metrics[s].get(metric) is not None]
    if not found:
        return None
    values = np.array([m[metric] for m in found])
    errors = [m.get(f"{metric}_se") for m in found]
    sampling_se = float(np.mean(errors)) if all(e is not None for e in errors) else None
    seed_std = float(values.std(ddof=1)) if len(values) > 1 else None
    return Cell(float(values.mean()), sampling_se, seed_std, len(values), tuple(found))


def difference(a: Cell, b: Cell, metric: str) -> Difference:
    """``a − b`` of two cells: paired per training seed (the seed runs in order) and over seeds when
    both have several; for one seed each, the paired bootstrap difference."""
    if a.n > 1 and a.n == b.n:
        return seed_difference([ma[metric] - mb[metric] for ma, mb in zip(a.replicates, b.replicates, strict=True)])
    if a.n == 1 and b.n == 1:
        return paired_difference(a.replicates[0], b.replicates[0], metric)
    ea, eb = a.error, b.error
    dof = min(d for d in (ea.dof, eb.dof) if d is not None) if (ea.dof or eb.dof) else None
    return Difference(a.value - b.value, math.hypot(ea.se, eb.se), False, dof)


def load_paper(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise IGError(f"paper numbers not found: {path} (tracked in the repository under results/paper/)")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def paper_value(paper: pd.DataFrame, key: dict, metric: str) -> float | None:
    """The paper's number for a table row's ``paper:`` key, or None if the paper has none."""
    sel = (paper["table"] == key["table"]) & (paper["method"] == key["method"]) & (paper["metric"] == metric)
    for field in ("epochs", "iterations", "guidance", "labels"):
        if field in key:
            sel &= paper[field] == str(key[field])
    hits = paper[sel]
    if len(hits) > 1:
        raise IGError(f"paper key {key} matches {len(hits)} rows of numbers.csv; add epochs/guidance/labels")
    return float(hits["value"].iloc[0]) if len(hits) else None
