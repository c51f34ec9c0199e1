"""The workflow config: schema errors as one line, sample-set expansion, tables and the plan."""

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ig import campaign as campaign_mod
from ig.campaign import Campaign, SampleSet, validate
from ig.errors import IGError
from ig.report import plan as plan_mod
from ig.report.tables import to_latex, to_markdown, write_tables

ROOT = Path(__file__).resolve().parents[1]


def _config(name: str = "config.yaml") -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml", "smoke.yaml"])
def test_shipped_configs_validate(name):
    Campaign(validate(_config(name)))


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c.update(datta={}), "Additional properties are not allowed \\('datta'"),
        (lambda c: c["sampling"].update(steps="many"), "sampling.steps: 'many' is not of type 'integer'"),
        (lambda c: c["runs"]["ig"].update(milestones=["epoch6"]), "milestones.0: 'epoch6' does not match"),
        (lambda c: c["evaluations"].append({"runs": ["nope"], "guidance": ["none"]}), "unknown run 'nope'"),
        (lambda c: c["guidance"].update(bad={"ig_interval": [0.9, 0.1]}), "low < high"),
        (lambda c: c["plots"]["methods"].update(guidnace=["none"]), "plots.methods: Additional properties"),
        (lambda c: c["plots"]["ig_scale"].update(metrics=["fd"]), "plots.ig_scale.metrics.0: 'fd' is not one of"),
    ],
)
def test_bad_configs_fail_with_one_line(edit, message):
    config = _config()
    edit(config)
    with pytest.raises(IGError, match=message) as err:
        Campaign(validate(config))
    assert "\n" not in str(err.value)


def test_sample_sets_expand_evaluations_and_table_rows():
    c = Campaign(validate(_config()))
    sets = c.sample_sets()
    assert SampleSet("baseline", "ep4", "none", "random") in sets
    assert SampleSet("ig", "ep8", "ig1.5+cfg1.5", "random") in sets
    assert not any(s.run == "baseline" and s.guidance != "none" for s in sets)
    assert len(sets) == len(set(sets))
    assert c.previous("ig", "ep8") == "ep4" and c.previous("ig", "ep4") is None


def test_schema_fills_defaults_without_touching_given_values():
    config = _config()
    config["sampling"].pop("shard_size")
    c = Campaign(validate(copy.deepcopy(config)))
    assert c.config["latents"]["tiny"]["dataset"]["root"] is None  # default filled
    assert c.sampling("ig")["shard_size"] == campaign_mod.DEFAULT_SAMPLING["shard_size"]
    assert c.sampling("ig")["steps"] == config["sampling"]["steps"]


def test_tables_put_paper_ours_and_difference_side_by_side(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config()
    config["tables"] = [
        {
            "name": "t",
            "title": "t",
            "metrics": ["fid", "is"],
            "rows": [
                {
                    "label": "ours vs SiT+IG 800",
                    "ours": {"run": "ig", "milestone": "ep8"},
                    "paper": {
                        "table": "main",
                        "method": "SiT+IG",
                        "epochs": 800,
                        "guidance": "none",
                        "labels": "random",
                    },
                },
                {"label": "no paper row", "ours": {"run": "baseline", "milestone": "ep8"}},
            ],
        }
    ]
    c = Campaign(validate(config))
    for i, s in enumerate(c.sample_sets()):
        path = Path(c.metrics(s))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fid": 2.0 + i, "is": 100.0, "extractor": "test-features"}))
    write_tables(c, ROOT / "results/paper/numbers.csv", tmp_path / "tables")
    md = (tmp_path / "tables/t.md").read_text()
    ig_fid = json.loads(Path(c.metrics(SampleSet("ig", "ep8", "none", "random"))).read_text())["fid"]
    # paper: SiT+IG 800 ep without CFG has FID 1.75 and IS 228.6
    assert f"| ours vs SiT+IG 800 | 1.75 | {ig_fid:.2f} | {ig_fid - 1.75:.2f} | 228.60 | 100.00 | -128.60 |" in md
    assert "| no paper row | – |" in md
    assert "test-features" in md
    assert (tmp_path / "tables/t.csv").is_file() and "\\toprule" in (tmp_path / "tables/t.tex").read_text()


def test_plan_counts_jobs_and_scales_with_the_budget():
    config = _config("paper.yaml")
    p = plan_mod.plan(Campaign(validate(copy.deepcopy(config))))
    n_sets = len(p["sample_sets"])
    assert p["totals"]["jobs"]["sample"] == n_sets and n_sets > 10
    # SiT-XL/2: 118.6 GMACs per forward (DiT paper) = 237 GFLOPs
    xl = [r for r in p["runs"].values() if r["model"] == "SiT-XL/2"]
    assert xl and all(abs(r["gflops_forward"] - 237.2) < 1.0 for r in xl)
    # doubling the assumed throughput halves the estimate
    config.setdefault("estimates", {})["train_tflops"] = 2 * plan_mod.DEFAULT_ESTIMATES["train_tflops"]
    p2 = plan_mod.plan(Campaign(validate(config)))
    assert abs(p2["totals"]["train_gpu_hours"] * 2 - p["totals"]["train_gpu_hours"]) < 1e-6


def test_tables_without_paper_numbers_show_only_ours():
    table = {
        "title": "t",
        "metrics": ["fid", "recall"],
        "rows": [{"label": "a", "ours": {"run": "r", "milestone": "m"}}],
    }
    frame = pd.DataFrame(
        [{"setting": "a", "fid_ours": 2.345, "recall_ours": 0.5, "fid_paper": None, "recall_paper": None}]
    )
    md = to_markdown(table, frame, None)
    assert "| Setting | FID | Rec. |" in md and "| a | 2.35 | 0.500 |" in md
    assert "paper" not in md and "paper" not in to_latex(table, frame)
