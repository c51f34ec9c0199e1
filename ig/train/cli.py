"""``ig train``: train one segment of a run, from the previous milestone (or scratch) to the next.

One process (CPU or one GPU)::

    ig train --run-config runs/sit-b2.yaml --latents latents/in256-sdvae \\
        --out results/sit-b2/ckpt/e0080.pt --workdir results/sit-b2/ckpt/e0080.partial --until-epoch 80

The next segment adds ``--init results/sit-b2/ckpt/e0080.pt``. Several GPUs of one node:
``torchrun --standalone --nproc_per_node 8 -m ig train …``; several nodes: ``srun -n 16 python -m
ig train …`` (one task per GPU). A killed segment, rerun with the same arguments, continues from
the resume file in ``--workdir``. Outside the workflow, ``--submit slurm|local`` sends the same
command to SLURM (or a local process) through submitit, requeued on preemption and timeout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ig.train.config import RunConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    seg = parser.add_argument_group("segment")
    config = seg.add_mutually_exclusive_group(required=True)
    config.add_argument("--run-config", type=Path, help="run config (YAML/JSON), see ig.train.config")
    config.add_argument("--spec", type=Path, help="the workflow's run spec (ig.campaign.specs): the run config")
    seg.add_argument(
        "--execution",
        type=json.loads,
        default={},
        help="JSON of run config keys that do not change the weights (name, cadences, device batch), over the spec's",
    )
    seg.add_argument("--latents", type=Path, required=True, help="latent folder written by `ig encode`")
    seg.add_argument("--out", type=Path, required=True, help="milestone checkpoint to write (.pt)")
    seg.add_argument(
        "--workdir", type=Path, required=True, help="scratch folder of this segment: resume file, default log"
    )
    until = seg.add_mutually_exclusive_group(required=True)
    until.add_argument("--until-epoch", type=int, help="train until this many epochs are complete")
    until.add_argument("--until-step", type=int, help="train until this many optimizer steps are done")
    seg.add_argument("--init", type=Path, help="milestone checkpoint to continue from (default: from scratch)")
    # --training-log under torchrun, which reads a bare --log as an abbreviation of its own --log-dir
    seg.add_argument(
        "--log", "--training-log", type=Path, help="training log of the run, JSONL (default: WORKDIR/training.jsonl)"
    )
    seg.add_argument("--grid", type=Path, help="also write a PNG grid of EMA samples at the milestone")
    seg.add_argument("--tensorboard", type=Path, help="also log to this TensorBoard folder (if installed)")
    seg.add_argument("--device", help="cpu, cuda (this rank's GPU) or cuda:N (default: the job's GPU if any, else cpu)")
    seg.add_argument("--no-progress", action="store_true", help="no progress bar")

    sub = parser.add_argument_group("ad-hoc launch through submitit (not for the workflow)")
    sub.add_argument("--submit", choices=("slurm", "local"), help="submit this segment instead of running it")
    sub.add_argument("--partition", help="SLURM partition")
    sub.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    sub.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node, one process each (default 0: CPU)")
    sub.add_argument("--tasks-per-node", type=int, help="processes per node (default: GPUs per node, at least 1)")
    sub.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per process (default 8)")
    sub.add_argument("--mem-gb", type=int, help="memory per node in GB (default: the partition's)")
    sub.add_argument("--time-min", type=int, default=24 * 60, help="wall time per job in minutes (default 1440)")
    sub.add_argument("--max-requeues", type=int, default=10, help="requeues after timeouts (default 10)")
    sub.add_argument("--submitit-dir", type=Path, help="submitit's logs and pickles (default: WORKDIR/submitit)")
    sub.add_argument("--wait", action="store_true", help="wait for the job to finish and print its result")


def run(args: argparse.Namespace) -> None:
    from ig.train.engine import Segment, run_segment  # imports torch and the models: not for --help

    if args.spec is not None:
        from ig.campaign.specs import read_spec

        cfg = RunConfig.from_dict({**read_spec(args.spec, "run")["train"], **args.execution})
    else:
        cfg = RunConfig.from_dict({**RunConfig.from_file(args.run_config).to_dict(), **args.execution})
    seg = Segment(
        latents=args.latents,
        out=args.out,
        workdir=args.workdir,
        until_epoch=args.until_epoch,
        until_step=args.until_step,
        init=args.init,
        log=args.log,
        grid=args.grid,
        tensorboard=args.tensorboard,
        device=args.device,
        progress=not args.no_progress,
    )
    if args.submit:
        from ig.train.launch import SubmitOptions, submit  # imports submitit: only for --submit

        options = SubmitOptions.from_args(args)
        job = submit(cfg, seg, options)
        print(json.dumps({"job_id": job.job_id, "logs": str(job.paths.stdout)}))
        if args.wait:
            print(json.dumps(job.result()))
        return
    run_segment(cfg, seg)
