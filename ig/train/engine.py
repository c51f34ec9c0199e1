"""One training segment: from the previous milestone (or from scratch) to the next milestone.

A run is trained in segments so that no job outlives its wall time and every milestone is a
workflow output that sampling can start from while the next segment trains (and a SLURM
requeue or ``--retries`` reruns one segment, not the run). Inside a segment nothing is lost either:

- **One at a time.** Rank 0 holds a lock on ``--workdir`` for the whole segment: a second job of
  the same segment (a rerun while an orphaned job still runs) waits, then finds the work done.
  Temporary files a kill left behind are removed.
- **Start.** A finished segment is not trained again: if the workdir holds this segment's full
  state at its target step (the milestone was written, then the job was killed before the
  workflow recorded it), the milestone is rewritten from it. Otherwise the resume file if there is
  one (it must belong to this run config and this segment), else the ``--init`` milestone's
  training state, else a fresh model from the run seed.
- **Loop.** One optimisation step per global batch. Every ``resume_every_steps`` steps or
  ``resume_every_minutes`` minutes, whichever comes first, rank 0 replaces the resume file
  atomically. No signal handlers: a job killed at any moment (timeout, preemption, SIGKILL)
  reruns from the last resume file, and on CPU ends bit-identical to an uninterrupted run.
- **End.** The full state (``state.pt`` in the workdir), then the lean milestone (``--out``: EMA
  weights and what sampling needs), the optional sample grid; then the resume file and the
  previous milestone's full state are removed (``ig.checkpoints``). A non-finite loss stops
  the segment before the step is applied, keeping the last good resume file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint

from ig import distributed
from ig.checkpoints import (
    capture_rng,
    load_milestone,
    load_state,
    restore_rng,
    save_milestone,
    save_state,
    training_state_of,
)
from ig.data.latents import LatentDataset
from ig.distributed import DistContext
from ig.errors import IGError
from ig.guidance import GuidedVelocity
from ig.images import latent_preview, save_grid
from ig.losses import ig_losses
from ig.models import create_model
from ig.sampling.integrators import sample
from ig.sampling.settings import SamplerSettings
from ig.train.batches import BatchPlan, micro_batch_seed
from ig.train.config import EXECUTION_KEYS, RunConfig
from ig.train.ema import EMA
from ig.train.log import LOSS_KEYS, TrainingLog
from ig.train.optim import build_optimizer, set_learning_rate
from ig.utils.seeding import derive_seed, generator

log = logging.getLogger(__name__)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Segment:
    """Where one segment reads and writes, and where it ends (the ``ig train`` arguments)."""

    latents: Path
    out: Path
    workdir: Path
    until_epoch: int | None = None
    until_step: int | None = None
    init: Path | None = None
    log: Path | None = None
    grid: Path | None = None
    tensorboard: Path | None = None
    device: str | None = None
    progress: bool = True

    @property
    def resume_path(self) -> Path:
        return self.workdir / "resume.pt"

    @property
    def state_path(self) -> Path:
        """The full training state of the finished segment (the next segment starts from it)."""
        return self.workdir / "state.pt"

    def target_step(self, steps_per_epoch: int) -> int:
        if (self.until_epoch is None) == (self.until_step is None):
            raise IGError("give exactly one of --until-epoch and --until-step")
        return self.until_step if self.until_step is not None else self.until_epoch * steps_per_epoch


class Trainer:
    """The model, its EMA and optimizer, and one optimisation step on one global batch."""

    def __init__(self, cfg: RunConfig, data: LatentDataset, ctx: DistContext) -> None:
        self.cfg, self.data, self.ctx = cfg, data, ctx
        self.plan = BatchPlan.build(cfg.global_batch, ctx.world_size, ctx.rank, cfg.max_device_batch)
        self.steps_per_epoch = self.plan.steps_per_epoch(data.num_images)
        seed_everything(derive_seed(cfg.seed, "init"))
        self.model = create_model(**cfg.model).to(ctx.device)
        _check_model_fits_data(self.model, data)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.optimizer = build_optimizer(cfg.optimizer, self.model)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=cfg.precision == "fp16")
        self.step = 0
        self.first_bad = torch.tensor(-1, device=ctx.device)
        self.bad_values = torch.zeros(len(LOSS_KEYS), device=ctx.device)
        self.ddp, self.net = self._wrap(self.model)

    def _wrap(self, model: torch.nn.Module) -> tuple[DistributedDataParallel | None, torch.nn.Module]:
        """The DDP wrapper (or None) and the callable the loss runs: activation checkpointing, DDP
        and compilation on top of ``self.model``, whose state dict is what checkpoints hold.
        Loading a state later is fine: it is copied into the same parameter tensors."""
        if self.cfg.grad_checkpointing:
            checkpoint_blocks(model)
        ddp = None
        if self.ctx.world_size > 1:
            device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            # With lam = 0 the intermediate head gets no gradient.
            ddp = DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=self.cfg.loss.lam == 0)
        net = ddp or model
        return ddp, torch.compile(net) if self.cfg.compile else net

    def compute_gradients(self) -> torch.Tensor:
        """Forward and backward over this rank's micro-batches; returns the step's losses and gradient
        norm (``LOSS_KEYS``), averaged over the global batch, as one tensor on the device: nothing
        here waits for the device (see ``check_finite``). The gradients are applied by ``apply_gradients``."""
        cfg, device = self.cfg, self.ctx.device
        set_learning_rate(self.optimizer, cfg.optimizer, self.step)
        micro_batches = self.plan.micro_batches(cfg.seed, self.step, self.data.num_images)
        sums = torch.zeros(4, device=device)
        for k, (offset, indices) in enumerate(micro_batches):
            seed = micro_batch_seed(cfg.seed, self.step, offset)
            torch.manual_seed(seed)  # the model's label dropout draws from the global generator
            g = torch.Generator(device).manual_seed(seed)
            x0, y = self.data.batch(indices, g, device)
            last = k == len(micro_batches) - 1
            with self.ddp.no_sync() if self.ddp and not last else contextlib.nullcontext():
                with torch.autocast(device.type, AUTOCAST_DTYPES.get(cfg.precision), enabled=cfg.precision != "fp32"):
                    terms = ig_losses(self.net, x0, y, **dataclasses.asdict(cfg.loss), generator=g)
                self.scaler.scale(terms.total / len(micro_batches)).backward()
            sums += torch.stack([terms.total.detach(), terms.final, terms.inter, terms.cosine]).float()
        sums = distributed.mean_over_ranks(sums / len(micro_batches))
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params], foreach=True)
        if cfg.grad_clip:
            torch.nn.utils.clip_grads_with_norm_(params, cfg.grad_clip, grad_norm, foreach=True)
        values = torch.cat([sums, grad_norm.reshape(1).float()])
        self._watch_finite(values)
        return values

    def _watch_finite(self, values: torch.Tensor) -> None:
        """Remember, on the device, the first step whose loss (or, without the fp16 grad scaler, which
        skips overflowing steps itself, whose gradient norm) is not finite, and its values."""
        finite = torch.isfinite(values[0]) & (torch.isfinite(values[4]) | self.scaler.is_enabled())
        first = (self.first_bad < 0) & ~finite
        self.first_bad = torch.where(first, self.step + 1, self.first_bad)
        self.bad_values = torch.where(first, values, self.bad_values)

    def check_finite(self, last_good: str) -> None:
        """Stop (an IGError naming the step) if a step since the start was not finite. Called where the
        loop waits for the device anyway (log lines, resume files, the milestone): the states saved
        there are never past a bad step, and ``last_good`` names the last of them."""
        bad = int(self.first_bad)
        if bad >= 0:
            loss, *_, grad_norm = self.bad_values.tolist()
            raise IGError(
                f"non-finite loss {loss} / gradient norm {grad_norm} in step {bad} "
                f"(epoch {(bad - 1) // self.steps_per_epoch}); stopped at step {self.step}, nothing after it "
                f"was saved; the last good state is {last_good}"
            )

    def apply_gradients(self) -> None:
        """Optimizer step (skipped by the fp16 grad scaler on overflow), EMA update, next step."""
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)
        self.step += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "model_config": dict(self.model.config),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "rng": capture_rng(),
            "latent": self.data.meta(),
            "run": {"name": self.cfg.name, "config": self.cfg.to_dict(), "fingerprint": self.cfg.fingerprint()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["model_config"] != dict(self.model.config):
            raise IGError(f"checkpoint model {state['model_config']} differs from the run config's {self.model.config}")
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise IGError(
                f"checkpoint has {state['steps_per_epoch']} steps per epoch, this data and global batch give "
                f"{self.steps_per_epoch}: the latent folder or global_batch changed"
            )
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["grad_scaler"])
        self.step = state["step"]
        restore_rng(state["rng"])


def seed_everything(seed: int) -> None:
    """Seed every global generator, so that even the ones training never draws from hold the
    same state in every run (checkpoints store them all)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def checkpoint_blocks(model: torch.nn.Module) -> None:
    """Recompute each transformer block's activations in the backward pass instead of storing
    them. Patches the block instances' ``forward``, so state-dict keys do not change."""
    if not isinstance(getattr(model, "blocks", None), torch.nn.ModuleList):
        raise IGError(f"grad_checkpointing needs a model with a `blocks` ModuleList; {type(model).__name__} has none")
    for block in model.blocks:
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)


