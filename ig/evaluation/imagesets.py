"""Image sets to extract features from, read batch by batch.

- ADM-format ``.npz`` files (``arr_0``: uint8 N×H×W×3) and folders of ``shard-*.npz`` as
  ``ig sample`` writes them; several inputs form one set, in the order given (a folder's shards
  sorted by name). ``arr_0`` is streamed from the zip member, so a 50K×256² file (10 GB) is never
  loaded whole, and its header is checked before any image is read.
- A dataset of ``ig.data.datasets`` (images of the embedded default).
"""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from ig.errors import IGError
from ig.evaluation.features import check_image_layout

ARRAY = "arr_0"


class ImageSet(ABC):
    num_images: int
    sources: list[str]  # where the images came from, for the output files

    @abstractmethod
    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[np.ndarray]:
        """uint8 N×H×W×3 batches of the first ``limit`` images (all when None)."""


@contextlib.contextmanager
def _image_array(path: Path) -> Iterator[tuple[IO[bytes], tuple[int, ...]]]:
    """``arr_0`` of an npz as a stream positioned after its header, and its (checked) shape."""
    if not path.is_file():
        raise IGError(f"image file not found: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise IGError(f"{path} is not an .npz file (bad zip); delete it and rerun the stage that wrote it") from exc
    with zf:
        if f"{ARRAY}.npy" not in zf.namelist():
            keys = ", ".join(name.removesuffix(".npy") for name in zf.namelist())
            raise IGError(f"{path} has no '{ARRAY}' array (keys: {keys}); image sets store their images as arr_0")
        # a damaged member fails its CRC check on the read that reaches its end: here for a small
        # file, else in the caller's with-block (raised into this frame at the yield)
        try:
            with zf.open(f"{ARRAY}.npy") as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise IGError(f"{path}: unsupported .npy format version {version}; re-save it with numpy.savez")
                read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                shape, fortran_order, dtype = read_header[version](f)
                check_image_layout(shape, dtype, f"{path}:{ARRAY}")
                if fortran_order:
                    raise IGError(f"{path}:{ARRAY} is stored in Fortran order; re-save it with np.ascontiguousarray")
                yield f, shape
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise IGError(f"{path} is corrupt ({exc}); delete it and rerun the stage that wrote it") from exc


class NpzImages(ImageSet):
    """One or more ``.npz`` files and/or folders of ``shard-*.npz``, read as one set."""

    def __init__(self, paths: Sequence[str | Path]):
        files: list[Path] = []
        for p in map(Path, paths):
            shards = sorted(p.glob("shard-*.npz")) if p.is_dir() else [p]
            if not shards:
                raise IGError(f"folder {p} has no shard-*.npz files; sample into it first (ig sample)")
            files.extend(shards)
        self.shapes: dict[Path, tuple[int, ...]] = {}
        for path in files:
            with _image_array(path) as (_, shape):
                self.shapes[path] = shape
        sizes = {shape[1:3] for shape in self.shapes.values()}
        if len(sizes) > 1:
            raise IGError(f"the inputs hold images of different sizes {sorted(sizes)}; evaluate them separately")
        self.num_images = sum(shape[0] for shape in self.shapes.values())
        self.sources = [str(path) for path in self.shapes]

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[np.ndarray]:
        left = self.num_images if limit is None else min(limit, self.num_images)
        for path in self.shapes:
            if not left:
                return
            with _image_array(path) as (f, shape):
                in_file, image_bytes = shape[0], int(np.prod(shape[1:]))
                while left and in_file:
                    n = min(batch_size, left, in_file)
                    data = f.read(n * image_bytes)
                    if len(data) != n * image_bytes:
                        raise IGError(f"{path} is truncated; delete it and rerun the stage that wrote it")
                    yield np.frombuffer(bytearray(data), np.uint8).reshape(n, *shape[1:])
                    left, in_file = left - n, in_file - n


class DatasetImages(ImageSet):
    """Images of a dataset of ``ig.data.datasets`` (labels dropped)."""

    def __init__(self, name: str, root: str | None = None, resolution: int = 32, split: str = "train"):
        from ig.data.datasets import build_dataset

        self.dataset = build_dataset(name, root=root, resolution=resolution, split=split)
        self.num_images = len(self.dataset)
        self.sources = [f"dataset:{name}/{split}@{resolution}"]

    def batches(self, batch_size: int, limit: int | None = None) -> Iterator[np.ndarray]:
        stop = self.num_images if limit is None else min(limit, self.num_images)
        for start in range(0, stop, batch_size):
            yield np.stack([self.dataset[i][0] for i in range(start, min(start + batch_size, stop))])
