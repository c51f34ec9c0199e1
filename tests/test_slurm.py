"""Tests against the real single-node SLURM on loopback (`.ci/slurm-up.sh`).

They prove that the cluster the pipeline's CI relies on works end to end: the controller and
the node answer, batch jobs run job steps with srun, GPU (gres) requests are scheduled, and
Snakemake's SLURM executor submits and tracks a workflow through `profiles/ci-slurm`.

Tests marked `slurm` skip without a cluster; with IG_REQUIRE_SLURM=1 (CI) they fail instead.
The profile dry runs at the end need no cluster and run everywhere.
Jobs are tiny (1 CPU, seconds): the machine is shared.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, SlurmCluster, slurm_env


def sbatch_wait(cluster: SlurmCluster, tmp_path: Path, script: str, *extra: str) -> tuple[str, str]:
    """Submit `script` with `sbatch --wait`; return (job id, job output). Fails on non-zero exit."""
    out = tmp_path / "slurm-%j.out"
    args = ["sbatch", "--parsable", "--wait", f"--partition={cluster.partition}", "--ntasks=1"]
    args += ["--cpus-per-task=1", "--mem=100", "--time=2", "--job-name=ig-test", f"--output={out}"]
    proc = cluster.run([*args, *extra, "--wrap", script], timeout=180)
    job_id = proc.stdout.strip().split(";")[0]
    log = tmp_path / f"slurm-{job_id}.out"
    text = log.read_text() if job_id and log.exists() else ""
    failure = f"sbatch --wait failed (rc={proc.returncode}, job {job_id or '?'})"
    assert proc.returncode == 0, f"{failure}:\nstderr: {proc.stderr}\njob output:\n{text}"
    return job_id, text


def squeue_history(cluster: SlurmCluster) -> dict[str, tuple[str, str]]:
    """Job id -> (state, comment) for every job squeue still knows (MinJobAge keeps finished ones)."""
    proc = cluster.run(["squeue", "--noheader", "--states=all", "--format=%i|%T|%k"])
    assert proc.returncode == 0, proc.stderr
    rows = (line.split("|", 2) for line in proc.stdout.splitlines() if line.count("|") >= 2)
    return {job_id: (state, comment) for job_id, state, comment in rows}


@pytest.mark.slurm
def test_cluster_is_up(slurm_cluster: SlurmCluster) -> None:
    assert slurm_cluster.partition == "debug"
    assert slurm_cluster.gpus >= 1, "the loopback node should advertise fake GPUs (gres gpu:2)"
    proc = slurm_cluster.run(["scontrol", "ping"])
    assert proc.returncode == 0 and "UP" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slurm
def test_batch_job_runs_srun_step(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job_id, text = sbatch_wait(
        slurm_cluster, tmp_path, 'echo "batch $SLURM_JOB_ID"; srun -n1 bash -c \'echo "step $SLURM_STEP_ID"\''
    )
    assert f"batch {job_id}" in text
    assert "step 0" in text, f"srun inside the batch job did not run a step:\n{text}"
    assert squeue_history(slurm_cluster)[job_id][0] == "COMPLETED"


@pytest.mark.slurm
def test_gpu_request_gets_fake_gpu(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    # Slurm sets CUDA_VISIBLE_DEVICES from the gres, in the batch shell and in the step.
    script = 'echo "batch CVD=$CUDA_VISIBLE_DEVICES"; '
    script += "srun -n1 --gpus=1 bash -c 'echo \"step CVD=$CUDA_VISIBLE_DEVICES\"'"
    _, text = sbatch_wait(slurm_cluster, tmp_path, script, "--gpus=1")
    assert "batch CVD=0" in text, text
    assert "step CVD=0" in text, text


SNAKEFILE = """\
# `prepare` and `sample` are submitted by the SLURM executor. `sample` gets gpu=1 from the
# profiles' set-resources (it declares none itself, like the pipeline's rule of that name).
# `train_segment` declares its own gpu, as the pipeline's does; only the dry runs target it.
rule all:
    input:
        "out/b.txt",
    localrule: True


rule prepare:
    output:
        "out/a.txt",
    shell:
        'echo "prepare job=${{SLURM_JOB_ID:-local}} gpus=${{CUDA_VISIBLE_DEVICES:-none}}" > {output}'


rule sample:
    input:
        "out/a.txt",
    output:
        "out/b.txt",
    shell:
        'cat {input} > {output}; '
        'echo "sample job=${{SLURM_JOB_ID:-local}} gpus=${{CUDA_VISIBLE_DEVICES:-none}}" >> {output}'


rule train_segment:
    output:
        "out/{run}.pt",
    resources:
        gpu=lambda wc: 2,
    shell:
        "touch {output}"
"""


def snakemake_args(tmp_path: Path, profile: str, *extra: str) -> list[str]:
    """Run Snakemake with this interpreter: the plugin's jobs start `python -m snakemake` with it."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        *extra,
        f"--profile={REPO_ROOT / 'profiles' / profile}",
        "--workflow-profile=none",  # never auto-load a profiles/default
        f"--snakefile={tmp_path / 'Snakefile'}",
        f"--directory={tmp_path}",
    ]


