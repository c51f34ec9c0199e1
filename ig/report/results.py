"""A campaign's metrics, checked and aggregated: what tables and plots show.

Every metrics file is checked before it is shown: the specs of its samples and of its evaluation
must be the config's current ones, and its checkpoint the one on disk (by content digest). A cell
therefore never comes from samples of another setting or checkpoint; one that is missing, failed or
out of date is shown as pending, with its reason, and never keeps the other cells from being built.

A table cell stands for a setting of a run; when the run has several training seeds the cell
aggregates them: their mean, with an error that holds training and sampling noise (each seed is
sampled from its own noise, so their spread holds both).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ig.campaign import Campaign, SampleSet
from ig.campaign.specs import sample_job
from ig.errors import IGError
from ig.evaluation.record import MetricsRecord
from ig.evaluation.uncertainty import (
    Difference,
    independent_difference,
    mixed_difference,
    paired_difference,
    seed_difference,
    seed_mean,
)
from ig.utils.io import file_digest

METRICS = ("fid", "sfid", "is", "precision", "recall", "kid")
METRIC_NAMES = {"fid": "FID", "sfid": "sFID", "is": "IS", "precision": "Prec.", "recall": "Rec.", "kid": "KID"}


@functools.cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def current_digest(path: str | Path) -> str:
    """sha256 of a file, computed once per process and file state."""
    stat = Path(path).stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@dataclass
class Results:
    """A campaign's metrics: those that describe the current samples of the current settings, and
    for every other sample set why it is pending (missing, failed, out of date) and how to repair it."""

    metrics: dict[SampleSet, MetricsRecord] = dataclasses.field(default_factory=dict)
    pending: dict[SampleSet, str] = dataclasses.field(default_factory=dict)


def stale_reason(campaign: Campaign, s: SampleSet, metrics: MetricsRecord) -> str | None:
    """Why a metrics file no longer describes its cell (None: it does). Its sample set's spec and the
    evaluation's spec must be the config's current ones (``ig.campaign.specs``), and its checkpoint
    the one on disk."""
    if metrics.sample_spec != campaign.specs.hash(sample_job(s)):
        return "its samples were made with settings the config no longer has"
    if metrics.spec != campaign.specs.hash("evaluation"):
        return "it was evaluated with settings the config no longer has"
    manifest = Path(campaign.path("sample_manifest", **s.wildcards))
    if manifest.is_file() and metrics.manifest_sha256 != current_digest(manifest):
        return f"its samples ({manifest}) were made again since"
    checkpoint = Path(campaign.checkpoint(s.run, s.milestone))
    if checkpoint.is_file() and metrics.checkpoint_sha256 != current_digest(checkpoint):
        return "its samples come from an earlier version of the checkpoint"
    return None


def pending_reason(campaign: Campaign, s: SampleSet) -> str:
    """Why a sample set has no current metrics, with the log to read or the command that repairs it."""
    path = campaign.metrics(s)
    if Path(path).is_file():
        try:
            stale = stale_reason(campaign, s, MetricsRecord.read(path))
        except IGError as exc:  # a file of another version
            return f"out of date: {exc}"
        if "settings the config no longer has" in stale:  # the workflow redoes it by itself
            return f"out of date: {stale}; the next run of the workflow redoes it (`snakemake -n` lists it)"
        manifest = campaign.path("sample_manifest", **s.wildcards)
        return f"out of date: {stale}; repair: snakemake <your flags> --force {manifest} {path}"
    for rule in ("evaluate", "sample"):
        log = campaign.log(rule, s)
        if Path(log).is_file():
            return f"not evaluated: the {rule} job failed or was interrupted; see {log}"
    return "not evaluated yet: run the workflow"


def load_results(campaign: Campaign) -> Results:
    """The checked metrics of every sample set of the campaign; the others as pending."""
    results = Results()
    for s in campaign.sample_sets():
        path = Path(campaign.metrics(s))
        try:
            metrics = MetricsRecord.read(path) if path.is_file() else None
        except IGError:
            metrics = None  # of another version: pending, and pending_reason says so
        if metrics is not None and stale_reason(campaign, s, metrics) is None:
            results.metrics[s] = metrics
        else:
            results.pending[s] = pending_reason(campaign, s)
    return results


def pending_lines(results: Results, sets: list[SampleSet] | None = None) -> list[str]:
    """Markdown bullets of the pending sets (of ``sets``, or all)."""
    return [f"- `{s.key}`: {why}" for s, why in sorted(results.pending.items()) if sets is None or s in sets]


@dataclass(frozen=True)
class Cell:
    """One metric of one table setting over its ``n`` training seeds (each sampled from its own noise):
    the per-seed ``values``, their sampling errors, and the metrics files they come from."""

    values: tuple[float, ...]
    sampling_ses: tuple[float | None, ...]
    replicates: tuple[MetricsRecord, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def value(self) -> float:
        return float(np.mean(self.values))

    @property
    def seed_std(self) -> float | None:
        """The spread over training seeds (None for one seed)."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    @property
    def sampling_se(self) -> float | None:
        """The sampling error of one seed's value (their mean over seeds)."""
        return None if None in self.sampling_ses else float(np.mean(self.sampling_ses))

    @property
    def error(self) -> Difference:
        """The cell as a difference from 0, with an error that holds training and sampling noise:
        :func:`ig.evaluation.uncertainty.seed_mean` (one seed: its sampling error)."""
        return seed_mean(self.values, [se or 0.0 for se in self.sampling_ses])


