"""``ig plot``: the campaign's figures from its metrics.

Each entry of the config's ``plots:`` section is one PNG, ``<out-dir>/<name>.png``:

- ``training``: a metric vs training milestone, one line per run (``runs``, ``guidance``, ``labels``);
- ``ig_scale``: a metric vs the IG scale over the listed guidance settings of one checkpoint;
- ``interval`` and ``methods``: bars over the listed guidance settings of one checkpoint
  (interval ablation; IG vs CFG vs both).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ig import campaign as campaign_mod  # noqa: E402
from ig.errors import IGError  # noqa: E402
from ig.report.results import METRIC_NAMES, load_metrics  # noqa: E402
from ig.utils.io import atomic_path, write_json  # noqa: E402

PLOTS = ("training", "ig_scale", "interval", "methods")


def _select(metrics: pd.DataFrame, spec: dict) -> pd.DataFrame:
    sel = metrics[(metrics.run == spec["run"]) & (metrics.milestone == spec["milestone"])]
    sel = sel[sel.labels == spec.get("labels", "random")]
    sel = sel.set_index("guidance")
    missing = [g for g in spec["guidance"] if g not in sel.index]
    if missing:
        raise IGError(
            f"plot needs metrics of guidance {missing} for {spec['run']}/{spec['milestone']}; add them to evaluations"
        )
    return sel.loc[spec["guidance"]]


def _training(ax, metrics: pd.DataFrame, spec: dict, metric: str, labels: dict) -> None:
    for run in spec["runs"]:
        sel = metrics[
            (metrics.run == run)
            & (metrics.guidance == spec.get("guidance", "none"))
            & (metrics.labels == spec.get("labels", "random"))
        ].sort_values("value")
        if sel.empty:
            raise IGError(f"plot 'training' has no metrics for run {run!r}; add it to evaluations")
        ax.plot(sel["value"], sel[metric], marker="o", label=labels.get(run, run))
        ax.set_xlabel("epochs" if sel["unit"].iloc[0] == "epoch" else "iterations")
    ax.legend()


def _ig_scale(ax, metrics: pd.DataFrame, spec: dict, metric: str, labels: dict) -> None:
    sel = _select(metrics, spec).sort_values("ig_scale")
    ax.plot(sel["ig_scale"], sel[metric], marker="o")
    ax.set_xlabel("IG scale w")


def _bars(ax, metrics: pd.DataFrame, spec: dict, metric: str, labels: dict) -> None:
    sel = _select(metrics, spec)
    names = [spec.get("names", {}).get(g, g) for g in sel.index]
    ax.bar(range(len(sel)), sel[metric])
    ax.set_xticks(range(len(sel)), names, rotation=30, ha="right")


DRAW = {"training": _training, "ig_scale": _ig_scale, "interval": _bars, "methods": _bars}


def draw(name: str, spec: dict, metrics: pd.DataFrame, run_labels: dict, path: Path) -> None:
    chosen = spec.get("metrics", ["fid"])
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], chosen, strict=True):
        DRAW[name](ax, metrics, spec, metric, run_labels)
        ax.set_ylabel(METRIC_NAMES[metric])
        ax.grid(alpha=0.3)
    extractor = metrics["extractor"].iloc[0]
    fig.suptitle(spec.get("title", name.replace("_", " ")), fontsize=10)
    fig.text(0.01, 0.01, f"features: {extractor}", fontsize=6, color="grey")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_plots(campaign: campaign_mod.Campaign, out_dir: str | Path) -> list[Path]:
    metrics = load_metrics(campaign)
    run_labels = {r: spec.get("label", r) for r, spec in campaign.runs.items()}
    written = []
    for name, spec in campaign.config.get("plots", {}).items():
        path = Path(out_dir) / f"{name}.png"
        draw(name, spec, metrics, run_labels, path)
        written.append(path)
    write_json(Path(out_dir) / "done.json", {"plots": [str(p) for p in written]})
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="workflow config (results/<name>/campaign.yaml)")
    p.add_argument("--out-dir", required=True)


def run(args: argparse.Namespace) -> None:
    for path in write_plots(campaign_mod.load(args.config), args.out_dir):
        print(path)
