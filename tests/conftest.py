"""Shared pytest fixtures. Each concern has its own section below; keep them separate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- SLURM ---------------------------------------------------------------------------------
# The real single-node SLURM on loopback that `.ci/slurm-up.sh` starts. Tests marked `slurm`
# use the `slurm_cluster` fixture. Without a cluster they are skipped, unless IG_REQUIRE_SLURM=1
# (CI sets it), in which case they fail: a CI run must never pass by skipping them.

SLURM_UP_HINT = "start it with `sudo bash .ci/slurm-up.sh` (stop: `bash .ci/slurm-down.sh`)"


def unavailable(reason: str, required_by: str) -> NoReturn:
    """Fail when the environment variable ``required_by`` is 1 (CI sets it: a CI run must never
    pass by skipping), skip otherwise."""
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{reason} [{required_by}=1]", pytrace=False)
    pytest.skip(reason)


def _slurm_unavailable(reason: str) -> NoReturn:
    unavailable(f"SLURM cluster not available: {reason}; {SLURM_UP_HINT}", "IG_REQUIRE_SLURM")


@dataclass(frozen=True)
class SlurmCluster:
    """What tests need to know about the running cluster."""

    partition: str
    node: str
    gpus: int
    # Environment for subprocesses that submit jobs: this interpreter's bin dir first on PATH,
    # because jobs are started with --export=ALL and run `python -m snakemake` (and `ig`) there.
    env: dict[str, str] = field(repr=False)

    def run(self, args: list[str], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, env=self.env, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )


def slurm_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # Only /etc/slurm/slurm.conf reaches the inner srun of Snakemake jobs (the jobstep plugin
    # strips SLURM_CONF), so the tests use exactly that, as production does.
    env.pop("SLURM_CONF", None)
    return env


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    for tool in ("sinfo", "sbatch", "srun", "squeue", "scontrol"):
        if shutil.which(tool) is None:
            _slurm_unavailable(f"`{tool}` is not installed")
    env = slurm_env()
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--format=%N|%P|%T|%G"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _slurm_unavailable("`sinfo` did not answer within 20 s (is slurmctld running?)")
    if proc.returncode != 0:
        _slurm_unavailable(f"`sinfo` failed: {(proc.stderr or proc.stdout).strip()}")
    nodes = [line.split("|") for line in proc.stdout.splitlines() if line.count("|") == 3]
    # A trailing "*" (e.g. "idle*") means slurmd does not respond: not usable.
    usable = [n for n in nodes if n[2] in {"idle", "mixed", "allocated", "completing"}]
    if not usable:
        _slurm_unavailable(f"no usable node in `sinfo`: {proc.stdout.strip() or 'empty'}")
    node, partition, _state, gres = usable[0]
    gpus = 0
    for item in gres.split(","):  # e.g. "gpu:2" or "gpu:h100:8(S:0-1)"
        parts = item.split("(")[0].split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            gpus = int(parts[-1])
    return SlurmCluster(partition=partition.rstrip("*"), node=node, gpus=gpus, env=env)


# --- slow tests --------------------------------------------------------------------------------
# Long experiments are marked `slow`: CI runs their small unmarked versions, and the full ones
# run on demand with `--runslow` (scripts/test.sh --runslow).


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# --- threads -----------------------------------------------------------------------------------
@pytest.fixture
def single_thread():
    """One torch thread in this process, like the OMP_NUM_THREADS=1 subprocesses a test compares
    with: float results depend on the number of threads (reduction order), so bit-identity
    across processes holds only at equal thread counts."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
