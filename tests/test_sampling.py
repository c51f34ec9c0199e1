"""``ig sample``: deterministic shards (1 process = 2 processes), resume of missing shards only,
balanced labels, the manifest; through the real tiny AutoencoderKL decode path."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from ig.cli import main
from ig.data.autoencoders import tiny_config
from ig.models import create_model
from ig.sampling import shard_labels
from ig.train.checkpoint import save_checkpoint
from ig.utils.io import load_npz
from ig.utils.seeding import generator

ARGS = ["--num-samples", "40", "--shard-size", "16", "--seed-key", "run/ep1/ig2", "--steps", "4",
        "--batch-size", "8", "--ig-scale", "2", "--cfg-scale", "1.5", "--cfg-interval", "0", "0.7"]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    ae = root / "ae"
    AutoencoderKL(**tiny_config()).save_pretrained(ae)
    model = create_model("SiT-T/2", input_size=8, in_channels=4, num_classes=10, head_zero_init=False)
    state = {
        "model_config": model.config,
        "model": model.state_dict(),
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
    }
    save_checkpoint(root / "ep1.pt", state)
    return root / "ep1.pt"


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
    _sample(checkpoint, tmp_path / "one", "--manifest", str(tmp_path / "one.json"), "--grid", str(tmp_path / "g.png"))
    for rank in (1, 0):
        _sample(checkpoint, tmp_path / "two", "--manifest", str(tmp_path / "two.json"), rank=rank, world=2)
    one, two = _shards(tmp_path / "one"), _shards(tmp_path / "two")
    assert list(one) == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    for name in one:
        assert np.array_equal(one[name]["arr_0"], two[name]["arr_0"])
        assert np.array_equal(one[name]["labels"], two[name]["labels"])
    images = np.concatenate([s["arr_0"] for s in one.values()])
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8
    assert images.std() > 1  # decoded samples, not a constant
    manifest = json.loads((tmp_path / "one.json").read_text())
    assert manifest["num_samples"] == 40 and len(manifest["shards"]) == 3
    assert manifest["guidance"]["ig_scale"] == 2.0 and manifest["guidance"]["cfg_interval"] == [0.0, 0.7]
    assert (tmp_path / "g.png").stat().st_size > 0
    assert json.loads((tmp_path / "two.json").read_text())["shards"] == manifest["shards"]


def test_a_rerun_redoes_only_missing_shards(checkpoint, tmp_path):
    out = tmp_path / "s"
    _sample(checkpoint, out)
    before = _shards(out)
    kept = out / "shard-00000.npz"
    mtime = kept.stat().st_mtime_ns
    (out / "shard-00001.npz").unlink()
    _sample(checkpoint, out)
    after = _shards(out)
    assert kept.stat().st_mtime_ns == mtime
    for name in before:
        assert np.array_equal(before[name]["arr_0"], after[name]["arr_0"])


def test_guidance_changes_the_samples(checkpoint, tmp_path):
    _sample(checkpoint, tmp_path / "a")
    _sample(checkpoint, tmp_path / "b", "--ig-scale", "1")
    assert not np.array_equal(
        _shards(tmp_path / "a")["shard-00000.npz"]["arr_0"], _shards(tmp_path / "b")["shard-00000.npz"]["arr_0"]
    )


def test_balanced_labels_are_exactly_balanced_across_shards():
    labels = np.concatenate(
        [shard_labels(k, 30, 100, 10, "balanced", "key", generator("key", k)).numpy() for k in range(4)]
    )
    assert len(labels) == 100 and np.bincount(labels, minlength=10).tolist() == [10] * 10
    assert not np.array_equal(labels[:10], np.arange(10))  # shuffled


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
