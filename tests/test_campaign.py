"""The workflow config: one-line errors at parse time, seeds and sample-set expansion, paths,
tables with errors, paired comparisons and verdicts, and the compute plan."""

import copy
import math
from pathlib import Path

import pytest
import yaml

from ig.campaign import TUNING_SEED_OFFSET, Campaign, SampleSet, validate
from ig.errors import IGError
from ig.report import plan as plan_mod
from ig.report.tables import write_tables
from ig.sampling.settings import SamplingSettings
from tests.fake_results import fake_results

ROOT = Path(__file__).resolve().parents[1]


def _config(*names: str) -> dict:
    """A config file, or several merged in order as `snakemake --configfile a b` merges them."""
    from snakemake.utils import update_config

    config: dict = {}
    for name in names or ("config.yaml",):
        update_config(config, yaml.safe_load((ROOT / "config" / name).read_text()))
    return config


def _campaign(config: dict, dry_run: bool = False) -> Campaign:
    return Campaign(validate(copy.deepcopy(config)), dry_run)


@pytest.mark.parametrize(
    "names",
    [["config.yaml"], ["paper.yaml"], ["smoke.yaml"], ["ablations.yaml"], ["ablations.yaml", "ablations-ci.yaml"]],
)
def test_shipped_configs_validate(names):
    _campaign(_config(*names), dry_run=True)


