"""Training checkpoints: milestone checkpoints (workflow outputs) and resume files (inside a segment).

Both are the same dict, written atomically and loadable with ``weights_only=True``, so a milestone
is also where the next segment starts:

- ``model_config`` (for ``create_model(**model_config)``), ``model``, ``ema``, ``optimizer``,
  ``grad_scaler`` (state dicts);
- ``step``, ``epoch`` (completed epochs), ``steps_per_epoch``: the step is also the position in
  the data order (see ``ig.train.batches``), and the learning-rate schedule is a function of it;
- ``rng``: torch (CPU and CUDA), Python and NumPy generator states of rank 0;
- ``latent``: the latent space (normalisation, autoencoder, shape, classes) sampling needs;
- ``run``: ``name``, ``config`` and ``fingerprint`` of the run config;
- ``log_window``: the metrics accumulated since the last log line, so the log continues as if
  never interrupted; ``segment``: first and last step of the segment that wrote the file.
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

FORMAT = "ig-train-state/1"


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


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    save_torch({"format": FORMAT, **state}, path)


def load_checkpoint(path: str | Path, what: str = "training checkpoint") -> dict[str, Any]:
    state = load_torch(path, what=what)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise IGError(f"{what} {path} was not written by `ig train` ({FORMAT}); pass a checkpoint of this version")
    return state


def load_for_sampling(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The EMA model of a checkpoint, in eval mode without gradients, and what sampling needs to
    know: ``model_config``, ``latent``, ``run``, ``epoch``, ``step``."""
    state = load_checkpoint(path)
    model = create_model(**state["model_config"])
    model.load_state_dict(state["ema"])
    model.to(device).eval().requires_grad_(False)
    meta = {k: state[k] for k in ("model_config", "latent", "run", "epoch", "step")}
    return model, meta