def run_segment(cfg: RunConfig, seg: Segment) -> dict[str, Any]:
    """Train one segment (in every process of a distributed launch); returns the milestone's
    step and epoch."""
    ctx = distributed.setup(seg.device)
    try:
        return _run_segment(cfg, seg, ctx)
    finally:
        distributed.teardown()


@contextlib.contextmanager
def segment_lock(seg: Segment, ctx: DistContext):
    """Rank 0 holds an exclusive lock on the segment's workdir (other ranks follow it through the
    process group); stale temporary files of a killed save are removed under it."""
    if not ctx.is_main:
        yield
        return
    try:
        seg.workdir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise IGError(f"--workdir {seg.workdir} cannot be a folder ({exc.strerror}); choose another path") from exc
    with open(seg.workdir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another process trains this segment (%s); waiting for it to finish", seg.workdir)
            fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in seg.workdir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        yield


def _check_writable(path: Path, what: str) -> None:
    """Fail now, not after the segment trained, when ``path``'s folder cannot be made."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise IGError(f"{what} {path}: its folder cannot be made ({exc.strerror}: a file is in the way)") from exc


def _run_segment(cfg: RunConfig, seg: Segment, ctx: DistContext) -> dict[str, Any]:
    for path, what in ((seg.out, "--out"), (seg.grid, "--grid"), (seg.log, "--log")):
        if path is not None and ctx.is_main:
            _check_writable(path, what)
    with segment_lock(seg, ctx):
        return _train(cfg, seg, ctx)


def _train(cfg: RunConfig, seg: Segment, ctx: DistContext) -> dict[str, Any]:
    data = LatentDataset(seg.latents)
    trainer = Trainer(cfg, data, ctx)
    target = seg.target_step(trainer.steps_per_epoch)
    identity = {"init": str(seg.init.resolve()) if seg.init else None, "target_step": target}
    finished = _finished_state(cfg, seg, identity)
    if finished is not None:
        if ctx.is_main:
            save_milestone(seg.out, finished, seg.state_path)
            log.info("%s: the segment had finished (%s); milestone rewritten to %s", cfg.name, seg.state_path, seg.out)
        distributed.barrier()
        return {"step": finished["step"], "epoch": finished["epoch"], "out": str(seg.out)}
    state, origin = _starting_state(cfg, seg, identity)
    if state is not None:
        trainer.load_state_dict(state)
    if trainer.step >= target:
        raise IGError(f"nothing to train: training starts at step {trainer.step} but the segment ends at step {target}")
    if ctx.is_main:
        log.info(
            "%s: steps %d -> %d (%d per epoch) from %s; %d process(es) x %d micro-batch(es) of %d on %s",
            cfg.name, trainer.step, target, trainer.steps_per_epoch, origin, ctx.world_size,
            trainer.plan.accum_steps, trainer.plan.micro_batch, ctx.device,
        )  # fmt: skip
    metrics = TrainingLog(
        seg.log or seg.workdir / "training.jsonl",
        every=cfg.log_every,
        start_step=trainer.step,
        target_step=target,
        global_batch=cfg.global_batch,
        steps_per_epoch=trainer.steps_per_epoch,
        tensorboard=seg.tensorboard,
        enabled=ctx.is_main,
        progress=seg.progress,
    )
    if origin == "resume file":
        metrics.load_state_dict(state["log_window"])
    del state  # the model holds its own copy now

    saved = (time.monotonic(), trainer.step)
    while trainer.step < target:
        values = trainer.compute_gradients()
        trainer.apply_gradients()
        metrics.add(trainer.step, values, trainer.optimizer.param_groups[0]["lr"])
        elapsed = time.monotonic() - saved[0]
        due = trainer.step - saved[1] >= cfg.resume_every_steps or elapsed >= 60 * cfg.resume_every_minutes
        if due or trainer.step % cfg.log_every == 0 or trainer.step == target:
            last_good = seg.resume_path if seg.resume_path.is_file() else "the start of the segment"
            trainer.check_finite(str(last_good))
        if ctx.is_main and due and trainer.step < target:
            save_state(
                seg.resume_path, trainer.state_dict() | {"segment": identity, "log_window": metrics.state_dict()}
            )
            saved = (time.monotonic(), trainer.step)
    metrics.close()

    epoch = trainer.step // trainer.steps_per_epoch
    if ctx.is_main:
        final = trainer.state_dict() | {"segment": identity, "log_window": metrics.state_dict()}
        save_state(seg.state_path, final)
        save_milestone(seg.out, final, seg.state_path)
        if seg.grid is not None:
            save_grid(milestone_preview(trainer.ema.model, data.meta(), seed=cfg.seed), seg.grid)
        seg.resume_path.unlink(missing_ok=True)
        _remove_previous_state(seg)
        log.info("%s: milestone step %d (epoch %d) written to %s", cfg.name, trainer.step, epoch, seg.out)
    distributed.barrier()
    return {"step": trainer.step, "epoch": epoch, "out": str(seg.out)}


def _finished_state(cfg: RunConfig, seg: Segment, identity: dict[str, Any]) -> dict[str, Any] | None:
    """This segment's full state at its target step, if a finished run of it left one."""
    if not seg.state_path.is_file():
        return None
    state = load_state(seg.state_path, what="finished segment state")
    if state.get("segment") == identity and state["run"]["fingerprint"] == cfg.fingerprint():
        return state
    log.info("%s belongs to another run config or segment: training the segment anew", seg.state_path)
    return None


def _remove_previous_state(seg: Segment) -> None:
    """Only the latest milestone keeps its full state: the previous one's is removed."""
    if seg.init is None:
        return
    previous = load_milestone(seg.init, what="--init milestone").get("training_state")
    if previous is not None and (seg.init.parent / previous).resolve() != seg.state_path.resolve():
        (seg.init.parent / previous).unlink(missing_ok=True)


def _starting_state(cfg: RunConfig, seg: Segment, identity: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The state to start from and where it came from (see the module docstring)."""
    if seg.resume_path.is_file():
        state = load_state(seg.resume_path, what="resume file")
        if state.get("segment") != identity or state["run"]["fingerprint"] != cfg.fingerprint():
            raise IGError(
                f"the resume file {seg.resume_path} belongs to another run config or segment "
                f"({state.get('segment')}); delete it to start this segment over"
            )
        return state, "resume file"
    if seg.init is not None:
        state = training_state_of(seg.init)
        if state["run"]["fingerprint"] != cfg.fingerprint():
            old, new = state["run"]["config"], cfg.to_dict()
            changed = sorted(k for k in new if old.get(k) != new[k] and k not in EXECUTION_KEYS)
            raise IGError(f"--init {seg.init} was trained with another run config (differs in: {', '.join(changed)})")
        return state, f"--init {seg.init}"
    return None, "scratch"


@torch.no_grad()
def milestone_preview(model: torch.nn.Module, latent: dict[str, Any], *, seed: int, n: int = 16) -> np.ndarray:
    """``n`` unguided EMA samples (classes spread over the label range, fixed noise, 32 Heun steps)
    as uint8 images: a glance at whether training is on track."""
    device = next(model.parameters()).device
    y = torch.arange(n, device=device) * latent["num_classes"] // n
    noise = torch.randn((n, *latent["latent_shape"]), generator=generator(seed, "grid")).to(device)
    x = sample(GuidedVelocity(model), noise, y, SamplerSettings(method="heun", steps=32))
    return latent_preview(x, latent)


def _check_model_fits_data(model: torch.nn.Module, data: LatentDataset) -> None:
    channels, size = data.latent_shape[0], data.latent_shape[-1]
    num_classes = data.manifest["num_classes"]
    if (model.in_channels, model.input_size, model.num_classes) != (channels, size, num_classes):
        raise IGError(
            f"model {model.config['name']} takes {model.in_channels}x{model.input_size}x{model.input_size} latents and "
            f"{model.num_classes} classes, the latent folder has {channels}x{size}x{size} and {num_classes}"
        )
