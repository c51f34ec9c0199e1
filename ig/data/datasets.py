"""Image datasets: items are ``(uint8 H×W×3 numpy image, int label)`` (a contract).

- ``imagenet``: an image folder ``<root>/<split>/<class>/*.JPEG`` (torchvision's ``ImageFolder``);
  labels are the sorted class folder names' indices (ImageNet synsets sort into the standard
  0…999 order). Images go through ADM's center crop (:func:`center_crop_dhariwal`), as in the SiT
  and LightningDiT pre-processing.
- ``fashion-mnist``: the IDX files of Zalando's release, looked up in ``root``, else in Debian's
  ``dataset-fashion-mnist`` package, else downloaded into ``$IG_CACHE`` (``~/.cache/ig``).
  The 28×28 gray images are zero-padded to 32×32 (not resized): the background is black, so
  padding adds only background, keeps every pixel exact and the garment at its native scale;
  a resize would blur the 1-pixel details. Gray is repeated into three channels.

Every dataset carries ``num_classes``, ``classes`` and ``source`` (a dict for manifests).
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
from pathlib import Path

import numpy as np
import PIL.Image
from torch.utils.data import Dataset

from ig.data.names import DATASETS
from ig.errors import IGError

log = logging.getLogger(__name__)

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
        raise IGError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    dataset.source = {"dataset": name, "split": split, **dataset.source}
    return dataset


def center_crop_dhariwal(image: PIL.Image.Image, size: int) -> np.ndarray:
    """ADM's crop: halve with a BOX filter while the short side is ≥ 2·size, then BICUBIC-resize
    the short side to ``size`` and take the central ``size``×``size`` square. (Not torchvision's
    ``Resize`` + ``CenterCrop``: one resize, without the BOX halvings, gives other pixels.)"""
    while min(image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=PIL.Image.Resampling.BOX)
    scale = size / min(image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=PIL.Image.Resampling.BICUBIC)
    arr = np.asarray(image)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top : top + size, left : left + size]


# --------------------------------------------------------------------------- image folder


def is_image_file(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_rgb(path: str) -> PIL.Image.Image:
    """An image file, fully decoded to RGB (so a truncated file fails here, not later); an unreadable
    one is a :class:`CorruptImageError` whose one line names the file."""
    try:
        with PIL.Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot read image {path}: {exc}") from exc


class ImageFolder(Dataset):
    """``<folder>/<class>/<image>``: torchvision's ``ImageFolder`` (classes and files listed once,
    sorted: stable shard contents), read by :func:`read_rgb` and cropped by :func:`center_crop_dhariwal`."""

    def __init__(self, folder: Path, resolution: int) -> None:
        # torchvision imports torch._dynamo (seconds): only image folders need it, Fashion-MNIST does not
        from torchvision.datasets import ImageFolder as TorchvisionImageFolder

        if not folder.is_dir():
            raise IGError(f"image folder not found: {folder}; expected <root>/<split>/<class>/*.JPEG")
        try:
            images = TorchvisionImageFolder(
                str(folder),
                transform=functools.partial(center_crop_dhariwal, size=resolution),
                loader=read_rgb,
                is_valid_file=is_image_file,
                allow_empty=True,  # a class folder without images keeps its label
            )
        except FileNotFoundError:  # no class folder at all
            images = None
        if images is None or not images.samples:
            raise IGError(f"no images found under {folder}/<class>/; expected <root>/<split>/<class>/*.JPEG")
        self.images, self.folder, self.resolution = images, folder, resolution
        self.classes, self.labels = self.images.classes, self.images.targets
        self.num_classes = len(self.classes)
        self.source = {
            "root": str(folder.resolve()),
            "resolution": resolution,
            "transform": "center-crop-dhariwal",
            "num_images": len(self.images),
        }

    @property
    def files(self) -> list[str]:
        """The images as ``<class>/<file>``, in dataset order."""
        return [Path(path).relative_to(self.folder).as_posix() for path, _ in self.images.samples]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.images[index]


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
