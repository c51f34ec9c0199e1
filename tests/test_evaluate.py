"""Image sets, the classifier extractor, and `ig reference` / `ig evaluate` / `ig train-classifier`
end to end on small sets of real Fashion-MNIST images with a tiny classifier."""

import json

import numpy as np
import pytest
import torch

from ig.cli import main
from ig.data.datasets import build_dataset
from ig.errors import IGError
from ig.evaluation.classifier import ClassifierExtractor, save_classifier
from ig.evaluation.imagesets import NpzImages
from ig.evaluation.metrics import feature_statistics, frechet_distance
from ig.evaluation.train_classifier import accuracy, train_classifier
from ig.utils.io import load_npz, load_torch, save_npz, save_torch

TINY = (8, 16, 32)


def _arrays(split, start, stop):
    dataset = build_dataset("fashion-mnist", split=split)
    pairs = [dataset[i] for i in range(start, stop)]
    return np.stack([image for image, _ in pairs]), np.array([label for _, label in pairs])


@pytest.fixture(scope="session")
def test_images():
    return _arrays("test", 0, 1500)


@pytest.fixture(scope="session")
def classifier(tmp_path_factory):
    """A tiny classifier trained for two epochs on 4000 images (a few seconds)."""
    images, labels = _arrays("train", 0, 4000)
    model = train_classifier(images, labels, epochs=2, batch_size=64, widths=TINY)
    path = tmp_path_factory.mktemp("classifier") / "classifier.pt"
    save_classifier(model, path, dataset="fashion-mnist", resolution=32)
    return path, model


