"""``ig sample``: paired samples (noise and labels from the seed and the sample index only), the
same shards for 1 or 2 processes, verified reuse of shards (stale and truncated ones are redone),
the manifest; through the real tiny AutoencoderKL decode path."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from ig.checkpoints import save_milestone
from ig.cli import main
from ig.data.autoencoders import tiny_config
from ig.models import create_model
from ig.sampling.sets import initial_noise, sample_labels
from ig.utils.io import file_digest, load_npz

ARGS = ["--num-samples", "40", "--shard-size", "16", "--steps", "4", "--batch-size", "8",
        "--ig-scale", "2", "--cfg-scale", "1.5", "--cfg-interval", "0", "0.7"]  # fmt: skip


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    ae = path.parent / "ae"
    if not ae.exists():
        AutoencoderKL(**tiny_config()).save_pretrained(ae)
    model = create_model("SiT-T/2", input_size=8, in_channels=4, num_classes=10, head_zero_init=False)
    state = {
        "model_config": model.config,
        "ema": model.state_dict(),
        "latent": {
            "normalization": {"kind": "scalar", "scale": 0.5, "shift": 0.0},
            "autoencoder": {"kind": "tiny", "path": str(ae)},
            "latent_shape": [4, 8, 8],
            "num_classes": 10,
        },
        "run": {"name": "run"},
        "epoch": 1,
        "step": 10,
        "steps_per_epoch": 10,
        "segment": None,
    }
    save_milestone(path, state, training_state=None)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "ep1.pt", seed=0)


@pytest.fixture(scope="module")
def other_checkpoint(checkpoint):
    return _checkpoint(checkpoint.parent / "ep2.pt", seed=1)


def _sample(checkpoint, out, *extra, rank=None, world=None):
    """In this process, or (rank/world given) as one process of a torchrun-style group."""
    args = ["sample", "--checkpoint", str(checkpoint), "--out-dir", str(out), *ARGS, *extra]
    if rank is None:
        main(args)
        return
    env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "ig", *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _shards(folder):
    return {p.name: load_npz(p) for p in sorted(folder.glob("shard-*.npz"))}


def test_two_processes_write_the_same_samples_as_one(checkpoint, tmp_path, single_thread):
    _sample(checkpoint, tmp_path / "one", "--manifest", str(tmp_path / "one.json"))
    for rank in (1, 0):
        _sample(checkpoint, tmp_path / "two", "--manifest", str(tmp_path / "two.json"), rank=rank, world=2)
    one, two = _shards(tmp_path / "one"), _shards(tmp_path / "two")
    assert list(one) == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    for name in one:
        for key in ("arr_0", "labels", "indices", "provenance"):
            assert np.array_equal(one[name][key], two[name][key]), key
    images = np.concatenate([s["arr_0"] for s in one.values()])
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8
    assert images.std() > 1  # decoded samples, not a constant
    assert np.concatenate([s["indices"] for s in one.values()]).tolist() == list(range(40))
    manifest = json.loads((tmp_path / "one.json").read_text())
    assert manifest["num_samples"] == 40 and len(manifest["shards"]) == 3
    assert manifest["guidance"]["ig_scale"] == 2.0 and manifest["guidance"]["cfg_interval"] == [0.0, 0.7]
    assert manifest["checkpoint_sha256"] == file_digest(checkpoint) and manifest["seed"] == 0
    assert json.loads((tmp_path / "two.json").read_text())["shards"] == manifest["shards"]


def test_two_guidance_settings_and_two_checkpoints_share_noise_and_labels(checkpoint, other_checkpoint, tmp_path):
    """Pairing: what sample i gets does not depend on the guidance, the checkpoint or the shard layout."""
    _sample(checkpoint, tmp_path / "a")
    _sample(checkpoint, tmp_path / "b", "--ig-scale", "1")
    _sample(other_checkpoint, tmp_path / "c")
    a, b, c = (_shards(tmp_path / x)["shard-00000.npz"] for x in "abc")
    assert np.array_equal(a["labels"], b["labels"]) and np.array_equal(a["labels"], c["labels"])
    assert not np.array_equal(a["arr_0"], b["arr_0"]) and not np.array_equal(a["arr_0"], c["arr_0"])
    # IG switched off by its scale or by an empty-looking interval: the same velocity, so the same
    # samples bit for bit, which holds only if the noise is the same too
    _sample(checkpoint, tmp_path / "d", "--ig-scale", "1", "--ig-interval", "0.2", "0.9")
    assert np.array_equal(_shards(tmp_path / "d")["shard-00000.npz"]["arr_0"], b["arr_0"])


def test_the_first_samples_of_a_larger_set_are_the_smaller_set(checkpoint, tmp_path):
    _sample(checkpoint, tmp_path / "small", "--num-samples", "16")
    small = _shards(tmp_path / "small")["shard-00000.npz"]
    large = _shards_after(checkpoint, tmp_path / "large")["shard-00000.npz"]
    assert np.array_equal(small["arr_0"], large["arr_0"])


def _shards_after(checkpoint, out):
    _sample(checkpoint, out)
    return _shards(out)


def test_noise_and_labels_are_functions_of_seed_and_index():
    noise = initial_noise(range(5, 9), (4, 8, 8), seed=3)
    assert torch.equal(noise[1:], initial_noise(range(6, 9), (4, 8, 8), seed=3))
    assert not torch.equal(noise, initial_noise(range(5, 9), (4, 8, 8), seed=4))
    labels = sample_labels(range(0, 100), 10, "random", seed=0)
    assert torch.equal(labels[30:60], sample_labels(range(30, 60), 10, "random", seed=0))


def test_balanced_labels_are_exactly_balanced_in_every_block():
    labels = sample_labels(range(0, 100), 10, "balanced", seed=0).numpy()
    assert np.bincount(labels, minlength=10).tolist() == [10] * 10
    assert all(sorted(labels[i : i + 10]) == list(range(10)) for i in range(0, 100, 10))
    assert not np.array_equal(labels[:10], np.arange(10))  # shuffled within blocks
    assert np.array_equal(labels[25:75], sample_labels(range(25, 75), 10, "balanced", seed=0).numpy())


def test_a_rerun_keeps_good_shards_and_redoes_missing_and_truncated_ones(checkpoint, tmp_path, caplog):
    out = tmp_path / "s"
    _sample(checkpoint, out)
    before = _shards(out)
    kept = out / "shard-00000.npz"
    mtime = kept.stat().st_mtime_ns
    (out / "shard-00001.npz").unlink()
    truncated = out / "shard-00002.npz"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    with caplog.at_level(logging.INFO, logger="ig.sampling.sets"):
        _sample(checkpoint, out)
    assert kept.stat().st_mtime_ns == mtime
    assert "shard 2 is redone: it is unreadable or truncated" in caplog.text
    after = _shards(out)
    for name in before:
        assert np.array_equal(before[name]["arr_0"], after[name]["arr_0"])


def test_shards_of_another_checkpoint_are_redone_not_reused(checkpoint, other_checkpoint, tmp_path, caplog):
    """The stale-sample case: samples of OTHER.pt into a folder holding shards of ep1.pt."""
    out, manifest = tmp_path / "s", tmp_path / "samples.json"
    _sample(checkpoint, out)
    old = _shards(out)
    with caplog.at_level(logging.INFO, logger="ig.sampling.sets"):
        _sample(other_checkpoint, out, "--manifest", str(manifest))
    assert "shard 0 is redone: it was made from other inputs (checkpoint_sha256 differ)" in caplog.text
    new = _shards(out)
    assert all(not np.array_equal(old[k]["arr_0"], new[k]["arr_0"]) for k in old)
    assert json.loads(manifest.read_text())["checkpoint_sha256"] == file_digest(other_checkpoint)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ig.sampling.sets"):
        _sample(other_checkpoint, out, "--cfg-scale", "2")  # other guidance: redone too
    assert "(guidance differ)" in caplog.text


def test_bad_shard_index_is_one_line(checkpoint, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "ig",
        "sample",
        "--checkpoint",
        str(checkpoint),
        "--out-dir",
        str(tmp_path),
        *ARGS,
        "--shard",
        "9",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "shard index 9 out of range" in result.stderr


def test_a_killed_sampling_job_reruns_only_what_is_missing(checkpoint, tmp_path, single_thread):
    """SIGKILL while the shards are written: the rerun keeps the finished shards, removes the
    half-written one, and ends with exactly the shards of an uninterrupted run."""
    import signal
    import time

    args = ["--num-samples", "64", "--shard-size", "8", "--steps", "4", "--batch-size", "8"]
    _sample(checkpoint, tmp_path / "reference", *args)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ig", "sample", "--checkpoint", str(checkpoint), "--out-dir", str(out), *ARGS, *args]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (out / "shard-00001.npz").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npz")}
    assert 2 <= len(kept) < 8
    (out / ".shard-00007.npz.abc123.tmp").write_bytes(b"half a shard")  # as a kill during a save leaves
    _sample(checkpoint, out, *args)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npz") if p.name in kept} == kept
    reference, killed = _shards(tmp_path / "reference"), _shards(out)
    assert list(reference) == list(killed)
    for name in reference:
        assert np.array_equal(reference[name]["arr_0"], killed[name]["arr_0"]), name
    assert not list(out.glob(".*.tmp"))
