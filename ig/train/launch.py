"""``ig train --submit``: ad-hoc training launches through submitit, outside the workflow.

The workflow submits segments itself (Snakemake's SLURM executor); this is for quick experiments
by hand. submitit starts one process per task with ``srun`` and exports the torch.distributed
variables. On a timeout or preemption it calls ``checkpoint()``, which here saves nothing: it
requeues the same segment, which continues from the periodic resume file in ``--workdir``
(at most ``resume_every_*`` of work lost, and no risk of a half-written save when the job is
killed during it).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, TorchDistributedEnvironment

from ig.train.config import RunConfig
from ig.train.engine import Segment, run_segment


@dataclass(frozen=True)
class SubmitOptions:
    cluster: str  # "slurm" or "local"
    folder: Path
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int = 1
    cpus_per_task: int = 8
    time_min: int = 24 * 60
    max_requeues: int = 10
    partition: str | None = None
    mem_gb: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SubmitOptions:
        return cls(
            cluster=args.submit,
            folder=args.submitit_dir or args.workdir / "submitit",
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            tasks_per_node=args.tasks_per_node or max(1, args.gpus_per_node),
            cpus_per_task=args.cpus_per_task,
            time_min=args.time_min,
            max_requeues=args.max_requeues,
            partition=args.partition,
            mem_gb=args.mem_gb,
        )


class TrainJob(Checkpointable):
    """What each task of the job runs; ``checkpoint()`` (inherited) resubmits it unchanged."""

    def __call__(self, cfg: RunConfig, seg: Segment) -> dict[str, Any]:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        # overwrite: the submitting shell's RANK/MASTER_* (if any) travel into the job with --export=ALL
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return run_segment(cfg, seg)


def submit(cfg: RunConfig, seg: Segment, options: SubmitOptions) -> submitit.Job:
    """Submit one segment; returns the submitit job (``job.result()`` waits for it)."""
    executor = submitit.AutoExecutor(
        folder=options.folder,
        cluster=options.cluster,
        slurm_max_num_timeout=options.max_requeues,
        local_max_num_timeout=options.max_requeues,
    )
    executor.update_parameters(
        name=f"ig-train-{cfg.name}",
        nodes=options.nodes,
        tasks_per_node=options.tasks_per_node,
        gpus_per_node=options.gpus_per_node,
        cpus_per_task=options.cpus_per_task,
        timeout_min=options.time_min,
        **({"slurm_partition": options.partition} if options.partition else {}),
        **({"mem_gb": options.mem_gb} if options.mem_gb else {}),
    )
    return executor.submit(TrainJob(), cfg, seg)
