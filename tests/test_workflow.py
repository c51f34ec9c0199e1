"""The Snakemake workflow: the paper's DAG plans in a dry run on any machine, and the smoke
campaign runs through the real loopback SLURM, surviving a training job cancelled mid-segment."""

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def snakemake(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = ["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "--directory", str(cwd), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_paper_dry_run_plans_every_experiment(tmp_path):
    args = ["-n", "--profile", str(REPO_ROOT / "profiles/slurm"), "--configfile", str(REPO_ROOT / "config/paper.yaml")]
    start = time.monotonic()
    result = snakemake(args, tmp_path)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "# Compute plan: imagenet256" in out and "GPU-hours" in out
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.M))
    # 13 + 19 + 5×4 + 4 milestones = 56 segments; the released checkpoints are imported
    assert counts["train_segment"] == "56" and counts["import_checkpoint"] == "3"
    assert counts["sample"] == counts["evaluate"] and int(counts["sample"]) >= 40
    for target in ("tables", "plots", "toy2d", "fetch_assets", "reference_stats", "latent_manifest"):
        assert target in counts, target
    assert counts["latent_manifest"] == "2"  # SD-VAE and VA-VAE latents
    print(f"paper dry run: {elapsed:.1f} s")


def test_a_bad_config_stops_the_workflow_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    text = (REPO_ROOT / "config/smoke.yaml").read_text().replace("steps: 6", "steps: six")
    bad.write_text(text)
    result = snakemake(["-n", "--configfile", str(bad)], tmp_path)
    assert result.returncode != 0
    assert "config: sampling.steps: 'six' is not of type 'integer'" in result.stdout + result.stderr


def _cancel_training_mid_segment(cluster, workdir: Path, done: dict) -> None:
    """Wait until the long segment has written a resume file, then scancel its SLURM job."""
    resume = workdir / "results/smoke/runs/ig/work-it300/resume.pt"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and not done.get("stop"):
        if resume.is_file():
            jobs = cluster.run(["squeue", "-h", "-o", "%i|%k|%T"]).stdout.splitlines()
            for line in jobs:
                job_id, comment, state = line.split("|")
                if "rule_train_segment" in comment and "it300" in comment and state == "RUNNING":
                    cluster.run(["scancel", job_id])
                    done["cancelled"] = job_id
                    return
        time.sleep(0.5)


@pytest.mark.slurm
def test_smoke_campaign_through_slurm_resumes_a_cancelled_segment(slurm_cluster, tmp_path):
    done: dict = {}
    watcher = threading.Thread(target=_cancel_training_mid_segment, args=(slurm_cluster, tmp_path, done))
    watcher.start()
    args = ["--profile", str(REPO_ROOT / "profiles/ci-slurm"), "--configfile", str(REPO_ROOT / "config/smoke.yaml")]
    try:
        result = snakemake(args, tmp_path, env=slurm_cluster.env, timeout=1500)
    finally:
        done["stop"] = True
        watcher.join()
    assert result.returncode == 0, result.stderr[-4000:]
    assert "cancelled" in done, "the training segment was never seen running with a resume file"

    root = tmp_path / "results/smoke"
    # the rerun continued from the resume file, and the log has every step exactly once
    log = (tmp_path / "logs/smoke/train/ig/it300.log").read_text()
    assert "from resume file" in log, log[-2000:]
    steps = [json.loads(line)["step"] for line in (root / "runs/ig/training.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 300
    assert not (root / "runs/ig/work-it300/resume.pt").exists()  # removed once the milestone exists
    # every stage delivered
    for path in ("tables/smoke.md", "plots/methods.png", "metrics/ig/it300/ig2+cfg/random.json", "runs/ig/it300.pt"):
        assert (root / path).is_file(), path
    metrics = json.loads((root / "metrics/ig/it300/ig2/random.json").read_text())
    assert metrics["num_samples"] == 128 and metrics["fid"] > 0
