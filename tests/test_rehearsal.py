"""The dress rehearsal of the paper (config/rehearsal.yaml over config/paper.yaml): it plans exactly the
paper's rules and its structure (runs, guidance, tuning targets, tables, plots, claims); through the
loopback SLURM and profiles/slurm it runs every rule on the stand-ins of ``ig rehearsal-assets``; and
a stand-in is refused outside a rehearsal."""

import json
import re
import shlex
import time
from pathlib import Path

import pytest
import yaml

from ig.assets import REHEARSAL_ENV, require
from ig.cli import main
from ig.errors import IGError
from ig.rehearsal import MODEL_SIZE, write_release
from tests.conftest import REPO_ROOT
from tests.test_workflow import jobs, snakemake

PAPER = REPO_ROOT / "config/paper.yaml"
REHEARSAL = REPO_ROOT / "config/rehearsal.yaml"
CONFIGS = ["--configfile", str(PAPER), str(REHEARSAL)]
SLURM_PROFILE = ["--profile", str(REPO_ROOT / "profiles/slurm")]


def merged() -> dict:
    """paper.yaml with rehearsal.yaml merged over it, as `--configfile paper rehearsal` merges them."""
    from snakemake.utils import update_config

    config = yaml.safe_load(PAPER.read_text())
    update_config(config, yaml.safe_load(REHEARSAL.read_text()))
    return config


def job_counts(log: str) -> dict[str, int]:
    """The rules and job counts of the "Job stats" table a (dry) run prints first."""
    table = log[log.index("Job stats:") :].split("\n\n")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "total"}


