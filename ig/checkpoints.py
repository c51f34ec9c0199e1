"""What training writes: lean milestones (workflow outputs) and full training states (inside segments).

Sampling needs only the EMA weights; resuming needs everything. So a milestone is lean, and the
full state lives only where a resume needs it (for SiT-XL/2: 2.7 GB vs 10.8 GB per milestone):

- **Milestone** (``FORMAT_MILESTONE``, the segment's declared output): ``model_config`` (for
  ``create_model(**model_config)``), ``ema`` (state dict), ``latent`` (the latent space:
  normalisation, autoencoder, shape, classes), ``run`` (``name``, ``config``, ``fingerprint``),
  ``step``, ``epoch``, ``steps_per_epoch``, ``segment``, and ``training_state``: where the full
  state of this milestone lies, relative to the milestone's folder.
- **Training state** (``FORMAT_STATE``): the resume file of a running segment, and the full state of
  the latest milestone (the next segment starts from it; it is removed once that segment has
  written its own): everything of a milestone plus ``model``, ``optimizer``, ``grad_scaler``,
  ``rng`` (torch CPU and CUDA, Python and NumPy generators of rank 0) and ``log_window`` (the
  metrics accumulated since the last log line). The step is also the position in the data order
  (``ig.train.batches``) and the learning-rate schedule is a function of it.

Both load with ``weights_only=True``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ig.errors import IGError
from ig.models import create_model
from ig.utils.io import load_torch, save_torch

FORMAT_MILESTONE = "ig-milestone/2"
FORMAT_STATE = "ig-train-state/2"
MILESTONE_KEYS = ("model_config", "ema", "latent", "run", "step", "epoch", "steps_per_epoch", "segment")


def capture_rng() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    save_torch({"format": FORMAT_STATE, **state}, path)


def save_milestone(path: str | Path, state: dict[str, Any], training_state: str | Path | None) -> None:
    """The lean milestone of a full ``state``; ``training_state``: where that full state was saved."""
    lean = {key: state[key] for key in MILESTONE_KEYS}
    if training_state is not None:
        lean["training_state"] = str(Path(training_state).resolve().relative_to(Path(path).resolve().parent))
    save_torch({"format": FORMAT_MILESTONE, **lean}, path)
    # read-only: hours of GPU time that an `rm`, a `cp` or a redirect should not take by accident (the
    # workflow's own rerun of a segment replaces it by rename, which a read-only file allows)
    Path(path).chmod(0o444)


def _load(path: str | Path, formats: tuple[str, ...], what: str) -> dict[str, Any]:
    state = load_torch(path, what=what)
    if not isinstance(state, dict) or state.get("format") not in formats:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise IGError(f"{what} {path} is not a file of this version of `ig train` ({found}); rewrite it with it")
    return state


def load_state(path: str | Path, what: str = "training state") -> dict[str, Any]:
    return _load(path, (FORMAT_STATE,), what)


def load_milestone(path: str | Path, what: str = "milestone checkpoint") -> dict[str, Any]:
    return _load(path, (FORMAT_MILESTONE,), what)


def training_state_of(milestone_path: str | Path) -> dict[str, Any]:
    """The full training state a milestone was saved from (what the next segment starts from)."""
    milestone = load_milestone(milestone_path, what="--init milestone")
    if "training_state" not in milestone:
        raise IGError(f"--init {milestone_path} records no training state (an imported release?); train from scratch")
    path = Path(milestone_path).parent / milestone["training_state"]
    if not path.is_file():
        raise IGError(
            f"the training state of {milestone_path} ({path}) was removed once a later milestone was written; "
            "continue from the latest milestone, or delete the later ones to retrain them"
        )
    return load_state(path, what="training state of --init")


def load_for_sampling(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The EMA model of a milestone, in eval mode without gradients, and what sampling needs to
    know: ``model_config``, ``latent``, ``run``, ``epoch``, ``step``."""
    milestone = load_milestone(path)
    model = create_model(**milestone["model_config"])
    try:
        model.load_state_dict(milestone["ema"])
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0]
        raise IGError(
            f"{path}: its weights do not fit its recorded model {milestone['model_config']} ({reason})"
        ) from exc
    model.to(device).eval().requires_grad_(False)
    meta = {k: milestone[k] for k in ("model_config", "latent", "run", "epoch", "step")}
    return model, meta
