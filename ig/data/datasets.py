"""Image datasets: items are ``(uint8 H×W×3 numpy image, int label)`` (a contract).

- ``imagenet``: an image folder ``<root>/<split>/<class>/*.JPEG``; labels are the sorted class
  folder names' indices (ImageNet synsets sort into the standard 0…999 order). Images go
  through ADM's center crop (:func:`center_crop_dhariwal`), as in the SiT and LightningDiT
  pre-processing.
- ``fashion-mnist``: the IDX files of Zalando's release, looked up in ``root``, else in Debian's
  ``dataset-fashion-mnist`` package, else downloaded into ``$IG_CACHE`` (``~/.cache/ig``).
  The 28×28 gray images are zero-padded to 32×32 (not resized): the background is black, so
  padding adds only background, keeps every pixel exact and the garment at its native scale;
  a resize would blur the 1-pixel details. Gray is repeated into three channels.

Every dataset carries ``num_classes``, ``classes`` and ``source`` (a dict for manifests).
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
import PIL.Image
from torch.utils.data import Dataset

from ig.errors import IGError

log = logging.getLogger(__name__)

NAMES = ("fashion-mnist", "imagenet")
IMAGE_EXTENSIONS = {".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


class CorruptImageError(IGError):
    """An image file that cannot be decoded; the message names the file."""


def build_dataset(name: str, root: str | None = None, resolution: int = 32, split: str = "train") -> Dataset:
    """The dataset ``name`` at ``resolution``×``resolution`` (see the module docstring)."""
    if name == "fashion-mnist":
        if split not in ("train", "test"):
            raise IGError(f"Fashion-MNIST splits are 'train' and 'test', got {split!r}")
        dataset = FashionMNIST(fashion_mnist_dir(root), split, resolution)
    elif name == "imagenet":
        if root is None:
            raise IGError("the imagenet dataset needs a root folder (holding train/<synset>/*.JPEG); pass --data-root")
        dataset = ImageFolder(Path(root) / split, resolution)
    else:
        raise IGError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    dataset.source = {"dataset": name, "split": split, **dataset.source}
    return dataset


def center_crop_dhariwal(image: PIL.Image.Image, size: int) -> np.ndarray:
    """ADM's crop: halve with a BOX filter while the short side is ≥ 2·size, then BICUBIC-resize
    the short side to ``size`` and take the central ``size``×``size`` square."""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=PIL.Image.Resampling.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=PIL.Image.Resampling.BICUBIC)
    arr = np.asarray(image)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top : top + size, left : left + size]


# --------------------------------------------------------------------------- image folder


class ImageFolder(Dataset):
    """``<folder>/<class>/<image>``, listed once in sorted order (stable shard contents)."""

    def __init__(self, folder: Path, resolution: int) -> None:
        if not folder.is_dir():
            raise IGError(f"image folder not found: {folder}; expected <root>/<split>/<class>/*.JPEG")
        self.classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
        self.files: list[str] = []
        self.labels: list[int] = []
        for label, cls in enumerate(self.classes):
            names = sorted(e.name for e in os.scandir(folder / cls) if Path(e.name).suffix.lower() in IMAGE_EXTENSIONS)
            self.files += [f"{cls}/{n}" for n in names]
            self.labels += [label] * len(names)
        if not self.files:
            raise IGError(f"no images found under {folder}/<class>/; expected <root>/<split>/<class>/*.JPEG")
        self.folder, self.resolution = folder, resolution
        self.num_classes = len(self.classes)
        self.source = {
            "root": str(folder.resolve()),
            "resolution": resolution,
            "transform": "center-crop-dhariwal",
            "num_images": len(self.files),
        }

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        path = self.folder / self.files[index]
        try:
            with PIL.Image.open(path) as image:
                rgb = image.convert("RGB")  # decodes fully, so truncated files fail here
        except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as exc:
            raise CorruptImageError(f"cannot read image {path}: {exc}") from exc
        return center_crop_dhariwal(rgb, self.resolution), self.labels[index]


# --------------------------------------------------------------------------- Fashion-MNIST


def _fashion_mnist_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) IDX files of ``split`` in ``folder``, gzipped or not; None if absent."""
    prefix = "train" if split == "train" else "t10k"
    found = []
    for kind in ("images-idx3", "labels-idx1"):
        stem = folder / f"{prefix}-{kind}-ubyte"
        candidates = [p for p in (stem.with_name(stem.name + ".gz"), stem) if p.is_file()]
        if not candidates:
            return None
        found.append(candidates[0])
    return found[0], found[1]


def fashion_mnist_dir(root: str | os.PathLike | None) -> Path:
    """The folder to read Fashion-MNIST from: ``root``, Debian's, or a download into the cache."""
    if root is not None:
        if _fashion_mnist_files(Path(root), "train") is None:
            raise IGError(f"no Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...) in {root}")
        return Path(root)
    if _fashion_mnist_files(DEBIAN_FASHION_MNIST, "train") is not None:
        return DEBIAN_FASHION_MNIST
    from ig.assets import fetch, get_asset

    cache = Path(os.environ.get("IG_CACHE", Path.home() / ".cache" / "ig"))
    asset = get_asset("fashion-mnist")
    try:
        fetch(asset, cache, progress=False)
    except (OSError, IGError) as exc:
        raise IGError(
            f"Fashion-MNIST not found ({DEBIAN_FASHION_MNIST} is empty) and downloading it failed ({exc}); "
            "install the Debian package dataset-fashion-mnist or pass --data-root DIR"
        ) from exc
    return cache / asset.path


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX array (big-endian header: magic, then one int32 per dimension; uint8 data)."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            raw = f.read()
        header = np.frombuffer(raw, dtype=">i4", count=1 + magic % 256)
        if header[0] != magic:
            raise ValueError(f"magic number {header[0]} != {magic}")
        shape = tuple(int(d) for d in header[1:])
        return np.frombuffer(raw, dtype=np.uint8, offset=4 * len(header)).reshape(shape)
    except (OSError, EOFError, ValueError) as exc:
        raise IGError(f"{path} is not a readable IDX file ({exc}); reinstall dataset-fashion-mnist") from exc


class FashionMNIST(Dataset):
    """Fashion-MNIST in memory (47 MB for the train split)."""

    def __init__(self, folder: Path, split: str, resolution: int) -> None:
        images_path, labels_path = _fashion_mnist_files(folder, split) or (None, None)
        if images_path is None:
            raise IGError(f"Fashion-MNIST {split} files missing in {folder}")
        self.images = read_idx(images_path, 2051)
        self.labels = read_idx(labels_path, 2049).astype(np.int64)
        if len(self.images) != len(self.labels):
            raise IGError(f"{images_path} and {labels_path} disagree on the number of images; reinstall them")
        self.resolution = resolution
        self.classes = list(FASHION_MNIST_CLASSES)
        self.num_classes = len(self.classes)
        self.source = {
            "root": str(folder.resolve()),
            "resolution": resolution,
            "transform": "zero-pad" if resolution >= 28 else "center-crop-dhariwal",
            "num_images": len(self.images),
        }

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        image = self.images[index]
        if self.resolution >= 28:
            before = (self.resolution - 28) // 2
            after = self.resolution - 28 - before
            image = np.pad(image, ((before, after), (before, after)))
        else:
            image = center_crop_dhariwal(PIL.Image.fromarray(image), self.resolution)
        return np.repeat(image[:, :, None], 3, axis=2), int(self.labels[index])
