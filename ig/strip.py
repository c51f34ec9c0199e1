"""``ig strip-checkpoint``: keep only the tensors of a third-party checkpoint you trust.

ig loads every checkpoint with ``weights_only=True``, which never runs code from the file. A file
that also pickles Python objects beside its weights (a Lightning checkpoint's hyper-parameters or
callbacks, say) is refused with a one-line error pointing here. Run this once on a file whose
source you trust: it is unpickled in full, everything but tensors, numbers and strings is dropped,
and the result (replacing the file unless ``--out`` is given) loads everywhere in ig.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ig.errors import IGError
from ig.utils.io import save_torch

_DROP = object()


def tensors_only(obj: Any) -> Any:
    """``obj`` with every container kept and every leaf that is not plain data dropped."""
    import torch  # imported where used: `ig strip-checkpoint --help` needs no torch

    if isinstance(obj, dict):
        kept = {k: tensors_only(v) for k, v in obj.items() if isinstance(k, (str, int))}
        return {k: v for k, v in kept.items() if v is not _DROP}
    if isinstance(obj, (list, tuple)):
        return type(obj)(v for v in map(tensors_only, obj) if v is not _DROP)
    if obj is None or isinstance(obj, (torch.Tensor, bool, int, float, str)):
        return obj
    return _DROP


def strip_checkpoint(path: str | Path, out: str | Path | None = None) -> Path:
    """Rewrite ``path`` (or write ``out``) with its tensors only; returns the written path."""
    path = Path(path)
    if not path.is_file():
        raise IGError(f"checkpoint not found: {path}")
    import torch

    try:
        full = torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as exc:
        raise IGError(f"{path} needs the module {exc.name!r} to unpickle: pip install it, then rerun") from exc
    stripped = tensors_only(full)
    if stripped is _DROP:
        raise IGError(f"{path} holds no tensors (a {type(full).__name__})")
    target = Path(out) if out else path
    save_torch(stripped, target)
    return target


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the checkpoint (unpickled in full: only for files you trust)")
    p.add_argument("--out", help="write here instead of replacing the file")


def run(args: argparse.Namespace) -> None:
    print(f"wrote {strip_checkpoint(args.path, args.out)} (tensors only)")
