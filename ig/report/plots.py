"""``ig plot``: the campaign's figures from its metrics, every point with its error bar.

Each entry of the config's ``plots:`` section is one PNG, ``<out-dir>/<name>.png``:

- ``training``: a metric vs training milestone, one line per run (``runs``, ``guidance``, ``labels``);
- ``ig_scale``: a metric vs the IG scale over the listed guidance settings of one checkpoint;
- ``interval`` and ``methods``: bars over the listed guidance settings of one checkpoint
  (interval ablation; IG vs CFG vs both).

Error bars: the sampling standard error for one training seed; for several, the standard error of
their mean (training and sampling noise together; the mean over seeds is plotted).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ig import campaign as campaign_mod
from ig.utils.io import atomic_path, write_json

# matplotlib and the results (pandas, scipy, torch) are imported where used, so that `ig plot --help`
# needs none of them
if TYPE_CHECKING:
    from ig.report.results import Cell


def _bar(c: Cell) -> float:
    return c.error.se


def _cells(campaign, metrics, run: str, milestone: str, guidance: list[str], labels: str, metric: str) -> list[Cell]:
    from ig.report.results import cell

    milestone = campaign.milestone_of({"run": run, "milestone": milestone})
    cells = []
    for g in guidance:
        c = cell(
            campaign.row_sets({"run": run, "milestone": milestone, "guidance": g, "labels": labels}), metrics, metric
        )
        cells.append(c)  # None: pending (not evaluated, failed or out of date), left out of the plot
    return cells


def _training(ax, campaign, metrics, spec: dict, metric: str, labels: dict) -> None:
    from ig.report.results import cell

    for run in spec["runs"]:
        milestones = campaign.milestones(run)
        cells, xs = [], []
        for m in milestones:
            setting = {
                "run": run,
                "milestone": m,
                "guidance": spec.get("guidance", "none"),
                "labels": spec.get("labels", "random"),
            }
            c = cell(campaign.row_sets(setting), metrics, metric)
            if c is not None:
                cells.append(c)
                xs.append(campaign.milestone_step(campaign.groups[run][0], m))
        if not cells:
            continue  # every milestone of the run pending
        ax.errorbar(
            xs,
            [c.value for c in cells],
            yerr=[_bar(c) for c in cells],
            marker="o",
            capsize=3,
            label=labels.get(run, run),
        )
    ax.set_xlabel("training steps")
    ax.legend(fontsize=7)


def _ig_scale(ax, campaign, metrics, spec: dict, metric: str, labels: dict) -> None:
    cells = _cells(
        campaign, metrics, spec["run"], spec["milestone"], spec["guidance"], spec.get("labels", "random"), metric
    )
    cells = [c for c in cells if c is not None]
    scales = [c.replicates[0].guidance["ig_scale"] for c in cells]  # as sampled (tuned ones too)
    order = sorted(range(len(scales)), key=scales.__getitem__)
    ax.errorbar(
        [scales[i] for i in order],
        [cells[i].value for i in order],
        yerr=[_bar(cells[i]) for i in order],
        marker="o",
        capsize=3,
    )
    ax.set_xlabel("IG scale w")


def _bars(ax, campaign, metrics, spec: dict, metric: str, labels: dict) -> None:
    cells = _cells(
        campaign, metrics, spec["run"], spec["milestone"], spec["guidance"], spec.get("labels", "random"), metric
    )
    names = [
        spec.get("names", {}).get(g, g) + ("" if c else " (pending)")
        for g, c in zip(spec["guidance"], cells, strict=True)
    ]
    ax.bar(
        range(len(cells)),
        [c.value if c else 0.0 for c in cells],
        yerr=[_bar(c) if c else 0.0 for c in cells],
        capsize=3,
    )
    ax.set_xticks(range(len(cells)), names, rotation=30, ha="right")


DRAW = {"training": _training, "ig_scale": _ig_scale, "interval": _bars, "methods": _bars}


def draw(name: str, spec: dict, campaign, metrics: dict, run_labels: dict, path: Path, extractor: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ig.report.results import METRIC_NAMES

    chosen = spec.get("metrics", ["fid"])
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], chosen, strict=True):
        DRAW[name](ax, campaign, metrics, spec, metric, run_labels)
        ax.set_ylabel(METRIC_NAMES[metric])
        ax.grid(alpha=0.3)
    fig.suptitle(spec.get("title", name.replace("_", " ")), fontsize=10)
    fig.text(
        0.01,
        0.01,
        f"features: {extractor}; bars: standard error (over seeds: training and sampling noise)",
        fontsize=6,
        color="grey",
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_plots(campaign: campaign_mod.Campaign, out_dir: str | Path) -> list[Path]:
    from ig.report.results import load_results

    metrics = load_results(campaign).metrics
    extractor = next((m.extractor for m in metrics.values()), "")
    run_labels = {r: spec.get("label", r) for r, spec in campaign.config["runs"].items()}
    written = []
    for name, spec in campaign.config["plots"].items():
        path = Path(out_dir) / f"{name}.png"
        draw(name, spec, campaign, metrics, run_labels, path, extractor)
        written.append(path)
    write_json(Path(out_dir) / "done.json", {"plots": [str(p) for p in written]})
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="workflow config (results/<name>/campaign.yaml)")
    p.add_argument("--out-dir", required=True)


def run(args: argparse.Namespace) -> None:
    for path in write_plots(campaign_mod.load(args.config), args.out_dir):
        print(path)
