"""Atomic writes, safe loads, and the file facts every stage shares (shard names, digests).

Every output of a pipeline stage is written under a temporary name in the destination folder
and renamed into place only when complete, so a killed job never leaves a half-written file that
a rerun would mistake for a finished one. torch is imported only by the functions that read or
write torch files, so that reading configs stays light.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ig.errors import IGError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, needed: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    Problems of the destination are one-line errors: a file where a folder should be, no
    permission, or a full disk (checked first against ``needed`` bytes when the size is known, and
    caught while writing otherwise); nothing partial is left, and earlier outputs are kept."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError) as exc:
        raise IGError(
            f"cannot write {path}: a file is in the way of its folder ({exc.filename}); choose another path"
        ) from exc
    except PermissionError as exc:
        raise IGError(f"cannot write {path}: no permission to write in {exc.filename}") from exc
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        if needed > shutil.disk_usage(path.parent).free:
            raise _disk_full(path, needed)
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(path, max(needed, tmp.stat().st_size if tmp.exists() else 0)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _disk_full(path: Path, needed: int) -> IGError:
    free = shutil.disk_usage(path.parent).free
    return IGError(
        f"disk full: writing {path} needs {needed / 2**20:,.1f} MiB (more, if this is what was written before "
        f"the disk filled up), {free / 2**20:,.1f} MiB are free there; free space and rerun (finished files are kept)"
    )


def shard_path(folder: str | os.PathLike, index: int) -> Path:
    """``<folder>/shard-00042.npz``: the file name of shard ``index`` of latents and of samples."""
    return Path(folder) / f"shard-{index:05d}.npz"


def npz_problem(path: Path, expected: dict[str, Any], full: bool = True) -> str | None:
    """Why the ``.npz`` at ``path`` (a shard of latents or samples) cannot be reused (None when it can):
    missing, unreadable, made from other inputs than ``expected`` (its ``provenance`` array), or
    (``full``: every byte's CRC is checked) corrupt."""
    if not path.is_file():
        return "missing"
    try:
        with zipfile.ZipFile(path) as archive:
            with archive.open("provenance.npy") as f:
                found = json.loads(str(np.lib.format.read_array(f, allow_pickle=False)))
            if found != expected:
                changed = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
                return f"it was made from other inputs ({', '.join(changed)} differ)"
            if full and (bad := archive.testzip()) is not None:
                return f"its member {bad} is corrupt"
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as exc:
        return f"it is unreadable or truncated ({type(exc).__name__})"
    return None


def provenance_array(provenance: dict[str, Any]) -> np.ndarray:
    """What made a file, as the ``provenance`` array of an ``.npz`` (JSON text: no pickle)."""
    return np.array(json.dumps(provenance, sort_keys=True))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's content, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def state_digest(state_dict: Mapping[str, Any], skip_prefix: str | None = None) -> str:
    """A short SHA-256 of a state dict's names and values (buffers that only count steps excluded)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        if name.endswith("num_batches_tracked") or (skip_prefix and name.startswith(skip_prefix)):
            continue
        h.update(name.encode())
        h.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically."""
    import torch

    with atomic_path(path, needed=_tensor_bytes(obj)) as tmp:
        torch.save(obj, tmp)


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) object: what ``torch.save`` of it needs, at least."""
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return obj.numel() * obj.element_size() if hasattr(obj, "element_size") else 0


def unpicklable_objects(path: Path) -> list[str]:
    """Names of the Python classes a torch file pickles that ``weights_only`` refuses."""
    import torch

    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - an unreadable file has none to name
        return []


def load_torch(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load`` with ``weights_only=True`` (never runs code from the file) and a one-line error
    for missing, corrupt or object-pickling files."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise IGError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means a file ig cannot use
        objects = unpicklable_objects(path) if isinstance(exc, pickle.UnpicklingError) else []
        if objects:
            raise IGError(
                f"{what} {path} pickles Python objects beside its tensors ({', '.join(objects[:3])}), which ig "
                f"does not load; if you trust its source, run `ig strip-checkpoint {path}` once"
            ) from exc
        raise IGError(
            f"{what} {path} is corrupt or not a torch file ({type(exc).__name__}); "
            "delete it and rerun the stage that writes it"
        ) from exc


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` atomically (uncompressed: sample sets are large and already entropy-dense)."""
    with atomic_path(path, needed=sum(np.asarray(a).nbytes for a in arrays.values())) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path: str | os.PathLike, what: str = "npz file") -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` without pickle; one-line error when missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise IGError(f"{what} not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001
        raise IGError(f"{what} {path} is corrupt or not an .npz ({type(exc).__name__}); delete it and rerun") from exc


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write pretty JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise IGError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IGError(f"{what} {path} is not valid JSON (line {exc.lineno}); delete it and rerun") from exc


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds it (keeps the mtime, so an
    unchanged config does not make a workflow rerun what depends on it). Returns True if written."""
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return True


def read_yaml_mapping(path: str | os.PathLike, what: str = "YAML file") -> dict[str, Any]:
    """A YAML (or JSON) file that must hold a mapping; one-line errors for missing, invalid or not-a-mapping."""
    path = Path(path)
    if not path.is_file():
        raise IGError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise IGError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise IGError(f"{what} {path} must be a mapping of keys to values")
    return data
