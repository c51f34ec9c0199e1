"""Datasets: real Fashion-MNIST (Debian's dataset-fashion-mnist), IDX parsing, the ImageNet
folder layout with ADM's center crop, and one-line errors for unreadable files."""

import gzip

import numpy as np
import PIL.Image
import pytest

from ig.data.datasets import CorruptImageError, build_dataset, center_crop_dhariwal
from ig.errors import IGError


def test_fashion_mnist_is_the_real_dataset_padded_to_32():
    train, test = build_dataset("fashion-mnist"), build_dataset("fashion-mnist", split="test")
    assert (len(train), len(test), train.num_classes) == (60_000, 10_000, 10)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    image, label = train[123]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and 0 <= label < 10
    assert (image[:, :, 0] == image[:, :, 2]).all()  # gray in three channels
    assert not image[:2].any() and not image[-2:].any() and not image[:, :2].any() and not image[:, -2:].any()
    np.testing.assert_array_equal(image[2:30, 2:30, 0], train.images[123])  # padded, not resampled
    assert train.source["transform"] == "zero-pad" and train.source["num_images"] == 60_000
    assert build_dataset("fashion-mnist", split="test", resolution=16)[0][0].shape == (16, 16, 3)


def _write_idx(path, array, magic, compress):
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    with gzip.open(path, "wb") if compress else open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_a_root_folder(tmp_path, compress):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", 5), ("t10k", 3)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), 2051, compress)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n), 2049, compress)
    test = build_dataset("fashion-mnist", str(tmp_path), split="test")
    assert len(test) == 3 and test[2][1] == 2 and test.source["root"] == str(tmp_path.resolve())


def test_fashion_mnist_bad_roots_are_one_line_errors(tmp_path):
    with pytest.raises(IGError, match="no Fashion-MNIST IDX files"):
        build_dataset("fashion-mnist", str(tmp_path))
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)  # labels magic
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(1), 2049, False)
    with pytest.raises(IGError, match=r"train-images-idx3-ubyte is not a readable IDX file \(magic"):
        build_dataset("fashion-mnist", str(tmp_path))
    with pytest.raises(IGError, match="splits are 'train' and 'test'"):
        build_dataset("fashion-mnist", split="val")
    with pytest.raises(IGError, match="unknown dataset"):
        build_dataset("cifar10")
    with pytest.raises(IGError, match="needs a root folder"):
        build_dataset("imagenet")


def _pil(width, height, seed=0):
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_center_crop_dhariwal_matches_adm_recipe():
    square = _pil(64, 64)
    np.testing.assert_array_equal(center_crop_dhariwal(square, 64), np.asarray(square))
    # 1024×768 → 256: one BOX halving (768 ≥ 512) to 512×384, BICUBIC to 341×256, central 256 columns.
    image = _pil(1024, 768)
    expected = image.resize((512, 384), PIL.Image.Resampling.BOX).resize((341, 256), PIL.Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(center_crop_dhariwal(image, 256), np.asarray(expected)[:, 42:298])
    assert center_crop_dhariwal(_pil(300, 500), 32).shape == (32, 32, 3)


def make_image_folder(root, broken=True):
    """``root/train/<synset>/`` with RGB, gray and CMYK JPEGs, a PNG, a text file, and (optionally)
    a truncated JPEG; returns the broken file's path."""
    (root / "train" / "n01440764").mkdir(parents=True)
    (root / "train" / "n01443537").mkdir(parents=True)
    _pil(80, 60, 1).save(root / "train" / "n01440764" / "a.JPEG")
    _pil(60, 90, 2).convert("L").save(root / "train" / "n01440764" / "b.JPEG")
    _pil(70, 70, 3).convert("CMYK").save(root / "train" / "n01443537" / "c.JPEG")
    _pil(50, 40, 4).save(root / "train" / "n01443537" / "e.png")
    (root / "train" / "n01443537" / "README.txt").write_text("not an image")
    bad = root / "train" / "n01443537" / "d.JPEG"
    if broken:
        _pil(64, 64, 5).save(bad)
        bad.write_bytes(bad.read_bytes()[:300])
    return bad


def test_image_folder_layout_labels_and_corrupt_file(tmp_path):
    bad = make_image_folder(tmp_path)
    dataset = build_dataset("imagenet", str(tmp_path), resolution=32)
    assert dataset.classes == ["n01440764", "n01443537"] and dataset.num_classes == 2
    assert dataset.files == ["n01440764/a.JPEG", "n01440764/b.JPEG", "n01443537/c.JPEG", "n01443537/d.JPEG",
                             "n01443537/e.png"]  # fmt: skip
    for i in (0, 1, 2, 4):
        image, label = dataset[i]
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == dataset.labels[i]
    with pytest.raises(CorruptImageError) as err:
        dataset[3]
    assert str(bad) in str(err.value) and "\n" not in str(err.value) and isinstance(err.value, IGError)
    with pytest.raises(IGError, match="image folder not found"):
        build_dataset("imagenet", str(tmp_path), split="val")
