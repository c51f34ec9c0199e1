"""The embedded default's data stages from the CLI on real Fashion-MNIST: train the tiny
autoencoder briefly, encode, then decode the stored latents and beat the trivial baseline."""

import json

import numpy as np
import torch

from ig.cli import main
from ig.data.autoencoders import images_to_tensor, load_autoencoder
from ig.data.datasets import build_dataset
from ig.data.latents import Normalization, read_manifest
from ig.utils.io import load_npz


def test_train_encode_decode_round_trip_beats_the_mean_image(tmp_path):
    ae_dir, latents = tmp_path / "autoencoder", tmp_path / "latents"
    main(["train-autoencoder", "--out", str(ae_dir), "--steps", "25", "--batch-size", "32", "--eval-images", "200",
          "--no-progress"])  # fmt: skip
    metrics = json.loads((ae_dir / "metrics.json").read_text())
    assert metrics["mse"] < 0.6 * metrics["baseline_mse"] and metrics["steps"] == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["autoencoder"]  # no temporary folder left

    main(["encode", "--dataset", "fashion-mnist", "--limit", "64", "--num-shards", "2", "--autoencoder-kind", "tiny",
          "--autoencoder", str(ae_dir), "--out-dir", str(latents), "--device", "cpu", "--no-progress"])  # fmt: skip
    manifest = read_manifest(latents)
    assert manifest["num_images"] == 64 and manifest["autoencoder"] == {"kind": "tiny", "path": str(ae_dir)}

    # What sampling does with a generated x: denormalise, then decode with the manifest's autoencoder.
    norm = Normalization.from_dict(manifest["normalization"])
    z = torch.from_numpy(np.concatenate([load_npz(latents / s["file"])["mean"] for s in manifest["shards"]])).float()
    x = norm.normalize(z)
    assert abs(x.mean().item()) < 0.3 and 0.6 < x.std().item() < 1.4  # unit scale for the diffusion model
    decoded = load_autoencoder(manifest["autoencoder"]).decode(norm.denormalize(x)).clamp(-1, 1)

    dataset = build_dataset("fashion-mnist")
    images = images_to_tensor(np.stack([dataset[i][0] for i in range(64)]))
    mean_image = images_to_tensor(np.stack([dataset[i][0] for i in range(64, 1064)])).mean(0)
    error, baseline = torch.mean((decoded - images) ** 2).item(), torch.mean((mean_image - images) ** 2).item()
    assert error < 0.6 * baseline
