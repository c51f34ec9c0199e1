"""``ig encode``: shard contents in both formats, the manifest and its statistics, resuming after
a kill, split invocations and ranks giving identical files, corrupt images, refused settings."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from ig.cli import main
from ig.data.autoencoders import images_to_tensor, load_autoencoder, tiny_config
from ig.data.datasets import build_dataset
from ig.data.encode import encode, stats_sample
from ig.data.latents import Normalization, read_manifest
from ig.errors import IGError
from ig.utils.io import load_npz
from tests.ldm_reference import make_ldm_checkpoint
from tests.test_data import make_image_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A randomly initialised tiny autoencoder folder and the loaded model."""
    folder = tmp_path_factory.mktemp("ae") / "tiny"
    torch.manual_seed(0)
    AutoencoderKL(**tiny_config()).save_pretrained(folder)
    return str(folder), load_autoencoder({"kind": "tiny", "path": str(folder)})


@pytest.fixture(scope="module")
def fmnist():
    return build_dataset("fashion-mnist")


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_sit_shards_manifest_and_statistics(tmp_path, tiny, fmnist):
    _, ae = tiny
    manifest = encode(fmnist, ae, tmp_path, num_images=96, num_shards=3, batch_size=40, progress=False)
    assert sorted(_files(tmp_path)) == ["manifest.json", *(f"shard-0000{k}.npz" for k in range(3))]
    assert read_manifest(tmp_path) == manifest
    assert manifest["format"] == "sit" and manifest["num_images"] == 96 and manifest["latent_shape"] == [4, 8, 8]
    assert manifest["autoencoder"] == ae.spec and manifest["num_classes"] == 10
    for entry in manifest["shards"]:
        assert entry["count"] == 32
        assert entry["sha256"] == hashlib.sha256((tmp_path / entry["file"]).read_bytes()).hexdigest()

    shard = load_npz(tmp_path / "shard-00001.npz")
    assert shard["mean"].dtype == np.float16 and shard["mean"].shape == shard["std"].shape == (32, 4, 8, 8)
    np.testing.assert_array_equal(shard["indices"], np.arange(32, 64))
    np.testing.assert_array_equal(shard["labels"], fmnist.labels[32:64])
    mean, std = ae.encode(images_to_tensor(np.stack([fmnist[i][0] for i in range(32, 64)])))
    np.testing.assert_allclose(shard["mean"], mean.numpy(), atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(shard["std"], std.numpy(), atol=2e-3, rtol=2e-3)

    # Tiny AE: scalar scale = 1/std and shift = mean of posterior samples, here of all 96 images.
    stats = manifest["statistics"]
    assert stats["images"] == 96
    expected = {"kind": "scalar", "scale": 1 / stats["overall_std"], "shift": stats["overall_mean"]}
    assert manifest["normalization"] == expected
    shards = [load_npz(tmp_path / f"shard-0000{k}.npz") for k in range(3)]
    m, s = (np.concatenate([sh[key] for sh in shards]).astype(np.float64) for key in ("mean", "std"))
    assert stats["overall_mean"] == pytest.approx(m.mean(), abs=0.02)
    assert stats["overall_std"] == pytest.approx(np.sqrt(m.var() + (s**2).mean()), rel=0.02)


def test_lightningdit_format_with_converted_vavae(tmp_path):
    torch.save(make_ldm_checkpoint()[1], tmp_path / "vavae.pt")
    ae = load_autoencoder({"kind": "va-vae", "path": str(tmp_path / "vavae.pt")})
    dataset = build_dataset("fashion-mnist", resolution=16)
    manifest = encode(
        dataset, ae, tmp_path / "lat", fmt="lightningdit", num_images=40, num_shards=2, stats_images=30, progress=False
    )
    assert manifest["format"] == "lightningdit" and manifest["latent_shape"] == [4, 4, 4]
    shards = [load_npz(tmp_path / "lat" / e["file"]) for e in manifest["shards"]]
    latents, flipped = (np.concatenate([s[k] for s in shards]).astype(np.float64) for k in ("latents", "latents_flip"))

    # Stored latents are posterior samples of the image and of its mirror image.
    x = images_to_tensor(np.stack([dataset[i][0] for i in range(40)]))
    for stored, images in ((latents, x), (flipped, torch.flip(x, dims=[3]))):
        mean, std = (t.double().numpy() for t in ae.encode(images))
        z = (stored - mean) / std
        assert abs(z.mean()) < 0.1 and z.std() == pytest.approx(1.0, abs=0.1)

    # Channel-wise statistics of the un-flipped samples of the statistics sample (30 of 40 images).
    chosen = latents[stats_sample(40, 30, seed=0)]
    norm = Normalization.from_dict(manifest["normalization"])
    assert norm.kind == "channelwise" and manifest["statistics"]["images"] == 30
    np.testing.assert_allclose(norm.mean, chosen.mean(axis=(0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(norm.std, chosen.std(axis=(0, 2, 3), ddof=1), rtol=1e-9)


def test_rerun_split_invocations_and_ranks_give_identical_files(tmp_path, tiny, fmnist):
    _, ae = tiny
    settings = {"num_images": 90, "num_shards": 3, "batch_size": 16, "progress": False}
    whole = tmp_path / "whole"
    encode(fmnist, ae, whole, **settings)
    reference = _files(whole)

    # A killed run leaves a missing shard and maybe a temporary file; the rerun makes only that shard.
    (whole / "shard-00001.npz").unlink()
    (whole / ".shard-00001.npz.killed.tmp").write_bytes(b"half a shard")
    before = {k: (whole / f"shard-0000{k}.npz").stat().st_mtime_ns for k in (0, 2)}
    encode(fmnist, ae, whole, **settings)
    assert {k: (whole / f"shard-0000{k}.npz").stat().st_mtime_ns for k in (0, 2)} == before
    (whole / ".shard-00001.npz.killed.tmp").unlink()
    assert _files(whole) == reference

    split = tmp_path / "split"  # one invocation per shard, in another order
    assert encode(fmnist, ae, split, shards=[2], **settings) is None
    assert encode(fmnist, ae, split, shards=[0], **settings) is None
    assert encode(fmnist, ae, split, shards=[1], **settings) is not None
    assert _files(split) == reference

    ranks = tmp_path / "ranks"  # torchrun-style: rank r makes shards k % 2 == r
    assert encode(fmnist, ae, ranks, rank=1, world=2, **settings) is None
    assert sorted(p.name for p in ranks.glob("shard-*")) == ["shard-00001.npz"]
    encode(fmnist, ae, ranks, rank=0, world=2, **settings)
    assert _files(ranks) == reference


def test_kill_mid_run_then_rerun_is_bit_identical(tmp_path, tiny, fmnist, single_thread):
    folder, ae = tiny
    args = ["--dataset", "fashion-mnist", "--limit", "240", "--num-shards", "12", "--batch-size", "4"]
    args += ["--autoencoder-kind", "tiny", "--autoencoder", folder, "--device", "cpu", "--no-progress"]
    killed = tmp_path / "killed"
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ig", "encode", *args, "--out-dir", str(killed)], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(list(killed.glob("shard-*.npz"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = len(list(killed.glob("shard-*.npz")))
    assert 2 <= done < 12 and not (killed / "manifest.json").exists()
    main(["encode", *args, "--out-dir", str(killed)])
    for stray in killed.glob(".shard-*.tmp"):  # possible leftover of the kill, never read
        stray.unlink()
    reference = tmp_path / "reference"
    main(["encode", *args, "--out-dir", str(reference)])
    assert _files(killed) == _files(reference)


def test_corrupt_image_fails_naming_the_file_or_is_skipped(tmp_path, tiny):
    _, ae = tiny
    bad = make_image_folder(tmp_path / "imagenet")
    dataset = build_dataset("imagenet", str(tmp_path / "imagenet"), resolution=32)
    out = tmp_path / "lat"
    with pytest.raises(IGError, match=f"cannot read image {bad}.*--skip-corrupt") as err:
        encode(dataset, ae, out, num_shards=2, batch_size=2, num_workers=2, progress=False)  # raised in a worker
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["shard-00000.npz"]  # images 0-1 only
    manifest = encode(dataset, ae, out, num_shards=2, batch_size=2, skip_corrupt=True, progress=False)
    assert manifest["num_images"] == 4 and manifest["source"]["skipped_corrupt"] == 1
    assert [e["count"] for e in manifest["shards"]] == [2, 2]
    np.testing.assert_array_equal(load_npz(out / "shard-00001.npz")["indices"], [2, 4])


def test_ranks_from_the_launcher_environment_split_the_shards(tmp_path, tiny, monkeypatch):
    folder, _ = tiny
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    main(["encode", "--dataset", "fashion-mnist", "--limit", "40", "--num-shards", "4", "--autoencoder-kind", "tiny",
          "--autoencoder", folder, "--out-dir", str(tmp_path), "--device", "cpu", "--no-progress"])  # fmt: skip
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-00001.npz", "shard-00003.npz"]
    assert not (tmp_path / "manifest.json").exists()


def test_shards_of_other_settings_or_truncated_are_redone(tmp_path, tiny, fmnist, caplog):
    _, ae = tiny
    first = encode(fmnist, ae, tmp_path, num_images=20, num_shards=2, progress=False)
    with caplog.at_level("INFO", logger="ig.data.encode"):
        second = encode(fmnist, ae, tmp_path, num_images=20, num_shards=2, seed=1, progress=False)
    assert "latent shard 0 is redone: it was made from other inputs (seed differ)" in caplog.text
    assert second["seed"] == 1 and second["shards"] != first["shards"]
    shard = tmp_path / "shard-00001.npz"
    shard.write_bytes(shard.read_bytes()[:3000])
    caplog.clear()
    with caplog.at_level("INFO", logger="ig.data.encode"):
        third = encode(fmnist, ae, tmp_path, num_images=20, num_shards=2, seed=1, progress=False)
    assert "latent shard 1 is redone: it is unreadable or truncated" in caplog.text
    assert third["shards"] == second["shards"]  # the same bytes again


def test_bad_arguments_are_refused(tmp_path, tiny, fmnist, capsys):
    folder, ae = tiny
    with pytest.raises(IGError, match="cannot split 20 image"):
        encode(fmnist, ae, tmp_path / "x", num_images=20, num_shards=21, progress=False)
    with pytest.raises(IGError, match="shard 5 out of range"):
        encode(fmnist, ae, tmp_path / "x", num_images=20, num_shards=2, shards=[5], progress=False)
    args = ["--dataset", "fashion-mnist", "--autoencoder-kind", "sd-vae", "--autoencoder", "stabilityai/sd-vae-ft-ema"]
    with pytest.raises(SystemExit) as exit_:
        main(["encode", *args, "--assets-dir", str(tmp_path / "none"), "--out-dir", str(tmp_path / "y")])
    assert exit_.value.code == 2
    assert "ig fetch-assets --only sd-vae-ft-ema" in capsys.readouterr().err