@pytest.mark.slurm
def test_snakemake_workflow_through_ci_profile(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    proc = slurm_cluster.run(
        snakemake_args(tmp_path, "ci-slurm"),
        cwd=tmp_path,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake failed (rc={proc.returncode}):\n{log[-6000:]}"

    out = (tmp_path / "out" / "b.txt").read_text()
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert set(lines) == {"prepare", "sample"}, out
    assert lines["prepare"].endswith("gpus=none"), out
    assert lines["sample"].endswith("gpus=0"), f"profile's gpu=1 did not reach sbatch:\n{out}"

    # Each rule ran as its own SLURM job, and squeue still shows both as COMPLETED.
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == 2, log[-6000:]
    history = squeue_history(slurm_cluster)
    for job_id, rule in zip(submitted, ("prepare", "sample"), strict=True):
        assert f"job={job_id} " in lines[rule], (rule, job_id, out)
        state, comment = history[job_id]
        assert (state, comment) == ("COMPLETED", f"rule_{rule}"), history[job_id]
    # slurm-keep-successful-logs: the per-job logs stay for debugging.
    assert len(list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))) == 2


def resources_by_rule(log: str) -> dict[str, dict[str, str]]:
    """Parse the `rule X:` ... `threads: N`, `resources: a=1, b=2` blocks that a dry run prints
    (threads as the resource "threads", "1" where not printed)."""
    found: dict[str, dict[str, str]] = {}
    rule = None
    for line in log.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            rule = m.group(1)
            found[rule] = {"threads": "1"}
        elif rule and (m := re.match(r"^\s+threads: (\d+)", line)):
            found[rule]["threads"] = m.group(1)
        elif rule and (m := re.match(r"^\s+resources: (.*)", line)):
            found[rule] |= dict(item.split("=", 1) for item in m.group(1).split(", "))
    return found


def dry_run(tmp_path: Path, profile: str, **env: str) -> dict[str, dict[str, str]]:
    """`snakemake -n` of SNAKEFILE through profiles/<profile>; returns the resources per rule.

    Site settings (IG_SLURM_*) come only from `env`, never from the caller's environment.
    """
    base = {k: v for k, v in slurm_env().items() if not k.startswith("IG_SLURM_")}
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    proc = subprocess.run(  # --cores: a dry run otherwise caps every rule's threads at 1
        snakemake_args(tmp_path, profile, "--dry-run", "--cores", "64", "out/b.txt", "out/demo.pt"),
        cwd=tmp_path,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return resources_by_rule(log)


# The dry runs below need no cluster (the SLURM plugin does not contact Slurm in a dry run), so
# they run in every CI and catch a broken profile early.


def test_slurm_profile_dry_run(tmp_path: Path) -> None:
    """The production profile parses; its defaults and set-resources reach the jobs: CPU rules on the
    CPU partition, GPU rules on the GPU partition with their CPUs per GPU as threads."""
    res = dry_run(tmp_path, "slurm")
    prepare = res["prepare"]
    assert (prepare["slurm_partition"], prepare["threads"]) == ("cpu", "1"), prepare
    assert not {"gpu", "slurm_account", "qos", "gpu_model", "constraint"} & set(prepare), prepare
    sample = res["sample"]
    # No time limit from the profile for sampling: the pipeline's rule requests its planned time
    # (workflow/rules/common.smk planned_runtime); this stand-in rule requests none: the default.
    assert (sample["slurm_partition"], sample["gpu"], sample["runtime"]) == ("gpu", "1", "60"), sample
    assert sample["cpus_per_gpu"] == sample["threads"] == "8", sample
    assert not {"gpu_model", "constraint", "qos"} & set(sample), sample
    # The rule's own gpu (the run's gpus) survives; the profile adds CPUs and memory per CPU.
    train = res["train_segment"]
    assert (train["gpu"], train["cpus_per_gpu"], train["mem_mb_per_cpu"], train["threads"]) == ("2", "8", "7500", "8")


def test_slurm_profile_reads_site_settings_from_env(tmp_path: Path) -> None:
    site = {"IG_SLURM_PARTITION": "h100", "IG_SLURM_CPU_PARTITION": "short", "IG_SLURM_ACCOUNT": "proj42"}
    site |= {"IG_SLURM_QOS": "high", "IG_SLURM_GPU_MODEL": "h100", "IG_SLURM_CONSTRAINT": "ib&nvlink"}
    res = dry_run(tmp_path, "slurm", IG_SLURM_CPUS_PER_GPU="6", **site)
    for rule in ("sample", "train_segment"):  # GPU rules: everything
        got = {k: res[rule][k] for k in ("slurm_partition", "slurm_account", "qos", "gpu_model", "constraint")}
        assert got == {"slurm_partition": "h100", "slurm_account": "proj42", "qos": "high", "gpu_model": "h100",
                       "constraint": "ib&nvlink"}, (rule, got)  # fmt: skip
        assert res[rule]["cpus_per_gpu"] == res[rule]["threads"] == "6"
    prepare = res["prepare"]  # a CPU rule: its partition, the account and QoS, no GPU type or features
    assert (prepare["slurm_partition"], prepare["slurm_account"], prepare["qos"]) == ("short", "proj42", "high")
    assert not {"gpu_model", "constraint"} & set(prepare)


def test_ci_and_local_profiles_dry_run(tmp_path: Path) -> None:
    ci = dry_run(tmp_path, "ci-slurm")
    assert ci["sample"]["gpu"] == "1" and ci["sample"]["cpus_per_task"] == "1"
    assert ci["train_segment"]["gpu"] == "2"
    assert ci["prepare"]["slurm_partition"] == "debug"
    local = dry_run(tmp_path, "local", IG_LOCAL_GPUS="1")
    assert "slurm_partition" not in local["prepare"]
    assert local["train_segment"]["gpu"] == "1", "local profile caps gpu at IG_LOCAL_GPUS (1)"
