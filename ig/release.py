"""``ig import-checkpoint``: a released checkpoint → an ig checkpoint that ``ig sample`` reads.

The releases (official IG SiT-XL/2 and LightningDiT-XL/1, upstream SiT-XL/2) ship weights only;
sampling also needs the latent space they were trained in. That is fixed by the release: SD-VAE
latents ×0.18215 for SiT, VA-VAE latents with its released channel-wise statistics for
LightningDiT. The weights go through :func:`ig.models.from_official`, so the imported model's
outputs equal the release's (after the time-convention conversion).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ig.assets import default_assets_dir, require
from ig.errors import IGError
from ig.utils.io import load_torch

# torch and the modules that import it are imported where used: `ig import-checkpoint --help` needs none
if TYPE_CHECKING:
    from ig.data.latents import Normalization

SD_VAE_SCALE = 0.18215
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")


def find_weights(location: Path) -> Path:
    """The one weights file of an asset (a file, or a folder holding exactly one)."""
    if location.is_file():
        return location
    files = sorted(p for p in location.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    if len(files) != 1:
        names = ", ".join(p.name for p in files) or "none"
        raise IGError(f"{location} must hold exactly one checkpoint ({'/'.join(WEIGHT_SUFFIXES)}), found: {names}")
    return files[0]


def load_release(path: Path) -> dict:
    """Load a release checkpoint without unpickling code: REPA-lineage checkpoints also store
    their ``argparse.Namespace`` arguments, which is allowed explicitly and dropped."""
    import torch

    with torch.serialization.safe_globals([argparse.Namespace]):
        state = load_torch(path, what="released checkpoint")
    return state


def release_normalization(kind: str, assets_dir: str | Path) -> Normalization:
    from ig.data.latents import Normalization

    if kind == "sd-vae":
        return Normalization("scalar", scale=SD_VAE_SCALE)
    if kind == "va-vae":
        from ig.data.autoencoders import released_vavae_normalization

        return released_vavae_normalization(assets_dir)
    raise IGError(f"released checkpoints decode with sd-vae or va-vae, not {kind!r}")


def import_checkpoint(
    weights: Path,
    model_name: str,
    overrides: dict,
    autoencoder: dict,
    normalization: Normalization,
    run: str,
    epoch: int,
) -> dict:
    """The milestone (format of ``ig.checkpoints``) of an imported release: its weights as the EMA."""
    from ig.models import from_official

    model = from_official(model_name, load_release(weights), **overrides)
    return {
        "model_config": model.config,
        "ema": model.state_dict(),
        "latent": {
            "normalization": normalization.to_dict(),
            "autoencoder": autoencoder,
            "latent_shape": [model.in_channels, model.input_size, model.input_size],
            "num_classes": model.num_classes,
        },
        "run": {"name": run, "config": {"import": str(weights)}, "fingerprint": None},
        "epoch": epoch,
        "step": 0,
        "steps_per_epoch": 0,
        "segment": None,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="registered model name, e.g. SiT-XL/2")
    p.add_argument("--asset", help="asset name (see `ig fetch-assets --list`)")
    p.add_argument("--weights", help="or: a checkpoint file")
    p.add_argument("--overrides", default="{}", help="model overrides as JSON, e.g. '{\"ig_layer\": 8}'")
    p.add_argument(
        "--autoencoder", required=True, help="KIND:PATH of the decoding autoencoder, e.g. sd-vae:sd-vae-ft-ema"
    )
    p.add_argument("--assets-dir", default=default_assets_dir())
    p.add_argument("--run", default="release", help="run name recorded in the checkpoint")
    p.add_argument("--epoch", type=int, default=0, help="training epochs of the release (for the record)")
    p.add_argument("--out", required=True, help="ig checkpoint to write (.pt)")


def run(args: argparse.Namespace) -> None:
    from ig.checkpoints import save_milestone

    if bool(args.asset) == bool(args.weights):
        raise IGError("give exactly one of --asset and --weights")
    location = require(args.asset, args.assets_dir) if args.asset else Path(args.weights)
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as exc:
        raise IGError(f"--overrides is not valid JSON: {exc.msg}") from exc
    kind, _, path = args.autoencoder.partition(":")
    state = import_checkpoint(
        find_weights(location),
        args.model,
        overrides,
        {"kind": kind, "path": path},
        release_normalization(kind, args.assets_dir),
        args.run,
        args.epoch,
    )
    save_milestone(args.out, state, training_state=None)
    print(f"wrote {args.out}: {args.model} ({sum(v.numel() for v in state['ema'].values()) / 1e6:.1f}M parameters)")