def finished_rules(log: str) -> set[str]:
    """The rules of which at least one job finished, from a real run's log."""
    return set(re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", log, flags=re.M))


def without_milestones(value):
    """``value`` with every milestone dropped: what the rehearsal keeps exactly as the paper has it."""
    if isinstance(value, dict):
        return {k: without_milestones(v) for k, v in value.items() if k not in ("milestone", "milestones")}
    if isinstance(value, list):
        return [without_milestones(v) for v in value]
    return value


def paper_dry_run(tmp_path: Path, *configs: str) -> dict[str, int]:
    result = snakemake(["-n", *SLURM_PROFILE, "--configfile", *configs], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return job_counts(result.stdout + result.stderr)


def test_the_rehearsal_plans_every_rule_of_the_paper(tmp_path):
    paper = paper_dry_run(tmp_path / "paper", str(PAPER))
    rehearsal = paper_dry_run(tmp_path / "rehearsal", str(PAPER), str(REHEARSAL))
    assert set(rehearsal) == set(paper), set(rehearsal) ^ set(paper)
    assert rehearsal["train_segment"] < paper["train_segment"] and rehearsal["import_checkpoint"] == 3


def test_the_rehearsal_keeps_the_papers_structure():
    """Names, tables, plots and claims as in the paper, milestones aside (the rehearsal's are steps,
    not 400K iterations); every model at the stand-ins' size."""
    paper, rehearsal = yaml.safe_load(PAPER.read_text()), merged()
    assert rehearsal["rehearsal"] is True and rehearsal["assets"] == paper["assets"]
    assert rehearsal["guidance"] == paper["guidance"]
    for key in ("tables", "claims", "plots"):
        assert without_milestones(rehearsal[key]) == without_milestones(paper[key]), key
    assert rehearsal["tuning"].keys() == paper["tuning"].keys()
    for target, spec in rehearsal["tuning"].items():
        for key in ("run", "space", "fixed"):
            assert spec.get(key) == paper["tuning"][target].get(key), (target, key)
    assert rehearsal["runs"].keys() == paper["runs"].keys()
    for name, run in rehearsal["runs"].items():
        if "import" in run:  # the release's asset, model, head and milestone; the stand-in's size
            model, release = run["import"]["overrides"], run["import"]
            size_aside = {k: v for k, v in model.items() if k not in MODEL_SIZE}
            assert {**release, "overrides": size_aside} == paper["runs"][name]["import"], name
        else:  # the paper's model, head and loss, as two DDP processes
            model, theirs = run["train"]["model"], paper["runs"][name]["train"]
            assert run["gpus"] == 2 and (model["name"], model["ig_layer"]) == (
                theirs["model"]["name"],
                theirs["model"]["ig_layer"],
            )
            assert run["train"]["loss"] == theirs["loss"] and run["train"]["optimizer"] == theirs["optimizer"], name
        assert {k: model[k] for k in MODEL_SIZE} == MODEL_SIZE, name


def test_multi_gpu_segments_pass_torchruns_parser(tmp_path):
    """torchrun reads every option-like word of its command line, also those after `-m ig`, and stops
    at one that abbreviates an option of its own (a bare --log: --log-dir); so does the paper's
    every multi-GPU segment."""
    from torch.distributed.run import get_args_parser

    result = snakemake(["-n", *SLURM_PROFILE, *CONFIGS], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    segments = jobs(result.stdout, "train_segment")
    trained = [run for run in merged()["runs"].values() if "train" in run]
    assert len(segments) == sum(len(run["milestones"]) for run in trained) == 12
    assert all(job["gpu"] == "2" for job in segments)
    for job in segments:
        command = shlex.split(job["shell"])
        assert command[:3] == ["torchrun", "--standalone", "--nproc_per_node=2"], command
        parsed = get_args_parser().parse_args(command[1 : command.index(">")])
        assert (parsed.module, parsed.training_script, parsed.training_script_args[0]) == (True, "ig", "train")


def test_a_stand_in_is_refused_outside_a_rehearsal(tmp_path, monkeypatch, capsys):
    """Loaders refuse a marked asset in one line, fetch-assets neither verifies nor fetches over it;
    with IG_REHEARSAL=1 (what the workflow sets for `rehearsal: true`) it imports like the release."""
    write_release(tmp_path, "sit-xl2-256")
    monkeypatch.delenv(REHEARSAL_ENV, raising=False)
    with pytest.raises(IGError, match=r"rehearsal stand-in with random weights .*REHEARSAL\); only a rehearsal"):
        require("sit-xl2-256", tmp_path)
    overrides = json.dumps({**MODEL_SIZE, "ig_layer": 0})
    out = tmp_path / "ep1400.pt"
    import_argv = ["import-checkpoint", "--model", "SiT-XL/2", "--asset", "sit-xl2-256", "--assets-dir", str(tmp_path),
                   "--autoencoder", "sd-vae:sd-vae-ft-ema", "--overrides", overrides, "--out", str(out)]  # fmt: skip
    fetch_argv = ["fetch-assets", "--assets-dir", str(tmp_path), "--only", "sit-xl2-256"]
    for argv, message in (
        (import_argv, "is a rehearsal stand-in with random weights"),
        ([*fetch_argv, "--verify"], "(a rehearsal stand-in with random weights, not the pinned files)"),
        (fetch_argv, "holds a rehearsal stand-in of 'sit-xl2-256'; fetch the real assets into another folder"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        error = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and message in error[-1] and error[-1].startswith("ig "), error
    assert not out.exists()
    monkeypatch.setenv(REHEARSAL_ENV, "1")
    main(import_argv)
    assert out.is_file()


@pytest.mark.slurm
def test_the_rehearsal_runs_every_rule_through_profiles_slurm(slurm_cluster, tmp_path):
    """The whole paper at toy size on the loopback cluster, through profiles/slurm with its site knobs
    set for a node of 2 CPUs and fake GPUs (profiles/README.md), the 2-GPU segments as two DDP
    processes on the CPU: every rule of the paper's DAG runs, and the tables, plots, claims README
    and report come out whole."""
    main(["rehearsal-assets", "--out", str(tmp_path / "assets-rehearsal")])
    env = slurm_cluster.env | {
        "IG_ALLOW_CPU": "1",
        "IG_SLURM_PARTITION": slurm_cluster.partition,
        "IG_SLURM_CPU_PARTITION": slurm_cluster.partition,
        "IG_SLURM_CPUS_PER_GPU": "1",
        "IG_SLURM_MAX_MEM_MB": "6000",
    }
    start = time.monotonic()
    result = snakemake(
        [*SLURM_PROFILE, *CONFIGS, "--slurm-init-seconds-before-status-checks", "2"], tmp_path, env, 3600
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    print(f"the rehearsal through the loopback SLURM: {time.monotonic() - start:.0f} s")
    assert finished_rules(log) == set(paper_dry_run(tmp_path / "paper", str(PAPER)))
    assert "torchrun --standalone --nproc_per_node=2 -m ig train " in log
    assert "2 process(es)" in (tmp_path / "logs/rehearsal/train/ldit-xl-ig/ep1.log").read_text()
    root, config = tmp_path / "results/rehearsal", merged()
    for table in config["tables"]:
        text = (root / f"tables/{table['name']}.md").read_text()
        assert all(f"| {row['label']} |" in text for row in table["rows"]) and " ± " in text, table["name"]
        assert "**Pending**" not in text, text
    assert all((root / f"plots/{name}.png").is_file() for name in config["plots"])
    readme = (root / "README.md").read_text()
    assert all(f"| {claim['claim']} |" in readme for claim in config["claims"]) and "not evaluated" not in readme
    assert "## The 2D toy" in readme
    report = snakemake([*CONFIGS, "--report", str(tmp_path / "report.html")], tmp_path, env)
    assert report.returncode == 0 and (tmp_path / "report.html").stat().st_size > 0, report.stderr[-3000:]
