"""The training log: JSONL records of the losses, TensorBoard and optionally Weights & Biases, and a
progress bar.

TensorBoard gets every record under ``train/`` when a folder is given (the workflow gives one per
run). Weights & Biases is switched on by the environment, ``IG_WANDB=offline`` (or ``online``): each
process start is one W&B run named ``<run>@<first step>`` in group ``<run>`` (the log file's folder),
written under that folder's ``wandb/``; ``wandb sync`` uploads offline runs later.

The log of a run stays consistent across resumes: on start, lines past the step training resumes
from are dropped (they were written after the resume file the run continues from), and the
window of not-yet-logged steps is part of the resume file, so an interrupted run logs the same
lines as an uninterrupted one (apart from timings).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ig.errors import IGError
from ig.utils.io import atomic_path

LOSS_KEYS = ("loss", "loss_final", "loss_inter", "loss_cos", "grad_norm")
PROGRESS_SECONDS = 180  # a progress line in the job's log at most this often (at log lines), without a bar
log = logging.getLogger(__name__)


class TrainingLog:
    """Averages the per-step values over ``every`` steps and writes them out (rank 0 only)."""

    def __init__(
        self,
        path: Path,
        *,
        every: int,
        start_step: int,
        target_step: int,
        global_batch: int,
        steps_per_epoch: int,
        tensorboard: Path | None = None,
        enabled: bool = True,
        progress: bool = True,
    ) -> None:
        self.path, self.every, self.enabled = path, every, enabled
        self.global_batch, self.steps_per_epoch = global_batch, steps_per_epoch
        self.window: torch.Tensor | None = None  # sums of the values since the last line, on the device
        self.steps = 0
        self.tick = (time.perf_counter(), start_step)
        self.start, self.target_step = self.tick, target_step
        self.progress_line = self.tick[0] if not progress else None  # a cluster job's log has no bar
        self.writer = None
        self.wandb = None
        self.bar = None
        if not enabled:
            return
        _truncate_after(path, start_step)
        if tensorboard is not None:
            self.writer = _tensorboard(tensorboard, start_step)
        self.wandb = _wandb(path.parent, start_step)
        self.bar = tqdm(
            total=target_step, initial=start_step, unit="step", dynamic_ncols=True, disable=not progress, mininterval=1
        )

    def state_dict(self) -> dict[str, float]:
        sums = self.window.tolist() if self.window is not None else [0.0] * len(LOSS_KEYS)
        return {**dict(zip(LOSS_KEYS, sums, strict=True)), "steps": self.steps}

    def load_state_dict(self, window: dict[str, float]) -> None:
        self.window = torch.tensor([window[k] for k in LOSS_KEYS], dtype=torch.float64)
        self.steps = int(window["steps"])

    def add(self, step: int, values: torch.Tensor, lr: float) -> None:
        """Record the values (``LOSS_KEYS``, a tensor) of ``step``, already done; write a line every
        ``every`` steps."""
        values = values.detach().double()
        self.window = values if self.window is None else self.window.to(values.device) + values
        self.steps += 1
        if self.bar is not None:
            self.bar.update(1)
        if step % self.every == 0 and self.enabled:
            self._write(step, lr)

    def _write(self, step: int, lr: float) -> None:
        now = time.perf_counter()
        seconds, steps_timed = now - self.tick[0], step - self.tick[1]
        self.tick = (now, step)
        n = max(self.steps, 1)
        record = {"step": step, "epoch": round(step / self.steps_per_epoch, 4)}
        record |= dict(zip(LOSS_KEYS, (self.window / n).tolist(), strict=True))
        record |= {
            "lr": lr,
            "images_per_s": self.global_batch * steps_timed / seconds,
            "peak_mem_gib": peak_memory_gib(),
        }
        self.window, self.steps = None, 0
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in record.items():
                if k != "step":
                    self.writer.add_scalar(f"train/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_s']:.1f}", refresh=False)
        if self.progress_line is not None and now - self.progress_line >= PROGRESS_SECONDS:
            self.progress_line = now
            log.info(progress_text(step, self.target_step, record, (now - self.start[0]) / (step - self.start[1])))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.finish()


def progress_text(step: int, target: int, record: dict[str, Any], seconds_per_step: float) -> str:
    """One line for a job's log: where the segment is, how fast, the loss, and when it will end."""
    eta = int((target - step) * seconds_per_step)
    return (
        f"step {step:,}/{target:,} ({100 * step / max(target, 1):.1f} %), {record['images_per_s']:,.1f} img/s, "
        f"loss {record['loss']:.4f}, ETA {eta // 3600}h{eta % 3600 // 60:02d}m"
    )


def peak_memory_gib() -> float:
    """Peak GPU memory allocated by torch, or the process's peak resident memory on CPU."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics log (a torn last line from a killed run is skipped)."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _truncate_after(path: Path, step: int) -> None:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    kept = [r for r in read_log(path) if r["step"] <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))


def _tensorboard(folder: Path, start_step: int) -> Any:
    """A SummaryWriter that drops events past ``start_step`` (left by the interrupted run), or
    None with a warning when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("TensorBoard is not installed; --tensorboard ignored (pip install tensorboard)")
        return None
    return SummaryWriter(str(folder), purge_step=start_step + 1)


def _wandb(folder: Path, start_step: int) -> Any:
    """A W&B run when ``IG_WANDB`` asks for one (None otherwise, or with a warning when wandb is not
    installed); ``folder`` is the run's folder and names it."""
    mode = os.environ.get("IG_WANDB", "")
    if not mode:
        return None
    if mode not in ("offline", "online"):
        raise IGError(f"IG_WANDB={mode!r}: use offline or online (or leave it unset for no W&B)")
    try:
        import wandb
    except ImportError:
        log.warning("IG_WANDB is set but wandb is not installed (pip install 'ig[wandb]'); not logging to W&B")
        return None
    run = folder.resolve().name
    return wandb.init(
        mode=mode, dir=str(folder), project=os.environ.get("WANDB_PROJECT", "ig"), group=run, name=f"{run}@{start_step}"
    )
