"""Our metrics and the paper's numbers as tidy tables (one row per sample set / per number)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ig.campaign import Campaign, milestone_target
from ig.errors import IGError
from ig.utils.io import read_json

METRICS = ("fid", "sfid", "is", "precision", "recall")
METRIC_NAMES = {"fid": "FID", "sfid": "sFID", "is": "IS", "precision": "Prec.", "recall": "Rec."}


def load_metrics(campaign: Campaign, missing_ok: bool = False) -> pd.DataFrame:
    """One row per sample set of the campaign with its metrics and guidance parameters."""
    rows = []
    for s in campaign.sample_sets():
        path = Path(campaign.metrics(s))
        if not path.is_file():
            if missing_ok:
                continue
            raise IGError(f"metrics missing: {path}; run the workflow (snakemake) to produce it")
        m = read_json(path, "metrics JSON")
        unit, value = milestone_target(s.milestone)
        g = campaign.guidance(s.guidance)
        rows.append(
            {
                "run": s.run,
                "milestone": s.milestone,
                "unit": unit,
                "value": value,
                "guidance": s.guidance,
                "labels": s.labels,
                **{k: m.get(k) for k in METRICS},
                "num_samples": m.get("num_samples"),
                "extractor": m.get("extractor"),
                "ig_scale": g.ig_scale,
                "ig_interval": tuple(g.ig_interval),
                "cfg_scale": g.cfg_scale,
                "cfg_interval": tuple(g.cfg_interval),
                "ag_scale": g.ag_scale,
            }
        )
    return pd.DataFrame(rows)


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
