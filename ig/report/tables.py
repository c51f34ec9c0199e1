"""``ig table``: each configured table as Markdown, CSV and LaTeX, every number with its error.

A row is a setting (run, milestone, guidance, labels); each metric cell reads ``value ± error``:
for one training seed the sampling (bootstrap) standard error, for several the mean over seeds ±
its standard error (training and sampling noise together: each seed has its own sampling noise).
Where the row names a paper number, the paper's value and ours − paper follow, with whether ours
is within noise of it.

A table's ``comparisons`` are paired differences ``a − b`` (same sampling seeds, so shared noise
cancels), each ``Δ ± error`` with a verdict from :func:`ig.evaluation.uncertainty.verdict`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ig import campaign as campaign_mod
from ig.utils.io import atomic_path

# the results and their statistics import pandas, scipy and torch: imported where used, so that
# `ig table --help` needs none of them
if TYPE_CHECKING:
    import pandas as pd

    from ig.evaluation.uncertainty import Difference
    from ig.report.results import Cell

PAPER_VERDICTS = {"better": "ours better", "worse": "ours worse", "within noise": "within noise"}


def decimals(metric: str) -> int:
    """Digits every report shows of a metric (precision and recall are shares: three; KID, raw MMD²
    of ~1e-4 to 1e-2 with errors of ~1e-5 at 50K samples: six)."""
    return {"precision": 3, "recall": 3, "kid": 6}.get(metric, 2)


def format_cell(c: Cell | None, metric: str) -> str:
    if c is None:
        return "–"
    f = f".{decimals(metric)}f"
    if c.n > 1:
        return f"{c.value:{f}} ± {c.error.se:{f}} ({c.n} seeds)"
    return f"{c.value:{f}}" + (f" ± {c.sampling_se:{f}}" if c.sampling_se is not None else "")


def format_difference(d: Difference | None, metric: str, words: dict[str, str] | None = None) -> str:
    from ig.evaluation.uncertainty import verdict

    if d is None:
        return "–"
    f = f".{decimals(metric)}f"
    judged = verdict(d, metric)
    return f"{d.delta:+{f}} ± {d.se:{f}} {(words or {}).get(judged, judged)}"


def build_rows(campaign: campaign_mod.Campaign, table: dict, metrics: dict, paper: pd.DataFrame) -> list[dict]:
    """Per row: its label, and per metric the cell, the paper's number and ours − paper."""
    from ig.evaluation.uncertainty import Difference
    from ig.report.results import cell, paper_value

    rows = []
    for row in table["rows"]:
        sets = campaign.row_sets(row["ours"])
        out: dict[str, Any] = {"label": row["label"], "seeds": len(sets)}
        for m in table["metrics"]:
            c = cell(sets, metrics, m)
            ref = paper_value(paper, row["paper"], m) if "paper" in row else None
            out[m] = c
            out[f"{m}_paper"] = ref
            gap = c.error if c is not None else None
            out[f"{m}_vs_paper"] = (
                None
                if c is None or ref is None
                else Difference(c.value - ref.value, math.hypot(gap.se, ref.se), False, gap.dof)
            )
        rows.append(out)
    return rows


def build_comparisons(campaign: campaign_mod.Campaign, table: dict, metrics: dict) -> list[dict]:
    """Per comparison: its label and per metric the paired difference a − b."""
    from ig.report.results import cell, difference

    out = []
    for comparison in table["comparisons"]:
        a_sets, b_sets = campaign.row_sets(comparison["a"]), campaign.row_sets(comparison["b"])
        record: dict[str, Any] = {"label": comparison["label"]}
        for m in table["metrics"]:
            a, b = cell(a_sets, metrics, m), cell(b_sets, metrics, m)
            record[m] = None if a is None or b is None else difference(a, b, m)
        out.append(record)
    return out


def _has_paper(table: dict) -> bool:
    return any("paper" in row for row in table["rows"])