def cell(sets: list[SampleSet], metrics: dict[SampleSet, MetricsRecord], metric: str) -> Cell | None:
    """The aggregate of ``metric`` over the seed runs ``sets`` of one setting (None if not computed)."""
    found = [metrics[s] for s in sets if s in metrics and metrics[s].value(metric) is not None]
    if not found:
        return None
    return Cell(tuple(float(m.value(metric)) for m in found), tuple(m.se(metric) for m in found), tuple(found))


def difference(a: Cell, b: Cell, metric: str) -> Difference:
    """``a − b`` of two cells. Both over the same training seeds: the mean of the per-seed paired
    differences (seed i of each run shares its sampling noise), Student t. One seed each: the paired
    bootstrap difference. Seeds against one seed: the one-seed run shares the first seed's noise
    (``Campaign.sampling``): :func:`ig.evaluation.uncertainty.mixed_difference`. Otherwise the two
    cells as independent, Welch–Satterthwaite."""
    if a.n > 1 and a.n == b.n:
        pairs = zip(a.replicates, b.replicates, strict=True)
        return seed_difference([ma.value(metric) - mb.value(metric) for ma, mb in pairs])
    if a.n == 1 and b.n == 1:
        return paired_difference(a.replicates[0], b.replicates[0], metric)
    if a.n == 1 or b.n == 1:
        seeded, single, sign = (a, b, 1.0) if b.n == 1 else (b, a, -1.0)
        pair = paired_difference(seeded.replicates[0], single.replicates[0], metric)
        ses = [se or 0.0 for se in seeded.sampling_ses]
        d = mixed_difference(seeded.values, ses, single.sampling_ses[0] or 0.0, 0, pair)
        return d if sign > 0 else -d
    return independent_difference(a.error, b.error)


def load_paper(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise IGError(f"paper numbers not found: {path} (tracked in the repository under results/paper/)")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# How sure a paper number is, from its row's source and note (results/paper/README.md): a number
# from a table of the paper, one read off a figure (±1 FID: a 95 % half-width, so its standard error
# is 1/1.96), or one from a secondary source not checked against the paper. Every printed paper
# number carries its grade's mark.
PAPER_GRADES = {"table": "", "figure reading": "†", "secondary": "‡"}
PAPER_GRADE_LEGEND = "† read off a figure of the paper (±1), ‡ from a secondary source, not checked against the paper"
FIGURE_READING_SE = 1 / 1.96


@dataclass(frozen=True)
class PaperNumber:
    value: float
    grade: str  # a key of PAPER_GRADES

    @property
    def se(self) -> float:
        """The number's own error: a figure reading's; a table's or a secondary source's is taken as exact."""
        return FIGURE_READING_SE if self.grade == "figure reading" else 0.0

    @property
    def mark(self) -> str:
        return PAPER_GRADES[self.grade]


def paper_grade(source: str, note: str) -> str:
    if "[secondary]" in source:
        return "secondary"
    if "read off" in source or note.startswith("approximate"):
        return "figure reading"
    return "table"


def paper_value(paper: pd.DataFrame, key: dict, metric: str) -> PaperNumber | None:
    """The paper's number for a table row's ``paper:`` key, with its grade, or None if the paper has none."""
    sel = (paper["table"] == key["table"]) & (paper["method"] == key["method"]) & (paper["metric"] == metric)
    for column in ("epochs", "iterations", "guidance", "labels"):
        if column in key:
            sel &= paper[column] == str(key[column])
    hits = paper[sel]
    if len(hits) > 1:
        raise IGError(f"paper key {key} matches {len(hits)} rows of numbers.csv; add epochs/guidance/labels")
    if not len(hits):
        return None
    row = hits.iloc[0]
    return PaperNumber(float(row["value"]), paper_grade(row["source"], row["note"]))