def _cli_error(argv, capsys):
    """The one-line message of a CLI call that must exit with status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after progress bars and log lines
    assert last.startswith(f"ig {argv[0]}: error: ")
    return last


def test_classifier_learns_and_gives_its_features(classifier, test_images):
    path, model = classifier
    images, labels = test_images
    assert accuracy(model, images, labels) > 0.7  # chance is 0.1
    extractor = ClassifierExtractor(path)
    out = extractor(images[:5])
    assert out["pool"].shape == (5, 32) and out["logits"].shape == (5, 10)
    assert out["spatial"].shape == (5, 8 * 8 * 4)
    np.testing.assert_allclose(
        out["logits"].argmax(1), model(torch.from_numpy(images[:5]).permute(0, 3, 1, 2)).argmax(1)
    )
    assert extractor.identity.startswith("classifier[fashion-mnist]:")
    with pytest.raises(IGError, match="32×32"):
        extractor(np.zeros((1, 64, 64, 3), np.uint8))


def test_npz_image_sets_round_trip_in_order(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8) for n in (7, 5, 4)]
    (tmp_path / "shards").mkdir()
    save_npz(tmp_path / "shards" / "shard-00001.npz", arr_0=parts[1], labels=np.zeros(5))
    save_npz(tmp_path / "shards" / "shard-00000.npz", arr_0=parts[0])
    np.savez_compressed(tmp_path / "single.npz", arr_0=parts[2])
    images = NpzImages([tmp_path / "shards", tmp_path / "single.npz"])
    assert images.num_images == 16
    assert np.array_equal(np.concatenate(list(images.batches(3))), np.concatenate(parts))
    limited = list(images.batches(4, limit=9))
    assert [len(b) for b in limited] == [4, 3, 2]  # batches do not cross files
    assert np.array_equal(np.concatenate(limited), np.concatenate(parts)[:9])


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"arr_0": np.zeros((2, 4, 4, 3), np.float32)}, "must be uint8"),
        ({"arr_0": np.zeros((2, 4, 4), np.uint8)}, "N×H×W×3"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, "no 'arr_0'"),
    ],
)
def test_bad_image_files_are_refused(tmp_path, arrays, message):
    save_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(IGError, match=message):
        NpzImages([tmp_path / "bad.npz"])


def test_missing_inputs_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IGError, match="no shard-"):
        NpzImages([tmp_path / "empty"])
    with pytest.raises(IGError, match="not found"):
        NpzImages([tmp_path / "missing.npz"])
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(IGError, match="not an .npz"):
        NpzImages([tmp_path / "junk.npz"])
    for n in (4, 100):  # the CRC check fails on the header read (small file) or on a data read
        save_npz(tmp_path / "flipped.npz", arr_0=np.zeros((n, 8, 8, 3), np.uint8))
        raw = bytearray((tmp_path / "flipped.npz").read_bytes())
        raw[300] ^= 0xFF  # inside the image data
        (tmp_path / "flipped.npz").write_bytes(bytes(raw))
        with pytest.raises(IGError, match="corrupt"):
            list(NpzImages([tmp_path / "flipped.npz"]).batches(2))


def test_reference_and_evaluate_end_to_end(classifier, test_images, tmp_path):
    path, _ = classifier
    images, _ = test_images
    spec = f"classifier:{path}"
    save_npz(tmp_path / "real.npz", arr_0=images[:800])
    (tmp_path / "good").mkdir()
    save_npz(tmp_path / "good" / "shard-00000.npz", arr_0=images[800:1100])
    save_npz(tmp_path / "good" / "shard-00001.npz", arr_0=images[1100:1400])
    noise = np.random.default_rng(0).integers(0, 256, (600, 32, 32, 3), dtype=np.uint8)
    save_npz(tmp_path / "noise.npz", arr_0=noise)

    ref = tmp_path / "ref.npz"
    main(
        [
            "reference",
            "--images",
            str(tmp_path / "real.npz"),
            "--extractor",
            spec,
            "--out",
            str(ref),
            "--pr-images",
            "500",
        ]
    )
    reference = load_npz(ref)
    assert reference["pool"].shape == (500, 32) and int(reference["num_images"]) == 800
    assert reference["sigma"].shape == (32, 32) and reference["sigma_s"].shape == (256, 256)

    results = {}
    for name, samples in (("good", tmp_path / "good"), ("noise", tmp_path / "noise.npz")):
        out = tmp_path / f"{name}.json"
        main(["evaluate", str(samples), "--reference", str(ref), "--extractor", spec, "--out", str(out)])
        results[name] = json.loads(out.read_text())
    good, bad = results["good"], results["noise"]
    assert good["num_samples"] == 600 and good["reference"]["path"] == str(ref)
    assert good["extractor"] == str(reference["extractor"]) == ClassifierExtractor(path).identity
    assert good["fid"] < bad["fid"] / 10 and good["sfid"] < bad["sfid"] and good["kid"] < bad["kid"] / 10
    assert good["precision"] > 0.5 > bad["precision"] and good["recall"] > bad["recall"]
    assert good["is"] > bad["is"] and good["samples"]["files"][0].endswith("shard-00000.npz")
    # every metric has its sampling error, from the per-resample values the file keeps
    for m in ("fid", "sfid", "is", "precision", "recall", "kid"):
        replicates = good["bootstrap"]["replicates"][m]
        assert len(replicates) == 20 and good[f"{m}_se"] == pytest.approx(np.std(replicates, ddof=1))
        assert good[f"{m}_se"] > 0
    assert good["pr_arithmetic"] == "exact" and good["is_split_size"] == 5000

    # the JSON's FID is the Fréchet distance of exactly these pool features
    pool = ClassifierExtractor(path)(images[800:1400])["pool"]
    expected = frechet_distance(*feature_statistics(pool), reference["mu"], reference["sigma"])
    assert good["fid"] == pytest.approx(expected, rel=1e-6)


def test_evaluate_refuses_mismatched_extractor_and_bad_samples(classifier, test_images, tmp_path, capsys):
    path, _ = classifier
    images, _ = test_images
    save_npz(tmp_path / "real.npz", arr_0=images[:50])
    ref = str(tmp_path / "ref.npz")
    main(["reference", "--images", str(tmp_path / "real.npz"), "--extractor", f"classifier:{path}", "--out", ref])

    other = load_torch(path)
    other["state_dict"]["head.bias"] += 1.0
    save_torch(other, tmp_path / "other.pt")
    args = ["evaluate", str(tmp_path / "real.npz"), "--reference", ref, "--out", str(tmp_path / "m.json")]
    assert "rebuild the reference" in _cli_error([*args, "--extractor", f"classifier:{tmp_path / 'other.pt'}"], capsys)

    save_npz(tmp_path / "float.npz", arr_0=images[:10].astype(np.float32))
    args[1] = str(tmp_path / "float.npz")
    assert "must be uint8" in _cli_error([*args, "--extractor", f"classifier:{path}"], capsys)
    save_npz(tmp_path / "one.npz", arr_0=images[:1])
    args[1] = str(tmp_path / "one.npz")
    assert "at least 2" in _cli_error([*args, "--extractor", f"classifier:{path}"], capsys)
    assert not (tmp_path / "m.json").exists()

    stats = {"mu": np.zeros(3), "sigma": np.eye(3), "mu_s": np.zeros(3), "sigma_s": np.eye(3)}
    save_npz(tmp_path / "adm.npz", arr_0=images[:10], **stats)
    adm = ["reference", "--images", str(tmp_path / "adm.npz"), "--extractor", f"classifier:{path}", "--out", ref]
    assert "Inception statistics" in _cli_error(adm, capsys)


def test_train_classifier_cli_and_dataset_reference(tmp_path):
    ckpt = tmp_path / "clf.pt"
    main(
        [
            "train-classifier",
            "--out",
            str(ckpt),
            "--max-train-images",
            "1000",
            "--batch-size",
            "32",
            "--widths",
            *map(str, TINY),
        ]
    )
    meta = load_torch(ckpt)
    assert meta["dataset"] == "fashion-mnist" and meta["train_images"] == 1000 and 0.3 < meta["test_accuracy"] <= 1
    ref = tmp_path / "ref.npz"
    main(["reference", "--dataset", "fashion-mnist", "--split", "test", "--max-images", "300",
          "--extractor", f"classifier:{ckpt}", "--out", str(ref)])  # fmt: skip
    reference = load_npz(ref)
    assert int(reference["num_images"]) == 300 and "fashion-mnist/test" in str(reference["source"])
