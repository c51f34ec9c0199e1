"""DDP: two CPU processes (gloo) train the same global batches as one process.

With the same micro-batch size (here 4: one process accumulates two, two processes take one
each) every random draw is the same, so results differ only by the order of reductions.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from ig.checkpoints import load_state
from ig.distributed import first_host, launcher_env
from ig.train.config import RunConfig
from ig.train.engine import run_segment
from ig.train.log import read_log
from tests.test_train import (
    assert_same_state,
    log_without_timings,
    one_thread,  # noqa: F401 - autouse fixture
    segment,
    subprocess_env,
    train_argv,
    write_latents,
    write_run,
)


@pytest.mark.parametrize(
    "nodelist,host",
    [("localhost", "localhost"), ("gpu[07-09,12],cpu01", "gpu07"), ("n001,n002", "n001"), ("a[3]", "a3")],
)
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_launcher_env_from_torchrun_srun_or_nothing():
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3", "MASTER_ADDR": "n1", "MASTER_PORT": "29500"}
    assert launcher_env(torchrun | {"SLURM_PROCID": "0", "SLURM_NTASKS": "2"}) == torchrun
    batch_script = {"SLURM_PROCID": "0", "SLURM_NTASKS": "16", "SLURM_LOCALID": "0", "SLURM_JOB_ID": "4242"}
    batch_script |= {"SLURM_JOB_NODELIST": "gpu[3-4]"}
    assert launcher_env(batch_script) == {}  # one process, whatever --ntasks says
    srun = batch_script | {
        "SLURM_PROCID": "9",
        "SLURM_LOCALID": "1",
        "SLURM_STEP_ID": "0",
        "SLURM_STEP_NUM_TASKS": "16",
    }
    expected = {"RANK": "9", "WORLD_SIZE": "16", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu3", "MASTER_PORT": "24242"}
    assert launcher_env(srun) == expected
    assert launcher_env(srun | {"SLURM_STEP_NUM_TASKS": "1"}) == {}  # srun -n1, e.g. Snakemake's jobstep
    assert launcher_env({}) == {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_two_processes_match_one(tmp_path, options: dict, launcher: str) -> None:
    latents = write_latents(tmp_path / "lat")
    run = write_run(tmp_path / "run.yaml", max_device_batch=4, **options)
    single = segment(tmp_path, "single", latents, until_step=4)
    run_segment(RunConfig.from_file(run), single)

    double = segment(tmp_path, "double", latents, until_step=4)
    argv = ["-m", "ig", "train", *train_argv(double, run)]
    port = str(free_port())
    if launcher == "srun":  # what srun sets for each task; MASTER_ADDR comes from the node list
        slurm = {"SLURM_STEP_ID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": port}
        procs = [
            subprocess.Popen(
                [sys.executable, *argv], env=subprocess_env(SLURM_PROCID=str(r), SLURM_LOCALID=str(r), **slurm)
            )
            for r in range(2)
        ]
    else:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", f"--master-port={port}"]
        procs = [subprocess.Popen([*torchrun, *argv[1:]], env=subprocess_env())]
    assert [p.wait(timeout=300) for p in procs] == [0] * len(procs)

    a, b = load_state(single.state_path), load_state(double.state_path)
    for key in ("model", "ema", "optimizer"):
        assert_same_state(a[key], b[key], key, exact=False)
    assert a["step"] == b["step"] == 4
    one, two = (
        log_without_timings(single.workdir / "training.jsonl"),
        log_without_timings(double.workdir / "training.jsonl"),
    )
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    for r1, r2 in zip(one, two, strict=True):
        assert r1 == pytest.approx(r2, rel=1e-4)
    assert len(read_log(double.workdir / "training.jsonl")) == 4  # rank 0 alone writes the log


def test_two_gloo_processes_launched_by_srun_match_one_process(tmp_path):
    check_two_processes_match_one(tmp_path, {"optimizer": {"kind": "muon"}}, launcher="srun")


def test_two_gloo_processes_launched_by_torchrun_match_one_process(tmp_path):
    check_two_processes_match_one(tmp_path, {"loss": {"lam": 0.0}}, launcher="torchrun")