def to_markdown(table: dict, rows: list[dict], comparisons: list[dict], extractor: str | None) -> str:
    from ig.report.results import METRIC_NAMES

    metrics = table["metrics"]
    header = ["Setting"]
    for m in metrics:
        header += (
            [f"{METRIC_NAMES[m]} paper", f"{METRIC_NAMES[m]} ours", f"{METRIC_NAMES[m]} ours − paper"]
            if _has_paper(table)
            else [METRIC_NAMES[m]]
        )
    lines = [f"### {table['title']}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["label"]]
        for m in metrics:
            if _has_paper(table):
                ref = r[f"{m}_paper"]
                cells += [
                    "–" if ref is None else f"{ref.value:.{decimals(m)}f}{ref.mark}",
                    format_cell(r[m], m),
                    format_difference(r[f"{m}_vs_paper"], m, PAPER_VERDICTS),
                ]
            else:
                cells.append(format_cell(r[m], m))
        lines.append("| " + " | ".join(cells) + " |")
    if comparisons:
        header = ["Paired comparison (a − b)"] + [f"Δ {METRIC_NAMES[m]}" for m in metrics]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for c in comparisons:
            lines.append("| " + " | ".join([c["label"], *(format_difference(c[m], m) for m in metrics)]) + " |")
    lines += ["", legend(rows, extractor)]
    if _has_paper(table):
        from ig.report.results import PAPER_GRADE_LEGEND

        lines[-1] += f" Paper numbers: {PAPER_GRADE_LEGEND}; ours − paper includes a figure reading's own error."
    return "\n".join(lines) + "\n"


def legend(rows: list[dict], extractor: str | None) -> str:
    seeds = max((r["seeds"] for r in rows), default=1)
    text = "Ours: value ± sampling standard error (bootstrap over generated samples)"
    if seeds > 1:
        text += (
            "; over several training seeds, each sampled from its own noise: their mean ± its standard error "
            "(the spread over seeds / √n: training and sampling noise together)"
        )
    text += (
        ". Differences: ± their standard error (paired: same sampling seeds; over seeds: their spread / √n), "
        "and whether the 95 % interval excludes 0 (`ig.evaluation.uncertainty.verdict`); seeds against one "
        "seed: the one seed shares the first seed's noise (`mixed_difference`)."
    )
    if extractor:
        text += f" Feature space: `{extractor}`."
    return text


def to_csv(table: dict, rows: list[dict], comparisons: list[dict]) -> str:
    import pandas as pd

    from ig.evaluation.uncertainty import verdict

    records = []
    for r in rows:
        record: dict[str, Any] = {"kind": "row", "setting": r["label"], "seeds": r["seeds"]}
        for m in table["metrics"]:
            c, d = r[m], r[f"{m}_vs_paper"]
            record |= {
                m: None if c is None else c.value,
                f"{m}_se": None if c is None else c.error.se,  # the ± shown: training and sampling noise
                f"{m}_sampling_se": None if c is None else c.sampling_se,
                f"{m}_seed_std": None if c is None else c.seed_std,
                f"{m}_paper": None if r[f"{m}_paper"] is None else r[f"{m}_paper"].value,
                f"{m}_paper_grade": None if r[f"{m}_paper"] is None else r[f"{m}_paper"].grade,
                f"{m}_minus_paper": None if d is None else d.delta,
                f"{m}_vs_paper": None if d is None else verdict(d, m),
            }
        records.append(record)
    for comparison in comparisons:
        record = {"kind": "comparison", "setting": comparison["label"]}
        for m in table["metrics"]:
            d = comparison[m]
            record |= {m: None if d is None else d.delta, f"{m}_se": None if d is None else d.se}
            record[f"{m}_verdict"] = None if d is None else verdict(d, m)
        records.append(record)
    return pd.DataFrame(records).to_csv(index=False)


def to_latex(table: dict, rows: list[dict], comparisons: list[dict]) -> str:
    from ig.report.results import METRIC_NAMES

    metrics = table["metrics"]
    paper = _has_paper(table)
    per_metric = ("paper", "ours", "$\\Delta$") if paper else ("",)
    cols = "l" + "r" * len(per_metric) * len(metrics)
    head = [
        " & ".join(["Setting"] + [rf"\multicolumn{{{len(per_metric)}}}{{c}}{{{METRIC_NAMES[m]}}}" for m in metrics])
    ]
    if paper:
        head.append(" & ".join([""] + [" & ".join(per_metric)] * len(metrics)))
    body = []
    for r in rows:
        cells = [_latex_escape(r["label"])]
        for m in metrics:
            ours = format_cell(r[m], m).replace("±", r"$\pm$")
            if paper:
                ref, d = r[f"{m}_paper"], r[f"{m}_vs_paper"]
                cells += [
                    "--"
                    if ref is None
                    else f"{ref.value:.{decimals(m)}f}" + {"†": r"$^\dagger$", "‡": r"$^\ddagger$"}.get(ref.mark, ""),
                    ours,
                    "--" if d is None else f"{d.delta:+.2f}",
                ]
            else:
                cells.append(ours)
        body.append(" & ".join(cells) + r" \\")
    for c in comparisons:
        cells = [_latex_escape(c["label"])]
        for m in metrics:
            d = c[m]
            text = "--" if d is None else f"{d.delta:+.{decimals(m)}f} $\\pm$ {d.se:.{decimals(m)}f}"
            cells += [""] * (len(per_metric) - 1) + [text]
        body.append(" & ".join(cells) + r" \\")
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{_latex_escape(table['title'])}}}",
            rf"\begin{{tabular}}{{{cols}}}",
            r"\toprule",
            *(h + r" \\" for h in head),
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


def pending_section(results, campaign: campaign_mod.Campaign, table: dict) -> str:
    """The table's cells that are pending (shown as –), each with why and what to do."""
    from ig.report.results import pending_lines

    sets = [s for row in table["rows"] for s in campaign.row_sets(row["ours"])]
    sets += [s for c in table.get("comparisons", []) for side in ("a", "b") for s in campaign.row_sets(c[side])]
    lines = pending_lines(results, sets)
    return "\n**Pending** (shown as –):\n\n" + "\n".join(lines) + "\n" if lines else ""


def write_tables(campaign: campaign_mod.Campaign, paper_csv: str | Path, out_dir: str | Path) -> list[Path]:
    from ig.report.results import load_paper, load_results

    results = load_results(campaign)
    metrics = results.metrics
    paper = load_paper(paper_csv)
    extractor = next((m.extractor for m in metrics.values()), None)
    written = []
    for table in campaign.config["tables"]:
        rows, comparisons = build_rows(campaign, table, metrics, paper), build_comparisons(campaign, table, metrics)
        base = Path(out_dir) / table["name"]
        for suffix, text in (
            (".csv", to_csv(table, rows, comparisons)),
            (".tex", to_latex(table, rows, comparisons)),
            (".md", to_markdown(table, rows, comparisons, extractor) + pending_section(results, campaign, table)),
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
