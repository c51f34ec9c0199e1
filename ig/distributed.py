"""Which process this is, and on which device: one reading of the launcher's environment for every
command that can run as several processes (``ig train``, ``ig sample``, ``ig encode``).

- ``torchrun`` (one node, or any launcher that exports ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
  ``MASTER_ADDR``/``MASTER_PORT``; the submitit launcher does so too);
- ``srun`` with one task per GPU (several nodes): ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS`` (or
  ``SLURM_NTASKS``), ``SLURM_LOCALID``; the master is the first host of the step's node list and
  the port derives from the job id. Only inside an srun step (``SLURM_STEP_ID`` set): a batch
  script of a ``--ntasks=8`` job also sees ``SLURM_NTASKS=8``, but it is one process. Snakemake's
  SLURM jobstep strips ``SLURM_*`` from the job's environment; ``srun`` in the rule sets them
  again for its own tasks, which is what is read here.

``ig sample`` and ``ig encode`` only need their rank (each rank takes its own shards); ``ig train``
also joins a process group (:func:`setup`): NCCL on GPUs, gloo on CPU. One process with no
launcher runs without a process group.
"""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ig.errors import IGError


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_context(device: str | None = None, env: dict[str, str] | None = None) -> DistContext:
    """This process's rank, world size, local rank and device, without joining a process group.

    ``device``: ``cpu``, ``cuda`` (the local rank's GPU) or ``cuda:N``; default: CUDA if available.
    """
    launch = launcher_env(dict(os.environ) if env is None else env)
    rank, world, local = (int(launch.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))
    return DistContext(rank, world, local, select_device(device, local))


def select_device(name: str | None, local_rank: int = 0) -> torch.device:
    """The device ``name`` means for this process (``cuda``: the local rank's GPU), made current;
    a one-line error when CUDA is asked for but none is visible."""
    name = name or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    except RuntimeError as exc:
        raise IGError(f"--device {name!r} is not a device torch knows; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise IGError(f"--device {name}: no CUDA device is visible; use --device cpu")
        if (dev.index or 0) >= torch.cuda.device_count():
            raise IGError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        torch.cuda.set_device(dev)
    return dev


def launcher_env(env: dict[str, str]) -> dict[str, str]:
    """``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` for this process
    (empty when not launched as one of several processes)."""
    if "RANK" in env and "WORLD_SIZE" in env:
        keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
        return {k: env[k] for k in keys if k in env}
    tasks = int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1)
    if "SLURM_STEP_ID" in env and tasks > 1:  # a task of an srun step (a batch script has no step id)
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not nodelist:
            raise IGError("srun launch without SLURM_STEP_NODELIST/SLURM_JOB_NODELIST: cannot find the master node")
        return {
            "RANK": env["SLURM_PROCID"],
            "WORLD_SIZE": str(tasks),
            "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
            "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(nodelist),
            "MASTER_PORT": env.get("MASTER_PORT") or str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 40000),
        }
    return {}


def first_host(nodelist: str) -> str:
    """First host of a Slurm node list: ``gpu[07-09,12],cpu01`` → ``gpu07``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise IGError(f"cannot parse the Slurm node list {nodelist!r}")
    prefix, ranges = match.groups()
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def setup(device: str | None = None) -> DistContext:
    """:func:`process_context`, and join the process group when launched as several processes."""
    os.environ.update(launcher_env(dict(os.environ)))  # torch.distributed reads MASTER_ADDR/PORT here
    ctx = process_context(device)
    if ctx.world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if ctx.device.type == "cuda" else "gloo",
            rank=ctx.rank,
            world_size=ctx.world_size,
            timeout=datetime.timedelta(minutes=30),  # rank 0 may be writing a large checkpoint
            device_id=ctx.device if ctx.device.type == "cuda" else None,
        )
    return ctx


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """Average of ``x`` over all processes (``x`` itself with one process)."""
    if dist.is_initialized():
        dist.all_reduce(x)  # a sum: gloo has no average
        x /= dist.get_world_size()
    return x
