"""Which process this is, and on which device: one reading of the launcher's environment for every
command that runs on a GPU (``ig train``, ``ig sample``, ``ig encode``, ``ig tune``, ``ig evaluate``,
``ig reference``).

The device (:func:`select_device`): ``--device`` if given; else the job's GPU if the launcher gave it
one (SLURM's ``SLURM_*GPUS*``, ``CUDA_VISIBLE_DEVICES``) or a GPU torch sees, else the CPU. A GPU job
whose torch cannot use the GPU fails at once, in one line, instead of computing on the CPU for hours.

Processes:

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

import ctypes
import datetime
import logging
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ig.errors import IGError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_context(device: str | None = None, env: Mapping[str, str] | None = None) -> DistContext:
    """This process's rank, world size, local rank and device (:func:`select_device`), without
    joining a process group."""
    env = os.environ if env is None else env
    launch = launcher_env(env)
    rank, world, local = (int(launch.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))
    return DistContext(rank, world, local, select_device(device, local, env))


def select_device(name: str | None, local_rank: int = 0, env: Mapping[str, str] | None = None) -> torch.device:
    """The device ``name`` means for this process, made current: ``cpu``, ``cuda`` (the local rank's
    GPU) or ``cuda:N``; ``None``: :func:`default_device`.

    A GPU that was asked for but that torch cannot use is a one-line error (:func:`cuda_unusable`),
    not hours on the CPU: PyPI's torch is built for a CUDA that older drivers lack, and then sees no
    GPU. ``IG_ALLOW_CPU=1`` runs on the CPU instead and says so (rehearsals on CPU-only machines,
    the loopback SLURM's fake GPUs). On a GPU, TF32 matmuls and convolutions are on for every
    command (training, sampling, evaluation), as the SiT and LightningDiT releases set them
    (``allow_tf32``).
    """
    env = os.environ if env is None else env
    name, reason = (name, f"--device {name}") if name else default_device(env)
    try:
        dev = torch.device(f"cuda:{local_rank}" if name == "cuda" else name)
    except RuntimeError as exc:
        raise IGError(f"--device {name!r} is not a device torch knows; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        if env.get("IG_ALLOW_CPU") != "1":
            raise IGError(cuda_unusable(reason))
        log.warning("running on the CPU: %s, but torch sees no CUDA device and IG_ALLOW_CPU=1", reason)
        return torch.device("cpu")
    if dev.type == "cuda":
        if (dev.index or 0) >= torch.cuda.device_count():
            raise IGError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        reason += "; TF32 on"
    log.info("running on %s: %s", dev, reason)
    return dev


def default_device(env: Mapping[str, str]) -> tuple[str, str]:
    """The device without ``--device``, and why: the job's GPU if the launcher gave it one (even
    when torch cannot use it: :func:`select_device` then fails), else a GPU torch sees (a
    workstation), else the CPU."""
    if requested := gpu_request(env):
        return "cuda", f"the job was given a GPU ({requested})"
    if torch.cuda.is_available():
        return "cuda", "torch sees a GPU"
    return "cpu", "no GPU requested"


# What launchers set when a job is given GPUs, and the values that mean none: SLURM for --gpus or
# --gres=gpu (also inside Snakemake's jobstep), and CUDA_VISIBLE_DEVICES (SLURM, most schedulers).
GPU_VARIABLES = {
    "SLURM_GPUS_ON_NODE": {"", "0"},  # a count
    "SLURM_JOB_GPUS": {""},  # GPU indices
    "SLURM_STEP_GPUS": {""},
    "CUDA_VISIBLE_DEVICES": {"", "-1", "NoDevFiles"},  # all hidden; NoDevFiles: Slurm, no GPU gres
}


def gpu_request(env: Mapping[str, str]) -> str | None:
    """``NAME=value`` of the first variable saying this job was given a GPU; None if none does."""
    for name, none in GPU_VARIABLES.items():
        value = env.get(name, "").strip()
        if value not in none:
            return f"{name}={value}"
    return None


# PyTorch's wheels for CUDA 12 drivers (R525 to R570): profiles/README.md, "Drivers older than CUDA 13".
CUDA12_TORCH_INDEX = "https://download.pytorch.org/whl/cu126"


def cuda_unusable(reason: str) -> str:
    """One line: the GPU that ``reason`` asked for is not usable, torch's CUDA build, the newest
    CUDA the driver supports, and the fix."""
    built, driver = torch.version.cuda, driver_cuda_version()
    if driver is None:
        found, fix = "no NVIDIA driver found", "run it where the NVIDIA driver is loaded (nvidia-smi works)"
    elif built and _version(driver) >= _version(built):
        found, fix = f"the NVIDIA driver supports CUDA up to {driver}", "check CUDA_VISIBLE_DEVICES and nvidia-smi"
    else:
        major = driver.split(".")[0]
        route = f"IG_TORCH_INDEX={CUDA12_TORCH_INDEX} scripts/setup.sh, " if major == "12" else ""
        found = f"the NVIDIA driver supports CUDA up to {driver}"
        fix = f"install torch built for CUDA {major} ({route}profiles/README.md 'Drivers older than CUDA 13')"
    build = f"built for CUDA {built}" if built else "built without CUDA"
    return (
        f"{reason}, but no CUDA device is visible to torch: torch {torch.__version__} is {build}, {found}; "
        f"{fix}, or run on the CPU: --device cpu or IG_ALLOW_CPU=1"
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def driver_cuda_version() -> str | None:
    """The newest CUDA the NVIDIA driver supports (``12.2``): from libcuda's ``cuDriverGetVersion``,
    else from ``nvidia-smi``'s header; None without a driver."""
    try:
        version = ctypes.c_int()
        if ctypes.CDLL("libcuda.so.1").cuDriverGetVersion(ctypes.byref(version)) == 0:
            return f"{version.value // 1000}.{version.value % 1000 // 10}"
    except OSError:
        pass
    try:
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"CUDA Version:\s*(\d+\.\d+)", header)
    return match[1] if match else None


def launcher_env(env: Mapping[str, str]) -> dict[str, str]:
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
    os.environ.update(launcher_env(os.environ))  # torch.distributed reads MASTER_ADDR/PORT here
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
