"""The Snakemake workflow: the paper's DAG plans in a dry run on any machine, writing nothing; config
files are synced by real runs only; training segments are laid out on one node or across nodes;
the conda and apptainer deployments resolve; the ablations config runs end to end in its CI cut; and
through the real loopback SLURM the smoke campaign survives a training job cancelled mid-segment, and
a two-GPU segment starts as two srun tasks."""

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from ig.campaign import load
from tests.conftest import REPO_ROOT

PAPER = ["--configfile", str(REPO_ROOT / "config/paper.yaml")]
SLURM_PROFILE = ["--profile", str(REPO_ROOT / "profiles/slurm")]


def snakemake(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = ["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "--directory", str(cwd), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def files_written(folder: Path) -> list[str]:
    """Every file under ``folder`` except Snakemake's own bookkeeping (.snakemake/)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".snakemake" not in p.parts)


def jobs(log: str, rule: str) -> list[dict[str, str]]:
    """The jobs of ``rule`` in a dry run's log: their resources, plus "shell" (the command)."""
    found = []
    for block in re.split(r"\n(?=\[)", log):
        if re.search(rf"^(local)?rule {rule}:", block, flags=re.M):
            resources = re.search(r"^\s+resources: (.*)$", block, flags=re.M).group(1)
            job = dict(item.split("=", 1) for item in resources.split(", "))
            job["shell"] = re.search(r"^Shell command: (.*)$", block, flags=re.M).group(1)
            found.append(job)
    return found


def test_paper_dry_run_plans_every_experiment_and_writes_nothing(tmp_path):
    args = ["-n", *SLURM_PROFILE, *PAPER]
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
    # from a fresh folder, every job's spec (ig.campaign.specs) is planned first, as a local job
    specs = load(REPO_ROOT / "config/paper.yaml", dry_run=True).specs.jobs()
    assert counts["spec"] == str(len(specs)) and "tuning/sit-xl-ig" in "\n".join(specs)
    assert files_written(tmp_path) == []
    print(f"paper dry run: {elapsed:.1f} s")


def test_lint_is_clean_and_writes_nothing(tmp_path):
    result = snakemake(["--lint", *PAPER], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert files_written(tmp_path) == []


def test_the_ablations_config_runs_end_to_end_in_its_ci_cut(tmp_path):
    """config/ablations.yaml with the ablations-ci overlay on real Fashion-MNIST: every stage, table,
    plot and claim of the full run (training seeds, the curve, steps-to-reach), only smaller."""
    configs = [str(REPO_ROOT / "config/ablations.yaml"), str(REPO_ROOT / "config/ablations-ci.yaml")]
    result = snakemake(
        ["--profile", str(REPO_ROOT / "profiles/local"), "--configfile", *configs], tmp_path, timeout=1500
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    root = tmp_path / "results/ablations-ci"
    readme = (root / "README.md").read_text()
    claims = yaml.safe_load((REPO_ROOT / "config/ablations.yaml").read_text())["claims"]
    assert all(f"| {c['claim']} |" in readme for c in claims)
    assert "- `baseline`: SiT-T/2 with 12 blocks of width 128, no intermediate head" in readme
    table = (root / "tables/ablations.md").read_text()
    assert "| SiT-B/2 (baseline) |" in table and " ± " in table
    assert all((root / f"plots/{name}.png").is_file() for name in ("training", "ig_scale", "interval", "methods"))


def test_training_segments_run_on_one_node_or_as_srun_tasks_across_nodes(tmp_path):
    """A run's GPUs on one node: one task, torchrun, pinned to one node. More GPUs than a node has
    (IG_SLURM_GPUS_PER_NODE): one srun task per GPU across nodes, as an `mpi` job whose tasks the
    SLURM plugin turns into --ntasks (tasks_per_gpu keeps them from becoming --ntasks-per-gpu)."""
    env = {**os.environ, "IG_SLURM_GPUS_PER_NODE": "4"}
    for gpus_per_node, expect_srun in (("8", False), ("4", True)):
        env["IG_SLURM_GPUS_PER_NODE"] = gpus_per_node
        result = snakemake(["-n", *SLURM_PROFILE, *PAPER], tmp_path, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        eight = [j for j in jobs(result.stdout, "train_segment") if j["gpu"] == "8"]
        assert eight, "the paper has 8-GPU runs"
        for job in eight:
            if expect_srun:
                assert (job["nodes"], job["mpi"], job["tasks"], job["tasks_per_gpu"]) == ("2", "srun", "8", "1"), job
                assert job["shell"].startswith('srun -n 8 --cpus-per-task="$OMP_NUM_THREADS" python -m ig train ')
            else:
                assert job["nodes"] == "1" and not {"mpi", "tasks", "tasks_per_gpu"} & set(job), job
                assert job["shell"].startswith("torchrun --standalone --nproc_per_node=8 -m ig train ")
            assert "--tensorboard results/imagenet256/runs/" in job["shell"]


def fake_tool(folder: Path, name: str, answers: dict[str, str]) -> None:
    """A stand-in command answering a few first arguments (what Snakemake asks before deploying)."""
    cases = "".join(f"  {arg}) echo '{out}' ;;\n" for arg, out in answers.items())
    (folder / name).write_text(f'#!/bin/sh\ncase "$1" in\n{cases}  *) exit 1 ;;\nesac\n')
    (folder / name).chmod(0o755)


def test_conda_and_apptainer_deployments_resolve_for_every_rule(tmp_path):
    """No conda or apptainer here: stand-ins answer Snakemake's version and config checks, and the
    dry runs show that every job gets the environment file and the container image."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    info = json.dumps({"conda_prefix": "/nonexistent", "platform": "linux-64", "envs_dirs": []})
    fake_tool(bin_dir, "conda", {"--version": "conda 24.7.1", "info": info, "config": '{"get": {}}'})
    fake_tool(bin_dir, "apptainer", {"--version": "apptainer version 1.3.4"})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "IG_CONTAINER": "docker://example/ig:1"}
    conda = snakemake(["-n", *PAPER, "--software-deployment-method", "conda"], tmp_path / "c", env=env)
    assert conda.returncode == 0, conda.stderr[-3000:]
    assert f"Conda environment {REPO_ROOT}/workflow/rules/../envs/ig.yaml will be created" in conda.stdout
    apptainer = snakemake(["-n", *PAPER, "--software-deployment-method", "apptainer"], tmp_path / "a", env=env)
    assert apptainer.returncode == 0, apptainer.stderr[-3000:]
    assert "Singularity image docker://example/ig:1 will be pulled" in apptainer.stdout


def test_environment_post_deploy_installs_this_repository(tmp_path):
    """The conda environment gets ig and pyproject.toml's pins from the repository, whatever the
    working directory (a stand-in python records what pip is asked to do)."""
    (tmp_path / "python").write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n')
    (tmp_path / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    script = REPO_ROOT / "workflow/rules/../envs/ig.post-deploy.sh"  # the path Snakemake gives it
    subprocess.run(["/usr/bin/env", "bash", str(script)], cwd=tmp_path, env=env, check=True)
    assert (tmp_path / "args").read_text().split() == [
        "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check", "-e", str(REPO_ROOT)
    ]  # fmt: skip


def test_software_pins_are_defined_once_in_pyproject():
    """The conda files and the container recipe install the repository and list no package of their
    own beyond Python and pip, all on the same Python."""
    python = re.search(r'requires-python = ">=(\d+\.\d+)"', (REPO_ROOT / "pyproject.toml").read_text()).group(1)
    for path in ("environment.yml", "workflow/envs/ig.yaml"):
        deps = yaml.safe_load((REPO_ROOT / path).read_text())["dependencies"]
        conda = [d for d in deps if isinstance(d, str)]
        pip = [d for d in deps if isinstance(d, dict)]
        assert conda == [f"python={python}", "pip"], path
        assert pip in ([], [{"pip": ["-e ."]}]), path
    recipe = (REPO_ROOT / "workflow/containers/ig.def").read_text()
    assert f"From: python:{python}-" in recipe and "pyproject.toml /opt/ig/pyproject.toml" in recipe
    installs = re.findall(r"pip install (.*)", recipe)
    assert installs == ["--no-cache-dir --disable-pip-version-check /opt/ig"], installs


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
    # every stage delivered, autoguidance (it20 as the weak model) included
    delivered = ["tables/smoke.md", "plots/methods.png", "metrics/ig/it300/ig2+cfg/random.json", "runs/ig/it300.pt"]
    for path in [*delivered, "metrics/ig/it300/ag/random.json"]:
        assert (root / path).is_file(), path
    metrics = json.loads((root / "metrics/ig/it300/ig2/random.json").read_text())
    assert metrics["num_samples"] == 128 and metrics["fid"] > 0


@pytest.mark.slurm
def test_two_gpu_segment_starts_as_two_srun_tasks_on_the_loopback_cluster(slurm_cluster, tmp_path):
    """IG_SLURM_LAUNCHER=srun: the real train_segment rule is submitted as one job of two tasks on one
    node (the plugin's mpi path), and its shell starts `ig train` as two srun tasks. Both ranks join:
    rank 0 logs a world of two processes, and the milestone exists only if both finished every step."""
    from ig.train.benchmarks import write_random_latents

    config = yaml.safe_load((REPO_ROOT / "config/smoke.yaml").read_text())
    config["runs"]["ig"]["gpus"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    write_random_latents(tmp_path / "results/smoke/latents/tiny", 64, (4, 8, 8), 10)  # instead of encoding
    env = {**slurm_cluster.env, "IG_SLURM_LAUNCHER": "srun"}
    args = ["--profile", str(REPO_ROOT / "profiles/ci-slurm"), "--configfile", str(tmp_path / "c.yaml")]
    args = ["results/smoke/runs/ig/it20.pt", "--allowed-rules", "train_segment", "spec", *args]
    result = snakemake(args, tmp_path, env=env, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert 'srun -n 2 --cpus-per-task="$OMP_NUM_THREADS" python -m ig train ' in log
    assert "2 process(es)" in (tmp_path / "logs/smoke/train/ig/it20.log").read_text()
    assert (tmp_path / "results/smoke/runs/ig/it20.pt").is_file()
    job_id = re.findall(r"submitted with SLURM jobid (\d+)", log)[-1]
    job = slurm_cluster.run(["scontrol", "show", "job", job_id]).stdout
    assert re.search(r"\bNumNodes=1\b", job) and re.search(r"\bNumTasks=2\b", job), job
    assert re.search(r"gres[:/]gpu[:=]2", job), job  # the two GPUs, one task each (NtasksPerTRES=1)
    assert "NtasksPerTRES=1" in job, job
