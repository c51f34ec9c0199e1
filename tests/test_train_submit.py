"""Ad-hoc launches through submitit: a preempted job requeues itself and continues from its
resume file, ending bit-identical to an uninterrupted run."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ig.checkpoints import load_milestone, load_state
from ig.train.cli import add_arguments
from ig.train.config import RunConfig
from ig.train.engine import run_segment
from ig.train.launch import SubmitOptions, submit
from ig.train.log import read_log
from tests.conftest import SlurmCluster
from tests.test_train import (
    assert_same_state,
    log_without_timings,
    one_thread,  # noqa: F401 - autouse fixture
    segment,
    train_argv,
    write_latents,
    write_run,
)


def test_submit_options_from_the_command_line(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [
        "--run-config",
        "r.yaml",
        "--latents",
        "l",
        "--out",
        "o.pt",
        "--workdir",
        str(tmp_path),
        "--until-step",
        "5",
    ]
    args = parser.parse_args([*argv, "--submit", "slurm", "--partition", "gpu", "--gpus-per-node", "4"])
    options = SubmitOptions.from_args(args)
    assert (options.cluster, options.partition, options.gpus_per_node, options.tasks_per_node) == ("slurm", "gpu", 4, 4)
    assert options.folder == tmp_path / "submitit" and options.nodes == 1


def preempt(job) -> None:
    """What SLURM does to a job it preempts (``slurm_signal_delay_s`` before the wall time too):
    USR2 to its task, whose submitit handler calls ``checkpoint()`` and requeues. The local
    executor's controller does not forward USR2, so it goes straight to the task process."""
    controller = job._process.pid
    (task,) = Path(f"/proc/{controller}/task/{controller}/children").read_text().split()
    os.kill(int(task), signal.SIGUSR2)


def test_signalled_local_job_requeues_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the job's processes inherit this environment
    latents = write_latents(tmp_path / "lat")
    cfg = RunConfig.from_file(write_run(tmp_path / "run.yaml", resume_every_steps=1))
    reference = segment(tmp_path, "ref", latents, until_step=15)
    run_segment(cfg, reference)

    seg = segment(tmp_path, "job", latents, until_step=15)
    job = submit(cfg, seg, SubmitOptions(cluster="local", folder=tmp_path / "submitit", cpus_per_task=1, time_min=10))
    log = seg.workdir / "training.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and read_log(log) and read_log(log)[-1]["step"] >= 3):
        assert not job.done() and time.monotonic() < deadline, job.stderr()
        time.sleep(0.05)
    preempt(job)
    result = job.result()

    assert result == {"step": 15, "epoch": 3, "out": str(seg.out)}
    assert "Requeued job" in job.stderr() or "Requeued job" in job.stdout()
    assert_same_state(load_state(reference.state_path), load_state(seg.state_path))
    assert log_without_timings(log) == log_without_timings(reference.workdir / "training.jsonl")


@pytest.mark.slurm
def test_submit_to_the_real_slurm(tmp_path, slurm_cluster: SlurmCluster):
    latents = write_latents(tmp_path / "lat")
    run = write_run(tmp_path / "run.yaml")
    seg = segment(tmp_path, "slurm", latents, until_step=3)
    argv = [sys.executable, "-m", "ig", "train", *train_argv(seg, run), "--submit", "slurm", "--wait"]
    argv += ["--partition", slurm_cluster.partition, "--cpus-per-task", "1", "--time-min", "5"]
    env = slurm_cluster.env | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert load_milestone(seg.out)["step"] == 3