def _set_ig_milestones(c, value):
    c["runs"]["ig"]["milestones"] = value


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c.update(datta={}), "Additional properties are not allowed \\('datta'"),
        (lambda c: c["sampling"].update(steps="many"), "sampling.steps: 'many' is not of type 'integer'"),
        (lambda c: c["sampling"].update(method="dpm"), "sampling method must be one of"),
        (lambda c: _set_ig_milestones(c, ["epoch6"]), "milestones.0: 'epoch6' does not match"),
        (
            lambda c: _set_ig_milestones(c, ["ep8", "ep4"]),
            r"runs.ig.milestones: ep4 \(step \d+\) does not come after ep8",
        ),
        (lambda c: _set_ig_milestones(c, ["ep4", "ep8", "ep4"]), "runs.ig.milestones: ep4 listed twice"),
        (lambda c: c["runs"]["ig"]["train"].update(lr=0.1), "runs.ig.train: run config key 'lr' is unknown"),
        (lambda c: c["runs"]["ig"]["train"].update(ema_decay=2), "ema_decay' must lie in"),
        (lambda c: c["runs"]["ig"]["train"]["model"].update(ig_layer=9), "ig_layer=9 is outside 0..6"),
        (lambda c: c["runs"]["baseline"]["train"]["loss"].update(lam=0.5), "model.ig_layer is 0"),
        (lambda c: c["evaluations"].append({"runs": ["baseline"], "guidance": ["ig2"]}), "uses IG on run 'baseline'"),
        (lambda c: c["evaluations"].append({"runs": ["nope"], "guidance": ["none"]}), "unknown name 'nope'"),
        (lambda c: c["guidance"].update(bad={"ig_interval": [0.9, 0.1]}), "guidance.bad: .*low < high"),
        (lambda c: c["plots"]["methods"].update(guidnace=["none"]), "plots.methods: Additional properties"),
        (lambda c: c["plots"]["ig_scale"].update(metrics=["fd"]), "plots.ig_scale.metrics.0: 'fd' is not one of"),
        (lambda c: c["latents"]["tiny"]["dataset"].update(root="/no/such/folder"), "folder /no/such/folder does not"),
        (lambda c: c["runs"]["ig"].update(seeds=[0, 0]), "lists a seed twice"),
        (lambda c: c["runs"]["ig"].update(seeds=[1]), "give either seeds or train.seed"),
        (
            lambda c: c["plots"]["methods"].update(guidance=["none", "ig9"]),
            "plots.methods.guidance: unknown guidance 'ig9'",
        ),
        (lambda c: c["evaluation"]["metrics"].update(bootstrap=1), "evaluation.metrics.bootstrap: 1 is less than"),
        (lambda c: c["evaluation"]["metrics"].update(bootstrapp=50), "evaluation.metrics: Additional properties"),
        (lambda c: c["evaluation"]["classifier"].update(epoch=1), "evaluation.classifier: Additional properties"),
        (lambda c: c["latents"]["tiny"]["autoencoder"]["train"].update(step=5), "autoencoder.train: Additional"),
        (lambda c: c["claims"][0].pop("margin"), "claims.0: a 'matches' claim needs a margin"),
        (lambda c: c["claims"][2].pop("curve"), r"claims.2: a curve .* is needed by, kind: matched"),
        (lambda c: c["claims"][1].update(curve=["none", "cfg2"]), r"claims.1: a curve .* belongs to"),
        (lambda c: c["claims"][2].update(match="recall"), "claims.2: match 'recall' is the compared metric"),
        (lambda c: c["claims"][2]["curve"].append("cfg9"), "claims.2.curve: unknown guidance 'cfg9'"),
    ],
)
def test_bad_configs_fail_with_one_line_when_the_workflow_parses(edit, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/ here: a campaign already encoded needs no dataset folder
    config = _config()
    edit(config)
    with pytest.raises(IGError, match=message) as err:
        _campaign(config)
    assert "\n" not in str(err.value)


def test_a_missing_dataset_folder_only_warns_in_a_dry_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config()
    config["latents"]["tiny"]["dataset"]["root"] = "/no/such/folder"
    _campaign(config, dry_run=True)
    assert "warning: config: latents.tiny.dataset.root: folder /no/such/folder" in capsys.readouterr().err


def test_sample_sets_expand_evaluations_and_table_rows():
    c = _campaign(_config())
    sets = c.sample_sets()
    assert SampleSet("baseline", "ep4", "none", "random") in sets
    assert SampleSet("ig", "ep8", "ig1.5+cfg1.5", "random") in sets
    assert not any(s.run == "baseline" and s.guidance != "none" for s in sets)
    assert len(sets) == len(set(sets))
    assert c.previous("ig", "ep8") == "ep4" and c.previous("ig", "ep4") is None


def test_training_seeds_expand_into_one_run_each():
    config = _config()
    del config["runs"]["ig"]["train"]["seed"]
    config["runs"]["ig"]["seeds"] = [0, 1, 2]
    c = _campaign(config)
    assert c.groups["ig"] == ["ig.s0", "ig.s1", "ig.s2"]
    assert [c.run_config(r).seed for r in c.groups["ig"]] == [0, 1, 2]
    assert c.group_of("ig.s1") == "ig" and c.milestones("ig") == ["ep4", "ep8"]
    sets = c.sample_sets()
    assert {s.run for s in sets} == {"baseline", "ig.s0", "ig.s1", "ig.s2"}
    assert c.checkpoint("ig.s2", "ep8") == "results/embedded/runs/ig.s2/ep8.pt"
    assert len(c.row_sets({"run": "ig", "milestone": "ep8", "guidance": "ig2"})) == 3
    # each training seed its own sampling noise; the first seed shares the single-seed runs'
    assert [c.sampling(r).seed for r in c.groups["ig"]] == [0, 1, 2] and c.sampling("baseline").seed == 0
    # ig tune chooses on a held-out stream of sampling seeds, not on the samples the tables report
    tuning = c.tuning_sampling("ig-cfg")
    assert tuning.seed not in {c.sampling(r).seed for r in c.runs} and tuning.seed == TUNING_SEED_OFFSET


def test_paths_come_from_one_layout_with_wildcards_left_for_rules():
    c = _campaign(_config())
    assert c.path("checkpoint") == "results/embedded/runs/{run}/{milestone}.pt"
    assert c.path("checkpoint", run="ig") == "results/embedded/runs/ig/{milestone}.pt"
    s = SampleSet("ig", "ep8", "ig2", "random")
    assert c.metrics(s) == "results/embedded/metrics/ig/ep8/ig2/random.json"


def test_sampling_defaults_live_in_the_settings_and_runs_override_them():
    config = _config()
    config["sampling"].pop("shard_size")
    config["runs"]["ig"]["sampling"] = {"steps": 7}
    c = _campaign(config)
    assert c.sampling("ig").shard_size == SamplingSettings().shard_size
    assert c.sampling("ig").sampler.steps == 7 and c.sampling("baseline").sampler.steps == config["sampling"]["steps"]
    assert c.config["latents"]["tiny"]["dataset"]["root"] is None  # schema default filled


# --- tables ------------------------------------------------------------------------------------------
def test_tables_show_errors_paper_gaps_and_paired_comparisons(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config()
    config["tables"] = [
        {
            "name": "t",
            "title": "t",
            "metrics": ["fid"],
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
                {"label": "baseline", "ours": {"run": "baseline", "milestone": "ep8"}},
            ],
            "comparisons": [
                {
                    "label": "IG w=2 vs none",
                    "a": {"run": "ig", "milestone": "ep8", "guidance": "ig2"},
                    "b": {"run": "ig", "milestone": "ep8"},
                },  # fmt: skip
                {
                    "label": "IG w=3 vs none",
                    "a": {"run": "ig", "milestone": "ep8", "guidance": "ig3"},
                    "b": {"run": "ig", "milestone": "ep8"},
                },  # fmt: skip
            ],
        }
    ]
    c = _campaign(config)
    fake_results(
        c, {("ig", "none"): lambda i, m: 1.80, ("ig", "ig2"): lambda i, m: 1.70, ("ig", "ig3"): lambda i, m: 1.79}
    )
    write_tables(c, ROOT / "results/paper/numbers.csv", tmp_path / "tables")
    md = (tmp_path / "tables/t.md").read_text()
    # paper: SiT+IG 800 ep without CFG has FID 1.75; ours 1.80 ± 0.05 is within noise of it
    assert "| ours vs SiT+IG 800 | 1.75 | 1.80 ± 0.05 | +0.05 ± 0.05 within noise |" in md
    assert "| baseline | – | 3.00 ± 0.05 | – |" in md
    # paired: the shared noise cancels, so 0.10 is far outside noise, and 0.01 still inside
    assert "| IG w=2 vs none | -0.10 ± 0.01 better |" in md
    assert "| IG w=3 vs none | -0.01 ± 0.01 within noise |" in md
    assert "test-features" in md and "verdict" in md
    csv = (tmp_path / "tables/t.csv").read_text()
    assert "fid_vs_paper" in csv and "fid_verdict" in csv
    assert "\\toprule" in (tmp_path / "tables/t.tex").read_text()


def test_tables_aggregate_training_seeds_and_judge_over_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config()
    del config["runs"]["ig"]["train"]["seed"]
    config["runs"]["ig"]["seeds"] = [0, 1, 2]
    config["tables"] = [
        {
            "name": "s",
            "title": "seeds",
            "metrics": ["fid"],
            "rows": [{"label": "ig", "ours": {"run": "ig", "milestone": "ep8"}}],
            "comparisons": [
                {
                    "label": "w=2 vs none",
                    "a": {"run": "ig", "milestone": "ep8", "guidance": "ig2"},
                    "b": {"run": "ig", "milestone": "ep8"},
                }
            ],  # fmt: skip
        }
    ]
    c = _campaign(config)
    fake_results(c, {("ig", "none"): lambda i, m: [2.0, 2.2, 2.4][i], ("ig", "ig2"): lambda i, m: [1.9, 2.0, 2.3][i]})
    write_tables(c, ROOT / "results/paper/numbers.csv", tmp_path / "tables")
    md = (tmp_path / "tables/s.md").read_text()
    assert "| ig | 2.20 ± 0.12 (3 seeds) |" in md  # mean ± std / √3 over seeds (each its own sampling noise)
    # per-seed differences -0.1, -0.2, -0.1: mean -0.13, se 0.03; Student t with 2 dof: 4.30 × 0.03 > 0.13
    assert "| w=2 vs none | -0.13 ± 0.03 within noise |" in md


def test_a_stale_or_missing_cell_is_pending_and_the_others_are_built(tmp_path, monkeypatch):
    """A retrained checkpoint, a changed guidance scale or a failed evaluation: that cell is pending
    with its reason (and the repair or the log to read); every other cell is still in the table."""
    monkeypatch.chdir(tmp_path)
    config = _config()
    c = _campaign(config)
    fake_results(c, {})
    Path(c.checkpoint("baseline", "ep8")).write_bytes(b"retrained")  # samples of an earlier checkpoint
    Path(c.metrics(SampleSet("ig", "ep8", "cfg1.5", "random"))).unlink()  # its evaluation failed:
    log = Path(c.log("evaluate", SampleSet("ig", "ep8", "cfg1.5", "random")))
    log.parent.mkdir(parents=True)
    log.write_text("Traceback ...")
    config["guidance"]["ig3"]["ig_scale"] = 3.5  # the config changed since ig3 was sampled
    c = _campaign(config)
    write_tables(c, ROOT / "results/paper/numbers.csv", tmp_path / "tables")
    md = (tmp_path / "tables/embedded.md").read_text()
    pending = md.split("**Pending**")[1]
    assert (
        "`baseline/ep8/none/random`: out of date: its samples come from an earlier version of the checkpoint" in pending
    )
    assert (
        "repair: snakemake <your flags> --force results/embedded/samples/baseline/ep8/none/random/samples.json"
        in pending
    )
    assert f"`ig/ep8/cfg1.5/random`: not evaluated: the evaluate job failed or was interrupted; see {log}" in pending
    assert "`ig/ep8/ig3/random`: out of date: its samples were made with settings the config no longer has" in pending
    assert "| + IG w=2 | 3.00 ± 0.05 |" in md and "| + IG w=3 | – |" in md  # built; pending


def test_plan_counts_jobs_and_scales_with_the_budget():
    config = _config("paper.yaml")
    p = plan_mod.plan(_campaign(config, dry_run=True))
    n_sets = len(p["sample_sets"])
    assert p["totals"]["jobs"]["sample"] == n_sets and n_sets > 10
    # SiT-XL/2: 118.6 GMACs per forward (DiT paper) = 237 GFLOPs
    xl = [r for r in p["runs"].values() if r["model"] == "SiT-XL/2"]
    assert xl and all(abs(r["gflops_forward"] - 237.2) < 1.0 for r in xl)
    # disk: SiT-XL/2 + head is 677.8M float32 parameters (2.71 GB per milestone), its full state with
    # AdamW 4× (weights, EMA, two moments), with Muon 3×, three of them at once at most;
    # a 50K set of 256² RGB uint8 images is 9.83 GB
    trained = p["runs"]["sit-xl-ig"]
    assert abs(trained["milestone_gb"] - 677_786_144 * 4 / 1e9) < 1e-9
    assert trained["full_state_gb"] == pytest.approx(4 * trained["milestone_gb"])
    assert p["runs"]["ldit-xl-ig"]["full_state_gb"] == pytest.approx(3 * p["runs"]["ldit-xl-ig"]["milestone_gb"])
    assert trained["disk_gb"] == pytest.approx(
        trained["milestone_gb"] * (len(config["runs"]["sit-xl-ig"]["milestones"]) + 12)
    )
    assert {round(s["disk_gb"], 2) for s in p["sample_sets"]} == {9.83}
    # doubling the assumed throughput halves the estimate
    config.setdefault("estimates", {})["train_tflops"] = 2 * plan_mod.DEFAULT_ESTIMATES["train_tflops"]
    p2 = plan_mod.plan(_campaign(config, dry_run=True))
    assert abs(p2["totals"]["train_gpu_hours"] * 2 - p["totals"]["train_gpu_hours"]) < 1e-6


def test_time_limits_follow_from_the_plan_and_warn_past_the_partitions_longest():
    """Each segment's wall time is its share of the run's steps on the run's GPUs; fp32 sampling runs
    at half bf16's rate; a job's limit is its estimate × 1.5 + 15 min, and ig plan names the jobs over
    the partition's longest."""
    config = _config("paper.yaml")
    c = _campaign(config, dry_run=True)
    p = plan_mod.plan(c)
    run = p["runs"]["sit-xl-ig"]
    assert sum(run["segment_hours"].values()) * config["runs"]["sit-xl-ig"]["gpus"] == pytest.approx(
        run["train_gpu_hours"]
    )
    key = next(s["set"] for s in p["sample_sets"] if s["set"].startswith("sit-xl-ig/"))
    hours = plan_mod.job_hours(p, "sample", key)
    assert plan_mod.runtime_minutes(hours) == math.ceil(hours * 90) + 15
    config["sampling"]["precision"] = "bf16"
    assert plan_mod.job_hours(plan_mod.plan(_campaign(config, dry_run=True)), "sample", key) == pytest.approx(hours / 2)
    rule, (job, longest) = "tune", plan_mod.longest_jobs(p)["tune"]
    warnings = plan_mod.limit_warnings(p, max_minutes=plan_mod.runtime_minutes(longest) - 1)
    assert any(w.startswith(f"warning: {rule} {job} needs a ") for w in warnings)
    assert plan_mod.limit_warnings(p, max_minutes=10**6) == []
