"""``ig table``: each configured table as CSV, Markdown and LaTeX, paper | ours | difference
(only ours where the table names no paper number)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from ig import campaign as campaign_mod
from ig.report.results import METRIC_NAMES, load_metrics, load_paper, paper_value
from ig.utils.io import atomic_path


def build_table(table: dict, metrics: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Rows = the table's settings; per metric three columns: paper, ours, ours − paper."""
    out = []
    for row in table["rows"]:
        s = campaign_mod.Campaign.row_set(row)
        mine = metrics[
            (metrics.run == s.run)
            & (metrics.milestone == s.milestone)
            & (metrics.guidance == s.guidance)
            & (metrics.labels == s.labels)
        ]
        record = {"setting": row["label"]}
        for m in table["metrics"]:
            ours = mine[m].iloc[0] if len(mine) else None
            ref = paper_value(paper, row["paper"], m) if "paper" in row else None
            ours = None if ours is None or (isinstance(ours, float) and math.isnan(ours)) else float(ours)
            record[f"{m}_paper"] = ref
            record[f"{m}_ours"] = ours
            record[f"{m}_diff"] = ours - ref if ours is not None and ref is not None else None
        out.append(record)
    return pd.DataFrame(out)


def _fmt(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if metric in ("precision", "recall") else f"{value:.2f}"


def _kinds(table: dict) -> tuple[str, ...]:
    """Paper, ours and difference columns per metric; only ours where no row names a paper number."""
    return ("paper", "ours", "diff") if any("paper" in row for row in table["rows"]) else ("ours",)


def _cells(r: pd.Series, table: dict) -> list[str]:
    return [_fmt(r[f"{m}_{w}"], m) for m in table["metrics"] for w in _kinds(table)]


def to_markdown(table: dict, frame: pd.DataFrame, extractor: str | None) -> str:
    metrics, kinds = table["metrics"], _kinds(table)
    names = {"paper": " paper", "ours": " ours" if len(kinds) > 1 else "", "diff": " Δ"}
    header = ["Setting"] + [f"{METRIC_NAMES[m]}{names[w]}" for m in metrics for w in kinds]
    lines = [f"### {table['title']}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in frame.iterrows():
        cells = [r["setting"], *_cells(r, table)]
        lines.append("| " + " | ".join(cells) + " |")
    if extractor:
        lines += ["", f"Ours: metrics in the feature space of `{extractor}`."]
    return "\n".join(lines) + "\n"


def to_latex(table: dict, frame: pd.DataFrame) -> str:
    metrics, kinds = table["metrics"], _kinds(table)
    cols = "l" + "r" * len(kinds) * len(metrics)
    if len(kinds) > 1:
        head = [
            " & ".join(["Setting"] + [rf"\multicolumn{{3}}{{c}}{{{METRIC_NAMES[m]}}}" for m in metrics]) + r" \\",
            " & ".join([""] + ["paper & ours & $\\Delta$"] * len(metrics)) + r" \\",
        ]
    else:
        head = [" & ".join(["Setting"] + [METRIC_NAMES[m] for m in metrics]) + r" \\"]
    body = [" & ".join([_latex_escape(r["setting"]), *_cells(r, table)]) + r" \\" for _, r in frame.iterrows()]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{_latex_escape(table['title'])}}}",
            rf"\begin{{tabular}}{{{cols}}}",
            r"\toprule",
            *head,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    ).replace("–", "--")


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


def write_tables(campaign: campaign_mod.Campaign, paper_csv: str | Path, out_dir: str | Path) -> list[Path]:
    metrics = load_metrics(campaign)
    paper = load_paper(paper_csv)
    extractor = metrics["extractor"].iloc[0] if len(metrics) else None
    written = []
    for table in campaign.config.get("tables", []):
        frame = build_table(table, metrics, paper)
        base = Path(out_dir) / table["name"]
        for suffix, text in (
            (".csv", frame.to_csv(index=False)),
            (".tex", to_latex(table, frame)),
            (".md", to_markdown(table, frame, extractor)),  # last: the workflow's declared output
        ):
            with atomic_path(base.with_suffix(suffix)) as tmp:
                tmp.write_text(text)
            written.append(base.with_suffix(suffix))
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="workflow config (results/<name>/campaign.yaml)")
    p.add_argument("--paper", default="results/paper/numbers.csv", help="the paper's numbers")
    p.add_argument("--out-dir", required=True)


def run(args: argparse.Namespace) -> None:
    for path in write_tables(campaign_mod.load(args.config), args.paper, args.out_dir):
        print(path)
