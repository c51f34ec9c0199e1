"""Autoencoder loading: diffusers folders (local, or a hub id inside the assets folder) and the
VA-VAE LDM checkpoint converter, checked against an independent LDM forward pass."""

import pytest
import torch
from diffusers import AutoencoderKL

from ig.data.autoencoders import load_autoencoder, released_vavae_normalization
from ig.errors import IGError
from tests.ldm_reference import ARCH, ldm_decode, ldm_encode, make_ldm_checkpoint


@pytest.fixture(scope="module")
def ldm_checkpoint():
    return make_ldm_checkpoint()


def test_vavae_conversion_matches_ldm_forward(tmp_path, ldm_checkpoint):
    p, checkpoint = ldm_checkpoint
    path = tmp_path / "vavae.pt"
    torch.save(checkpoint, path)
    ae = load_autoencoder({"kind": "va-vae", "path": str(path)})
    cfg = ae.vae.config
    assert cfg.down_block_types == ["DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"]
    assert cfg.up_block_types == ["AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
    assert list(cfg.block_out_channels) == [32, 64, 64] and cfg.layers_per_block == 2 and cfg.latent_channels == 4
    assert sum(v.numel() for v in ae.vae.state_dict().values()) == sum(v.numel() for v in p.sd.values())

    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mean, std = ae.encode(x)
    ref_mean, ref_std = ldm_encode(p, x, **ARCH)
    torch.testing.assert_close(mean, ref_mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std, ref_std, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ae.decode(mean), ldm_decode(p, mean, **ARCH), atol=1e-4, rtol=1e-4)


def test_vavae_from_assets_folder_with_released_statistics(tmp_path, ldm_checkpoint):
    folder = tmp_path / "assets" / "hf" / "hustvl" / "vavae-imagenet256-f16d32-dinov2"
    folder.mkdir(parents=True)
    torch.save(ldm_checkpoint[1], folder / "vavae-imagenet256-f16d32-dinov2.pt")
    torch.save(
        {"mean": torch.arange(4.0).view(1, 4, 1, 1), "std": torch.full((1, 4, 1, 1), 2.0)}, folder / "latents_stats.pt"
    )
    spec = {"kind": "va-vae", "path": "hustvl/vavae-imagenet256-f16d32-dinov2"}
    ae = load_autoencoder(spec, tmp_path / "assets")
    assert ae.spec == spec and ae.latent_channels == 4 and ae.downsample == 4
    norm = released_vavae_normalization(tmp_path / "assets")
    assert norm.kind == "channelwise" and norm.mean == (0.0, 1.0, 2.0, 3.0) and norm.std == (2.0,) * 4


def test_sd_vae_folder_loads_locally_and_by_hub_id(tmp_path):
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4)  # fmt: skip
    folder = tmp_path / "assets" / "hf" / "stabilityai" / "sd-vae-ft-ema"
    vae.save_pretrained(folder)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    expected = vae.encode(x).latent_dist
    for spec in ({"kind": "sd-vae", "path": "stabilityai/sd-vae-ft-ema"}, {"kind": "sd-vae", "path": str(folder)}):
        ae = load_autoencoder(spec, tmp_path / "assets")
        mean, std = ae.encode(x)
        torch.testing.assert_close(mean, expected.mean)
        torch.testing.assert_close(std, expected.std)
        assert ae.decode(mean).shape == x.shape and ae.spec == spec
    assert ae.vae.config.scaling_factor == pytest.approx(0.18215)


@pytest.mark.parametrize(
    "spec,file",
    [
        ({"kind": "sd-vae", "path": "stabilityai/sd-vae-ft-ema"}, "config.json"),
        ({"kind": "va-vae", "path": "hustvl/vavae-imagenet256-f16d32-dinov2"}, "vavae-imagenet256-f16d32-dinov2.pt"),
    ],
)
def test_missing_autoencoder_names_file_and_command(tmp_path, spec, file):
    with pytest.raises(IGError, match=r"not found; run `ig fetch-assets --only [a-z-]+ --assets-dir") as err:
        load_autoencoder(spec, tmp_path)
    assert file in str(err.value) and "\n" not in str(err.value)


def test_bad_specs_and_files_are_one_line_errors(tmp_path):
    with pytest.raises(IGError, match="kind"):
        load_autoencoder({"kind": "vqgan", "path": "x"})
    with pytest.raises(IGError, match="not found: give a local path"):
        load_autoencoder({"kind": "tiny", "path": str(tmp_path / "nowhere")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(IGError, match="not a diffusers AutoencoderKL folder"):
        load_autoencoder({"kind": "tiny", "path": str(tmp_path / "empty")})
    torch.save({"state_dict": {"encoder.conv_in.weight": torch.zeros(1)}}, tmp_path / "bad.pt")
    with pytest.raises(IGError, match="not an LDM AutoencoderKL"):
        load_autoencoder({"kind": "va-vae", "path": str(tmp_path / "bad.pt")})


class TrainerCallbackState:
    """Stands for what a Lightning checkpoint pickles beside its weights (callbacks, hparams)."""

    def __init__(self) -> None:
        self.best = 0.5


def test_lightning_style_checkpoint_is_refused_then_loads_after_strip(tmp_path, ldm_checkpoint):
    from ig.strip import strip_checkpoint

    p, checkpoint = ldm_checkpoint
    path = tmp_path / "vavae.pt"
    torch.save({**checkpoint, "callbacks": {"ModelCheckpoint": TrainerCallbackState()}, "epoch": 12}, path)
    with pytest.raises(IGError, match=r"TrainerCallbackState.*ig strip-checkpoint") as err:
        load_autoencoder({"kind": "va-vae", "path": str(path)})
    assert "\n" not in str(err.value)
    strip_checkpoint(path)
    stripped = torch.load(path, weights_only=True)
    assert stripped["epoch"] == 12 and stripped["callbacks"] == {}
    ae = load_autoencoder({"kind": "va-vae", "path": str(path)})
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(ae.encode(x)[0], ldm_encode(p, x, **ARCH)[0], atol=1e-4, rtol=1e-4)
